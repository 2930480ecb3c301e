"""The gradient lab's strategies: each against a case computed by hand (the numbers in its docstring),
each that TorchJD also implements against TorchJD on random matrices, and the Gramian path against
the matrix path."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torchjd import aggregation as jd

from mtlab.weighting import STRATEGIES, GramianCombination, build_weighting
from mtlab.weighting.gradient_based import project_to_simplex

f64 = dict(dtype=torch.float64)


def combine(name, grads, losses=None, **options):
    strategy = build_weighting(name, len(grads), **options)
    g = torch.tensor(grads, **f64)
    return strategy.combine(g, torch.ones(len(g), **f64) if losses is None else torch.tensor(losses, **f64))


def close(actual, expected, atol=1e-4):
    torch.testing.assert_close(actual, torch.as_tensor(expected, **f64).to(actual.dtype), atol=atol, rtol=0)


def test_at_least_26_strategies_each_with_its_paper_in_the_docstring():
    assert len(STRATEGIES) >= 26
    new = [
        "upgrad",
        "dualproj",
        "aligned_mtl",
        "config",
        "gradvac",
        "graddrop",
        "famo",
        "db_mtl",
        "stch",
        "fairgrad",
        "excess_mtl",
        "moco",
        "sdmgrad",
        "modo",
        "gls",
        "imtl",
        "auto_lambda",
    ]
    assert set(new) <= set(STRATEGIES)
    for name in new:
        doc = STRATEGIES[name].__doc__ or ""
        assert any(str(year) in doc for year in range(2018, 2026)), f"{name}: no paper named"
        assert "E.g." in doc or "e.g." in doc or name in ("auto_lambda",), f"{name}: no worked example"


def test_simplex_projection_by_hand():
    close(project_to_simplex(torch.tensor([0.0, 0.0, 2.0], **f64)), [0, 0, 1])
    close(project_to_simplex(torch.tensor([0.5, 0.5, 1.0], **f64)), [1 / 6, 1 / 6, 2 / 3])
    close(project_to_simplex(torch.tensor([0.6, 0.2], **f64)), [0.7, 0.3])


# --- hand-computed cases ---------------------------------------------------------------------------


def test_upgrad_by_hand():
    d, w = combine("upgrad", [[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])
    close(d, [0.2929, 1.9004, 1.9004])
    close(w, [1.1109, 0.7894])
    d, _ = combine("upgrad", [[1.0, 0.0], [1.0, 1.0]])  # no conflict: the plain mean
    close(d, [1.0, 0.5])


def test_dualproj_by_hand():
    d, _ = combine("dualproj", [[1.0, 0.0], [-1.0, 1.0]])  # the mean (0, ½) conflicts with none
    close(d, [0.0, 0.5])
    d, _ = combine("dualproj", [[1.0, 0.0], [-3.0, 1.0]])  # mean (−1, ½) → nearest x with x₁ ≥ 0, −3x₁ + x₂ ≥ 0
    close(d, [0.0, 0.5], atol=5e-3)  # TorchJD regularizes the Gramian of its dual QP slightly


def test_aligned_mtl_by_hand():
    d, w = combine("aligned_mtl", [[2.0, 0.0], [0.0, 1.0]])
    close(w, [0.25, 0.5])
    close(d, [0.5, 0.5])


def test_config_by_hand():
    d, w = combine("config", [[1.0, 0.0], [0.0, 2.0]])
    close(d, [1.5, 1.5])
    assert w.isnan().all()


def test_gradvac_by_hand():
    torch.manual_seed(0)
    d, w = combine("gradvac", [[1.0, 0.0], [-1.0, 1.0]])
    close(w, [2.0, 1.5])
    close(d, [0.5, 1.5])


def test_graddrop_keeps_agreeing_signs_and_drops_one_side_of_a_conflict():
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        d, _ = combine("graddrop", [[1.0, 1.0], [1.0, -1.0]])
        assert d[0].item() == pytest.approx(2.0)  # purity 1: both kept
        seen.add(round(d[1].item()))
    assert seen == {1, -1}  # purity ½: the positive or the negative side, by chance


def test_excess_mtl_by_hand():
    _, w = combine("excess_mtl", [[1.0, 0.0], [0.0, 2.0]])
    close(w, torch.softmax(torch.tensor([1.0, 2.0], **f64), 0))


def test_fairgrad_by_hand():
    _, w = combine("fairgrad", [[1.0, 0.0], [0.0, 1.0]])
    close(w, [1.0, 1.0])
    _, w = combine("fairgrad", [[1.0, 0.0], [0.0, 2.0]], alpha=2.0)  # (GGᵀw)_t = w_t^{-1/2}: 4w₂ = w₂^{-½}
    close(w, [1.0, 0.25 ** (2 / 3)], atol=1e-3)


def test_modo_by_hand():
    _, w = combine("modo", [[1.0, 0.0], [0.0, math.sqrt(3)]], rho=0.0)
    close(w, [0.55, 0.45])


def test_sdmgrad_by_hand():
    _, w = combine("sdmgrad", [[1.0, 0.0], [0.0, 1.0]], lambda_=0.0)
    close(w, [0.5, 0.5])
    _, w = combine("sdmgrad", [[1.0, 0.0], [0.0, 2.0]], lambda_=0.0, n_iter=1)  # one step of lr 10 overshoots
    close(w, [1.0, 0.0])
    _, w = combine("sdmgrad", [[1.0, 0.0], [0.0, 2.0]], lambda_=0.0, lr=0.5, n_iter=2000)  # → MGDA's (0.8, 0.2)
    close(w, [0.8, 0.2], atol=1e-3)


def test_imtl_scales_losses_and_equalizes_projections():
    strategy = build_weighting("imtl", 2)
    with torch.no_grad():
        strategy.loss_scale.copy_(torch.tensor([0.0, math.log(2.0)]))
    theta = nn.Parameter(torch.zeros(2))
    losses = torch.stack([theta[0] + 1.0, theta[1] + 1.0])  # g₁ = (1, 0), g₂ = (0, 1), L = (1, 1)
    alpha = strategy.backward(losses, [theta])
    close(alpha, [2 / 3, 1 / 3])
    close(theta.grad, [2 / 3, 2 / 3])  # α over the scaled gradients (1, 0), (0, 2)
    close(strategy.loss_scale.grad, [0.0, 1.0])  # ∂(e^s L − s)/∂s = e^s L − 1


def test_gls_by_hand():
    total, w = build_weighting("gls", 2).loss(torch.tensor([1.0, 4.0]), 0)
    assert total.item() == pytest.approx(2.0)
    close(w, [1.0, 0.25])


def test_stch_by_hand():
    total, w = build_weighting("stch", 2, warmup_epochs=0).loss(torch.tensor([1.0, math.e]), 0)
    assert total.item() == pytest.approx(2 * math.log(1 + math.e))
    close(w, [0.5379, 0.5379])
    stch = build_weighting("stch", 2, warmup_epochs=1)
    for losses in ([2.0, 4.0], [4.0, 8.0]):  # the warm-up epoch: Σ log L, and the nadir averaged
        total, w = stch.loss(torch.tensor(losses), 0)
        assert total.item() == pytest.approx(sum(math.log(x) for x in losses))
    stch.loss(torch.tensor([3.0, 6.0]), 1)
    close(stch.nadir, [3.0, 6.0])


def test_famo_by_hand():
    famo = build_weighting("famo", 2)
    total, w = famo.loss(torch.tensor([1.0, 2.0]), 0)
    close(w, [2 / 3, 1 / 3])
    assert total.item() == pytest.approx(0.5 * math.log(2.0) / 0.75)
    # task 1's loss fell (1 → 0.5), task 2's did not: ξ.grad = J_softmaxᵀ δ = (+, −), Adam's first step
    # moves each logit by its learning rate: z = softmax(−0.025, 0.025)
    _, w = famo.loss(torch.tensor([0.5, 2.0]), 0)
    z = torch.softmax(torch.tensor([-0.025, 0.025]), 0)
    c = z[0] / 0.5 + z[1] / 2.0
    close(w, [z[0] / (c * 0.5), z[1] / (c * 2.0)])


def test_db_mtl_by_hand():
    strategy = build_weighting("db_mtl", 2)
    g = torch.tensor([[2.0, 0.0], [0.0, 1.0]], **f64)
    d, alpha = strategy.combine(g, torch.ones(2, **f64))
    close(d, [0.2, 0.2])  # ĝ = 0.1 ∇log L = (0.2, 0), (0, 0.1); both scaled to 0.2
    close(alpha, [1.0, 2.0])
    d, _ = strategy.combine(g, torch.tensor([2.0, 1.0], **f64))  # step 2: β = 0.9/√2, ∇log L₁ = g₁ / 2
    beta = 0.9 / math.sqrt(2)
    avg = torch.tensor([[beta * 0.2 + (1 - beta) * 1.0, 0.0], [0.0, beta * 0.1 + (1 - beta) * 1.0]], **f64)
    top = avg.norm(dim=1).max()
    close(d, top / avg.norm(dim=1) @ avg)


def test_moco_by_hand():
    d, lam = combine("moco", [[2.0, 0.0], [0.0, 1.0]], scale_to_loss=False)
    close(lam, [0.48125, 0.51875])  # Y = diag(1, ½); Π_Δ((½, ½) − 0.1 (1·½, ¼·½)) = Π_Δ(0.45, 0.4875)
    close(d, [0.48125, 0.259375])
    d, lam = combine("moco", [[1.0, 0.0], [0.0, 1.0]], scale_to_loss=False)
    close(d, [0.25, 0.25])


def test_auto_lambda_by_hand():
    strategy = build_weighting("auto_lambda", 2, meta_lr=1e-3)
    losses = torch.ones(2, **f64)
    strategy.private_scale(losses)
    _, used = strategy.combine(torch.tensor([[1.0, 0.0], [0.0, 1.0]], **f64), losses)
    close(used, [1.0, 1.0])  # the first step only records G
    # next batch's total gradient (−1, 0) opposes task 1's last gradient: meta-gradient (1, 0),
    # Adam's first step lowers λ₁ by its learning rate, λ₂ (no signal) stays
    strategy.combine(torch.tensor([[1.0, 0.0], [-2.0, 0.0]], **f64), losses)
    close(strategy.lambdas, [1.0 - 1e-3, 1.0], atol=1e-7)


def test_per_element_strategies_refuse_changing_shared_elements():
    strategy = build_weighting("db_mtl", 2)
    strategy.combine(torch.ones(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match="shared elements changed from 3 to 4.*MF recommender"):
        strategy.combine(torch.ones(2, 4), torch.ones(2))


@pytest.mark.parametrize("name", ["gls", "stch", "famo", "db_mtl", "moco"])
def test_log_of_losses_strategies_refuse_a_negative_loss(name):
    theta = nn.Parameter(torch.ones(2))
    losses = torch.stack([theta[0] ** 2, -(theta[1] ** 2)])  # a negative loss (e.g. an alignment term)
    with pytest.raises(ValueError, match=r"losses must be positive; got task 2: -1 \(of 2 tasks"):
        build_weighting(name, 2).backward(losses, [theta])


# --- agreement with TorchJD on random matrices -----------------------------------------------------

BACKED = {  # ours → TorchJD's, with the options that make them the same method
    "upgrad": lambda t: jd.UPGrad(),
    "dualproj": lambda t: jd.DualProj(),
    "aligned_mtl": lambda t: jd.AlignedMTL(),
    "fairgrad": lambda t: jd.FairGrad(alpha=1.0),
    "gradvac": lambda t: jd.GradVac(),
    "config": lambda t: jd.ConFIG(),
    "graddrop": lambda t: jd.GradDrop(),
    "excess_mtl": lambda t: jd.ExcessMTL(),
    "pcgrad": lambda t: jd.PCGrad(),
    "imtl_g": lambda t: jd.IMTLG(),
    "mgda": lambda t: jd.MGDA(epsilon=1e-7, max_iters=20000),
}
STATEFUL_WEIGHTINGS = {"modo": lambda t: jd.MoDoWeighting(), "sdmgrad": lambda t: jd.SDMGradWeighting()}


def random_matrices(n_tasks, steps=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n_tasks, 7, generator=gen, **f64) for _ in range(steps)]


@pytest.mark.parametrize("n_tasks", [2, 3, 5])
@pytest.mark.parametrize("name", sorted(BACKED))
def test_agrees_with_torchjd(name, n_tasks):
    ours, theirs = build_weighting(name, n_tasks), BACKED[name](n_tasks)
    for k, g in enumerate(random_matrices(n_tasks)):  # several steps: the stateful ones carry state
        torch.manual_seed(k)
        d, _ = ours.combine(g, torch.ones(n_tasks, **f64))
        torch.manual_seed(k)
        expected = theirs(g)
        atol = 1e-3 if name == "mgda" else 1e-6  # TorchJD's MGDA: Frank-Wolfe; ours solves the QP exactly
        torch.testing.assert_close(d, expected, atol=atol * expected.norm().item(), rtol=0, msg=f"{name}, step {k}")


@pytest.mark.parametrize("n_tasks", [2, 3, 5])
@pytest.mark.parametrize("name", sorted(STATEFUL_WEIGHTINGS))
def test_cross_gramian_weightings_agree_with_torchjd(name, n_tasks):
    ours, theirs = build_weighting(name, n_tasks), STATEFUL_WEIGHTINGS[name](n_tasks)
    for g in random_matrices(n_tasks):
        _, w = ours.combine(g, torch.ones(n_tasks, **f64))
        torch.testing.assert_close(w, theirs(g @ g.T))


@pytest.mark.parametrize("n_tasks", [2, 3])
def test_cagrad_and_nash_agree_with_torchjd(n_tasks):
    pytest.importorskip("cvxpy")
    for g in random_matrices(n_tasks, steps=2):
        d, _ = build_weighting("cagrad", n_tasks, rescale=False).combine(g, torch.ones(n_tasks, **f64))
        torch.testing.assert_close(d, jd.CAGrad(c=0.4)(g), atol=1e-4 * g.norm().item(), rtol=0)
        _, alpha = build_weighting("nash_mtl", n_tasks).combine(g, torch.ones(n_tasks, **f64))
        # TorchJD runs the authors' sequence of convex programs (20 iterations): close, not equal
        theirs = jd.NashMTL(n_tasks=n_tasks, max_norm=0.0, update_weights_every=1, optim_niter=200)
        torch.testing.assert_close(alpha @ g, theirs(g), atol=0.02 * (alpha @ g).norm().item(), rtol=0)


# --- the Gramian path ------------------------------------------------------------------------------

GRAMIAN = sorted(n for n, c in STRATEGIES.items() if issubclass(c, GramianCombination))


@pytest.mark.parametrize("name", GRAMIAN)
def test_gramian_path_equals_the_matrix_path(name):
    g = random_matrices(3, steps=1, seed=4)[0]
    losses = torch.tensor([0.7, 0.5, 0.9], **f64)
    torch.manual_seed(0)
    full, w_full = build_weighting(name, 3).combine(g, losses)
    torch.manual_seed(0)
    parts, w_parts = build_weighting(name, 3).combine_blocks([g[:, :2], g[:, 2:3], g[:, 3:]], losses)
    torch.testing.assert_close(torch.cat(parts), full)
    torch.testing.assert_close(w_parts, w_full)
    assert len(GRAMIAN) >= 12


# --- diagnostics and rep_grad ----------------------------------------------------------------------

from mtlab.models import build_model  # noqa: E402
from mtlab.train import TrainConfig, fit, seed_everything  # noqa: E402
from mtlab.train.diagnostics import GradientProbe, measured_steps  # noqa: E402


def test_probe_by_hand():
    theta = nn.Parameter(torch.zeros(2))
    probe = GradientProbe(nn.Linear(1, 1), ("a", "b"))
    for b in ([-1.0, 1.0], [1.0, 1.0]):  # cosines −1/√2 (conflict), then +1/√2
        losses = torch.stack([theta @ torch.tensor([1.0, 0.0]), theta @ torch.tensor(b)])
        probe.measure(losses, [theta])
    row = probe.summary()
    assert row["cos_a|b"] == pytest.approx(0.0, abs=1e-12)
    assert row["conflict_a|b"] == row["conflict_any"] == 0.5
    assert row["grad_norm_b"] == pytest.approx(math.sqrt(2))
    assert row["norm_ratio"] == pytest.approx(math.sqrt(2))
    assert theta.grad is None  # measuring leaves .grad alone
    assert probe.summary() == {}  # and starts over each epoch


def test_measured_steps_spread_over_the_epoch():
    assert measured_steps(1, 10) == {0}
    assert measured_steps(4, 10) == {0, 2, 5, 7}
    assert measured_steps(50, 3) == {0, 1, 2}
    assert measured_steps(0, 10) == set()


def test_diagnostics_change_nothing_and_record_gates(tabular):
    config = dict(epochs=2, batch_size=128, quiet=True, device="cpu", weighting="pcgrad")
    runs = []
    for every in (0, 5):
        seed_everything(0)
        model = build_model("mmoe", tabular.features, tabular.tasks, expert=(16,), tower=(8,), n_experts=3)
        runs.append(fit(model, tabular, TrainConfig(diagnostics=every, **config)))
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(a, b)
    history = runs[1].history
    assert "cos_t1|t2" not in runs[0].history and history["cos_t1|t2"].between(-1, 1).all()
    assert history["conflict_any"].between(0, 1).all()
    for task in tabular.tasks:
        experts = history[[f"gate_gates_{task}_e{e}" for e in range(3)]]
        assert np.allclose(experts.sum(axis=1), 1.0)
        assert history[f"gate_entropy_gates_{task}"].between(0, math.log(3) + 1e-9).all()


def test_rep_grad_combines_on_the_representation(tabular):
    seed_everything(0)
    model = build_model("shared_bottom", tabular.features, tabular.tasks, bottom=(16,), tower=(8,))
    batch, labels = tabular.train.rows(torch.arange(64))
    rep = model.represent(batch)
    losses = nn.functional.binary_cross_entropy_with_logits(model.heads(rep), labels, reduction="none").mean(0)
    per_task = torch.stack([torch.autograd.grad(loss, rep, retain_graph=True)[0].flatten() for loss in losses])
    combined, _ = build_weighting("mgda", 3).combine(per_task, losses.detach())
    bottom = model.shared[0].weight
    expected = torch.autograd.grad(rep, bottom, combined.view_as(rep))[0]
    out = model.representation_step(*tabular.train.rows(torch.arange(64)))
    build_weighting("mgda", 3).backward(out.losses, out.shared)
    torch.testing.assert_close(bottom.grad, expected, rtol=1e-4, atol=1e-7)


def test_rep_grad_under_ew_is_the_plain_gradient_and_is_refused_where_it_cannot_be(tabular):
    config = dict(epochs=1, batch_size=128, quiet=True, device="cpu")
    runs = []
    for rep_grad in (False, True):
        seed_everything(0)
        model = build_model("shared_bottom", tabular.features, tabular.tasks, bottom=(16,), tower=(8,))
        runs.append(fit(model, tabular, TrainConfig(rep_grad=rep_grad, **config)).model)
    for a, b in zip(runs[0].parameters(), runs[1].parameters()):
        torch.testing.assert_close(a, b)
    mmoe = build_model("mmoe", tabular.features, tabular.tasks)
    with pytest.raises(ValueError, match="rep_grad needs a model with one shared representation.*MMoE has none"):
        fit(mmoe, tabular, TrainConfig(rep_grad=True, weighting="mgda", **config))
    bottom = build_model("shared_bottom", tabular.features, tabular.tasks, bottom=(16,), tower=(8,))
    with pytest.raises(ValueError, match="db_mtl keeps a running state per shared element.*rep_grad"):
        fit(bottom, tabular, TrainConfig(rep_grad=True, weighting="db_mtl", **config))
    with pytest.raises(ValueError, match="diagnostics must be an integer of at least 0"):
        TrainConfig(diagnostics=-1)


# --- Δm --------------------------------------------------------------------------------------------


def test_delta_m_by_hand():
    from mtlab.experiments.compare import delta_m, delta_m_table, summary_table

    rows = []
    for seed, (st_a, st_b, x_a, x_b) in enumerate([(0.80, 0.90, 0.84, 0.90), (0.80, 0.90, 0.88, 0.81)]):
        rows += [
            {"model": "single_task", "seed": seed, "task": "a", "auc": st_a, "logloss": 0.5},
            {"model": "single_task", "seed": seed, "task": "b", "auc": st_b, "logloss": 0.5},
            {"model": "x", "seed": seed, "task": "a", "auc": x_a, "logloss": 0.4},
            {"model": "x", "seed": seed, "task": "b", "auc": x_b, "logloss": 0.6},
        ]
    results = pd.DataFrame(rows)
    runs = delta_m(results).set_index(["model", "seed"])["delta_m"]
    # seed 0: (0.04/0.8 + 0/0.9)/2 = +2.5 %; seed 1: (0.08/0.8 − 0.09/0.9)/2 = 0 %
    assert runs[("x", 0)] == pytest.approx(2.5) and runs[("x", 1)] == pytest.approx(0.0, abs=1e-12)
    both = delta_m(results, metrics={"auc": True, "logloss": False}).set_index(["model", "seed"])["delta_m"]
    # logloss, lower is better: a −(0.4−0.5)/0.5 = +20 %, b −(0.6−0.5)/0.5 = −20 %: per task the mean of the two
    assert both[("x", 0)] == pytest.approx(((5 + 20) / 2 + (0 - 20) / 2) / 2)
    table = delta_m_table(results).set_index("model")
    assert table.loc["x", "Δm % (mean ± std)"] == f"+1.25 ± {np.std([2.5, 0.0], ddof=1):.2f}"
    assert table.loc["single_task", "delta_m_mean"] == pytest.approx(0.0)
    assert "Δm % (mean ± std)" in summary_table(results).columns
    with pytest.raises(ValueError, match="no runs of the baseline 'stl'"):
        delta_m(results, baseline="stl")


# --- the lab's experiment functions ----------------------------------------------------------------


def test_conflict_study_measures_more_conflict_on_less_correlated_tasks():
    from mtlab.experiments import get_profile
    from mtlab.experiments.gradient_lab import (
        conflict_statement,
        conflict_study,
        conflict_summary,
        lab_delta_m,
    )

    cfg = get_profile("quick", seeds=[0, 1], device="cpu")
    runs, histories = conflict_study(cfg, rhos=[0.9, 0.0], strategies=["ew", "pcgrad", "upgrad"], epochs=4)
    assert set(runs["strategy"]) == {"single_task", "ew", "pcgrad", "upgrad"}
    assert len(runs) == 2 * 4 * 2 * 2  # ρ × methods × seeds × tasks
    summary = conflict_summary(runs).set_index("rho")
    assert summary.loc[0.0, "conflict_mean mean"] > summary.loc[0.9, "conflict_mean mean"]
    assert summary.loc[0.0, "cos_mean mean"] < summary.loc[0.9, "cos_mean mean"]
    assert "cos_mean" in histories and histories["epoch"].max() == 4
    statement = conflict_statement(runs)
    assert "at ρ = 0.9" in statement and ("significantly" in statement or "no conclusion" in statement)
    delta = lab_delta_m(runs)
    assert set(delta.columns) >= {"rho", "strategy", "delta_m_mean", "delta_m_std", "p_paired"}


def test_leaderboard_skips_what_cannot_run_resumes_and_ranks(tmp_path):
    from mtlab.experiments import get_profile
    from mtlab.experiments.gradient_lab import leaderboard, leaderboard_statement, leaderboard_table

    cfg = get_profile("quick", seeds=[0, 1], device="cpu")
    path = tmp_path / "lab.csv"
    runs = leaderboard("movielens", cfg, ["single_task", "ew", "famo", "db_mtl"], results_path=path, epochs=1)
    assert runs.loc[runs["strategy"] == "db_mtl", "skipped"].str.contains("per shared element").all()
    assert len(runs) == 8 and path.exists()
    again = leaderboard("movielens", cfg, ["single_task", "ew", "famo", "db_mtl"], results_path=path, epochs=1)
    pd.testing.assert_frame_equal(runs.reset_index(drop=True), again.reset_index(drop=True), check_dtype=False)
    table = leaderboard_table(runs).set_index("strategy")
    assert table.loc["db_mtl", "Δm % (mean ± std)"].startswith("n/a")
    assert table.loc["single_task", "Δm % (mean ± std)"].startswith("+0.00")
    assert "within seed noise" in leaderboard_statement(table.reset_index()) or "EW" in leaderboard_statement(
        table.reset_index()
    )
    with pytest.raises(ValueError, match="unknown leaderboard dataset 'ml'; allowed values: census-income, movielens"):
        leaderboard("ml", cfg)
