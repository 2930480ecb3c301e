import numpy as np
import pandas as pd
import pytest

from mtlab.experiments import (
    PAPER_TABLE2,
    beside_paper,
    check_models,
    compare_models,
    correlation_statement,
    get_profile,
    ordering_agreement,
    ordering_statement,
    paired_p,
    significance,
    synthetic_correlation_study,
)


def fake_results(means: dict[str, tuple[float, float]], seeds=(0, 1, 2), spread=0.001, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for model, (income, marital) in means.items():
        for s in seeds:
            for task, mean in (("income", income), ("marital", marital)):
                rows.append(
                    {
                        "model": model,
                        "seed": s,
                        "task": task,
                        "auc": mean + spread * rng.standard_normal(),
                        "logloss": 0.1,
                        "trainable_params": 1,
                        "flops_per_sample": 1.0,
                        "seconds": 1.0,
                        "epochs": 1,
                    }
                )
    return pd.DataFrame(rows)


PAPER_MEANS = {
    m: tuple(
        PAPER_TABLE2[(PAPER_TABLE2.model == m) & (PAPER_TABLE2.task == t)]["paper_auc"].iloc[0]
        for t in ("income", "marital")
    )
    for m in PAPER_TABLE2["model"].unique()
}


def test_paired_p_matches_scipy_and_handles_degenerate_cases():
    a = pd.Series([0.91, 0.92, 0.95], index=[0, 1, 2])
    b = pd.Series([0.90, 0.90, 0.92], index=[0, 1, 2])
    from scipy import stats

    assert paired_p(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert np.isnan(paired_p(a.iloc[:1], b.iloc[:1]))
    assert np.isnan(paired_p(a, a - 0.01))  # constant difference: no variance, no test


def test_significance_gain_and_best_other():
    results = fake_results({"single_task": (0.940, 0.990), "mmoe": (0.950, 0.991), "ple": (0.945, 0.995)})
    table = significance(results)
    row = table[(table.model == "mmoe") & (table.task == "income")].iloc[0]
    single = results[(results.model == "single_task") & (results.task == "income")]["auc"].mean()
    assert row["gain_vs_single_task"] == pytest.approx(row["mean"] - single)
    assert row["best_other"] == "ple" and row["p_vs_single_task"] < 0.05
    assert table[(table.model == "ple") & (table.task == "marital")].iloc[0]["best_other"] == "mmoe"
    assert np.isnan(table[(table.model == "single_task")].iloc[0]["p_vs_single_task"])


def test_beside_paper_and_ordering_when_the_paper_is_reproduced():
    results = fake_results(PAPER_MEANS, spread=1e-6)
    both = beside_paper(results)
    assert len(both) == 16 and both["difference"].abs().max() < 1e-4
    assert (both["our_rank"] == both["paper_rank"]).all()
    agreement = ordering_agreement(results)
    assert (agreement["kendall_tau"] > 0.99).all() and (agreement["our_best"] == "MPT-Rec").all()
    assert "matches the paper's ordering closely" in ordering_statement(agreement)


def test_ordering_statement_says_plainly_when_reversed():
    reversed_means = {m: (2 * 0.95 - i, 2 * 0.99 - m_) for m, (i, m_) in PAPER_MEANS.items()}
    agreement = ordering_agreement(fake_results(reversed_means, spread=1e-6))
    assert (agreement["kendall_tau"] < -0.9).all()
    assert "does NOT reproduce the paper's ordering" in ordering_statement(agreement)


def test_check_models():
    assert len(check_models(None)) == 8
    with pytest.raises(ValueError, match="allowed values: csrec"):
        check_models(["mmoe", "moe"])


def test_compare_models_resumes_from_results_file(synthetic, tmp_path):
    path = tmp_path / "results.csv"
    profile = get_profile("quick", seeds=[0], device="cpu")
    first, _ = compare_models(synthetic, ["shared_bottom"], profile, results_path=path, epochs=1, quiet=True)
    both, histories = compare_models(
        synthetic, ["shared_bottom", "single_task"], profile, results_path=path, epochs=1, quiet=True
    )
    stored = pd.read_csv(path)
    assert len(stored) == 4 and list(stored["model"]).count("shared_bottom") == 2  # not trained twice
    assert both[both.model == "shared_bottom"]["auc"].tolist() == pytest.approx(first["auc"].tolist())
    assert set(histories["model"]) == {"shared_bottom", "single_task"}
    assert path.with_suffix(".history.csv").exists()


def test_synthetic_correlation_study_shapes():
    profile = get_profile("quick", seeds=[0], device="cpu")
    results, gains = synthetic_correlation_study(
        ["single_task", "shared_bottom"], profile, rhos=(0.9, 0.0), n_samples=1500, epochs=1
    )
    assert set(results["rho"]) == {0.9, 0.0} and len(results) == 2 * 2 * 2
    assert (gains[gains.model == "single_task"]["gain_vs_single_task"] == 0).all()
    assert "ρ = 0.9" in correlation_statement(gains)
