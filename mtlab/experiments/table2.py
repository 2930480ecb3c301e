"""MPT-Rec, Table 2: eight multi-task designs on Census-Income (and on synthetic data at two task
correlations), mean ± std over seeds, gain over Single Task, paired tests, and the paper beside us."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import pandas as pd
from scipy import stats

from ..data import make_synthetic
from .artifacts import titled
from .compare import HIGHER_IS_BETTER, compare_models, delta_m_table, summarize
from .profiles import Profile
from .seed_stats import paired_p

TABLE2_MODELS = ("single_task", "shared_bottom", "mmoe", "ple", "stem", "sparse_sharing", "csrec", "mpt_rec")
DISPLAY_NAMES = {
    "single_task": "Single Task",
    "shared_bottom": "Shared Bottom",
    "mmoe": "MMoE",
    "ple": "PLE",
    "stem": "STEM",
    "sparse_sharing": "Sparse Sharing",
    "csrec": "CSRec",
    "mpt_rec": "MPT-Rec",
}

# The tasks of Table 2 per dataset: T1, T2. On Ali-CCP "the conversion rate" is read as CVR scored on
# the clicked impressions (ctcvr, over all impressions, is the other common reading: pass tasks).
TABLE2_TASKS = {"census-income": ("income", "marital"), "ali-ccp": ("ctr", "cvr")}

# MPT-Rec paper, Table 2: test AUC of T1 and T2 on Census-Income and Ali-CCP.
PAPER_TABLE2 = pd.concat(
    [
        pd.DataFrame(
            [
                ("single_task", 0.9443, 0.9834),
                ("shared_bottom", 0.9484, 0.9897),
                ("mmoe", 0.9494, 0.9901),
                ("ple", 0.9493, 0.9911),
                ("stem", 0.9487, 0.9906),
                ("sparse_sharing", 0.9489, 0.9914),
                ("csrec", 0.9502, 0.9915),
                ("mpt_rec", 0.9517, 0.9926),
            ],
            columns=["model", "income", "marital"],
        )
        .melt(id_vars="model", var_name="task", value_name="paper_auc")
        .assign(dataset="census-income"),
        pd.DataFrame(
            [
                ("single_task", 0.5730, 0.5903),
                ("shared_bottom", 0.5904, 0.5860),
                ("mmoe", 0.5881, 0.5968),
                ("ple", 0.5890, 0.5998),
                ("stem", 0.5938, 0.5983),
                ("sparse_sharing", 0.5897, 0.6065),
                ("csrec", 0.5913, 0.6070),
                ("mpt_rec", 0.5990, 0.6274),
            ],
            columns=["model", "ctr", "cvr"],
        )
        .melt(id_vars="model", var_name="task", value_name="paper_auc")
        .assign(dataset="ali-ccp"),
    ],
    ignore_index=True,
)

# MPT-Rec Sec. 4.1.3, per dataset: expert (or bottom) layers, feature embedding dimension, learning rate.
# Census-Income keeps the release's setup that the profiles and the model defaults already carry.
PAPER_SETTINGS = {"ali-ccp": {"layers": (128, 64), "emb_dim": 64, "lr": 1e-4}}


def paper_settings(dataset: str, models: Sequence[str]) -> tuple[dict[str, dict], dict]:
    """(model options per model, training overrides) of the paper for `dataset` ({} and {} where the
    defaults are the paper's)."""
    from ..models import MODELS

    setting = PAPER_SETTINGS.get(dataset)
    if setting is None:
        return {}, {}
    options = {}
    for name in models:
        params = inspect.signature(MODELS[name].__init__).parameters
        layer = "expert" if "expert" in params else "bottom" if "bottom" in params else None
        options[name] = {"emb_dim": setting["emb_dim"], **({layer: setting["layers"]} if layer else {})}
    return options, {"lr": setting["lr"]}


def significance(results: pd.DataFrame, baseline: str = "single_task", metric: str = "auc") -> pd.DataFrame:
    """Per model and task: mean ± std, gain over `baseline`, and paired t-tests across seeds against
    `baseline` and against the best other model (by mean) for that task."""
    table = summarize(results, metric)
    wide = results.pivot_table(index="seed", columns=["task", "model"], values=metric)
    rows = []
    for r in table.itertuples():
        task, model = r.task, r.model
        others = table[(table.task == task) & (table.model != model)]
        best = others.loc[others["mean"].idxmax(), "model"] if len(others) else None
        base = table[(table.task == task) & (table.model == baseline)]["mean"]
        rows.append(
            {
                "gain_vs_" + baseline: r.mean - base.iloc[0] if len(base) else float("nan"),
                "p_vs_" + baseline: paired_p(wide[(task, model)], wide[(task, baseline)])
                if model != baseline and (task, baseline) in wide
                else float("nan"),
                "best_other": best,
                "p_vs_best_other": paired_p(wide[(task, model)], wide[(task, best)]) if best else float("nan"),
            }
        )
    table = pd.concat([table, pd.DataFrame(rows)], axis=1)
    if baseline in set(results["model"]):  # Δm over all tasks, per model (the same on each of its rows)
        delta = delta_m_table(results, baseline, {metric: HIGHER_IS_BETTER.get(metric, True)}).set_index("model")
        table["Δm % (mean ± std)"] = table["model"].astype(str).map(delta["Δm % (mean ± std)"])
        table[f"p (Δm vs {baseline})"] = table["model"].astype(str).map(delta["p_paired"])
    return titled(
        "significance",
        table,
        "mean ± std, gain over the baseline, paired t-tests across seeds, Δm",
        keys=("model", "task"),
    )


def beside_paper(results: pd.DataFrame, dataset: str = "census-income") -> pd.DataFrame:
    """Our mean ± std beside the paper's Table 2 (its `dataset` column), with the difference and both
    rankings."""
    if dataset not in set(PAPER_TABLE2["dataset"]):
        raise ValueError(f"the paper's Table 2 has {', '.join(sorted(set(PAPER_TABLE2['dataset'])))}, not {dataset!r}")
    ours = summarize(results)
    ours["model"] = ours["model"].astype(str)
    paper = PAPER_TABLE2[PAPER_TABLE2["dataset"] == dataset].drop(columns="dataset")
    both = ours.merge(paper, on=["model", "task"], how="left")
    both["difference"] = both["mean"] - both["paper_auc"]
    both["our_rank"] = both.groupby("task")["mean"].rank(ascending=False).astype(int)
    both["paper_rank"] = both.groupby("task")["paper_auc"].rank(ascending=False)
    both.insert(0, "method", both["model"].map(DISPLAY_NAMES).fillna(both["model"]))
    table = both[["method", "model", "task", "mean ± std", "paper_auc", "difference", "our_rank", "paper_rank"]]
    return titled("table2_vs_paper", table, "MPT-Rec Table 2: ours beside the paper", keys=("model", "task"))


def ordering_agreement(results: pd.DataFrame, dataset: str = "census-income") -> pd.DataFrame:
    """Kendall's τ between our ranking of the models and the paper's, per task, and whether the
    paper's best and worst methods come out best and worst here."""
    both = beside_paper(results, dataset).dropna(subset=["paper_auc"])
    rows = []
    for task, part in both.groupby("task"):
        tau, p = stats.kendalltau(part["our_rank"], part["paper_rank"])
        rows.append(
            {
                "task": task,
                "kendall_tau": tau,
                "p_value": p,
                "paper_best": part.loc[part["paper_rank"].idxmin(), "method"],
                "our_best": part.loc[part["our_rank"].idxmin(), "method"],
                "paper_worst": part.loc[part["paper_rank"].idxmax(), "method"],
                "our_worst": part.loc[part["our_rank"].idxmax(), "method"],
            }
        )
    return pd.DataFrame(rows)


def synthetic_correlation_study(
    models: Sequence[str],
    profile: Profile,
    rhos: Sequence[float] = (0.9, 0.1),
    n_samples: int | None = None,
    noise: float = 1.0,
    **train_overrides,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same models on synthetic two-task data at each task correlation ρ (MMoE-style data).

    noise: the label noise ε. With the generator's near-noiseless default every model reaches an AUC
    of about 0.99 and no transfer can show; 1.0 leaves the AUC near 0.7–0.8 (chosen for headroom,
    not for any particular ordering of the models).
    Returns (results with a `rho` column, gains: the AUC gain over Single Task of the same seed, per
    ρ, model, seed and task: paired differences, so their spread is the seed noise of a gain).
    """
    n = n_samples or profile.synthetic_samples
    train_overrides.setdefault("batch_size", 128)  # a few thousand rows: small batches, enough steps
    frames = []
    for rho in rhos:
        data = make_synthetic(n_samples=n, rho=rho, noise=noise, seed=0)
        results, _ = compare_models(data, models, profile, quiet=True, **train_overrides)
        frames.append(results.assign(rho=rho))
    results = pd.concat(frames, ignore_index=True)
    gains = results[["rho", "model", "seed", "task", "auc"]].copy()
    single = gains[gains.model == "single_task"].set_index(["rho", "seed", "task"])["auc"]
    gains["gain_vs_single_task"] = (
        gains["auc"] - single.reindex(list(zip(gains.rho, gains.seed, gains.task))).to_numpy()
    )
    return results, titled(
        "synthetic_gains",
        gains,
        "synthetic study: AUC gain over Single Task (same seed) by task correlation, per seed",
        keys=("rho", "model", "seed", "task"),
    )


def ordering_statement(agreement: pd.DataFrame) -> str:
    """A plain sentence per task on whether the paper's ordering of the methods came out."""
    lines = []
    for r in agreement.itertuples():
        same_best = r.our_best == r.paper_best
        verdict = (
            "matches the paper's ordering closely"
            if r.kendall_tau >= 0.7 and same_best
            else "partly matches the paper's ordering"
            if r.kendall_tau > 0.3
            else "does NOT reproduce the paper's ordering"
        )
        lines.append(
            f"{r.task}: our ranking {verdict} (Kendall τ = {r.kendall_tau:.2f}); best here: {r.our_best} "
            f"(paper: {r.paper_best}); worst here: {r.our_worst} (paper: {r.paper_worst})."
        )
    return "\n".join(lines)


def check_models(models: Sequence[str] | None) -> tuple[str, ...]:
    """The Table 2 models by default; unknown names get an error that lists the registered ones."""
    from ..models import MODELS, trains_on

    tasks = TABLE2_TASKS["census-income"]
    allowed = sorted(m for m, cls in MODELS.items() if not trains_on(cls, "tabular", tasks))  # those that train here
    models = tuple(models) if models else TABLE2_MODELS
    unknown = [m for m in models if m not in allowed]
    if unknown:
        why = [trains_on(MODELS[m], "tabular", tasks) for m in unknown if m in MODELS]
        raise ValueError(
            f"{'; '.join(why) + ': ' if why else ''}model(s) {unknown} cannot train here; allowed values: {', '.join(allowed)}"
        )
    return models


def correlation_statement(gains: pd.DataFrame, alpha: float = 0.05) -> str:
    """Plain reading of the synthetic study: mean gain of the sharing models over Single Task per ρ,
    and whether it differs between the highest and the lowest ρ by a paired t-test over the (model,
    seed, task) gains both share; a claim only where p < alpha."""
    sharing = gains[gains["model"] != "single_task"]
    per_rho = sharing.groupby("rho", sort=False)["gain_vs_single_task"].agg(["mean", "std"])
    parts = [
        f"ρ = {rho}: mean AUC gain of the sharing models over Single Task {r['mean']:+.4f} ± {r['std']:.4f}"
        for rho, r in per_rho.iterrows()
    ]
    high, low = per_rho.index.max(), per_rho.index.min()
    wide = sharing.pivot_table(index=["model", "seed", "task"], columns="rho", values="gain_vs_single_task").dropna()
    p = paired_p(wide[high], wide[low]) if high != low else float("nan")
    difference = (wide[high] - wide[low]).mean() if high != low else float("nan")
    if p < alpha and difference > 0:
        verdict = (
            f"sharing pays significantly more on the more correlated tasks (paired t-test over {len(wide)} "
            f"model × seed × task gains, p = {p:.2g}), as the MMoE paper reports"
        )
    elif p < alpha:
        verdict = (
            f"sharing pays significantly LESS on the more correlated tasks here (paired t-test over {len(wide)} "
            f"gains, p = {p:.2g})"
        )
    else:
        verdict = (
            f"the difference between ρ = {high} and ρ = {low} ({difference:+.4f}) is within seed noise (paired "
            f"t-test over {len(wide)} gains, p = {p:.2g}): no conclusion either way"
        )
    return "; ".join(parts) + f". So {verdict}."
