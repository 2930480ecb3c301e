"""The gradient lab (notebook 13): negative transfer made visible, and every weighting strategy
compared on the same data with honest statistics.

1. `conflict_study`: synthetic tasks whose weight vectors have cosine ρ (mtlab.data.synthetic),
   few training samples per task (and a large test split, so that the AUC is steady), and a Shared
   Bottom whose shared layer is narrow (2 units for all tasks, against 2 per task for the Single
   Task baseline), batches of 128 (so a batch's gradient shows the tasks' relation more than its
   sampling noise): the setting where tasks must fight over shared
   capacity. Every strategy trains with gradient diagnostics (mtlab.train.diagnostics) measured at
   many steps an epoch, so the gradient cosine and the share of conflicting steps are measured, not
   inferred; Δm over Single Task says what each strategy does about it.
2. `leaderboard`: every strategy on Census-Income (MMoE) and on MovieLens (MF with its auxiliary
   tasks), Δm over the single-task model with its spread over seeds and paired t-tests.

Claims are made by `conflict_statement` and `leaderboard_statement` only where a paired test
supports them (p < 0.05).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..data import load_rec_dataset, make_synthetic
from ..data.task_kinds import MAIN_METRICS
from ..weighting import STRATEGIES
from .artifacts import titled
from .compare import delta_m_table
from .profiles import Profile
from .single_run import load_for_profile, train_one
from .store import ResultsStore

SINGLE_TASK = "single_task"
NARROW = {"bottom": (2,), "tower": ()}  # the lab's shared capacity: one narrow layer (per task for Single Task)
CENSUS_TASKS = ("income", "marital")
ALPHA = 0.05


@dataclass(frozen=True)
class LabSettings:
    """The lab's sizes in a profile (the synthetic study and the leaderboard)."""

    synthetic_samples: int  # rows per synthetic dataset: 40 % train, 10 % valid, 50 % test (a steady AUC)
    synthetic_epochs: int
    synthetic_batch: int
    synthetic_lr: float
    diagnostics: int  # measured steps an epoch
    census_subsample: float | None
    census_epochs: int
    census_batch: int
    rec_dataset: str
    rec_epochs: int


LAB = {
    "quick": LabSettings(
        synthetic_samples=8_000,
        synthetic_epochs=4,
        synthetic_batch=128,
        synthetic_lr=3e-3,
        diagnostics=10,
        census_subsample=0.02,
        census_epochs=4,
        census_batch=256,
        rec_dataset="ml-100k",
        rec_epochs=2,
    ),
    "full": LabSettings(
        synthetic_samples=8_000,
        synthetic_epochs=15,
        synthetic_batch=128,
        synthetic_lr=3e-3,
        diagnostics=20,
        census_subsample=None,
        census_epochs=30,
        census_batch=256,
        rec_dataset="ml-1m",
        rec_epochs=100,
    ),
}


def lab_settings(profile: Profile) -> LabSettings:
    return LAB.get(profile.name, LAB["quick"])


def check_strategies(strategies: Sequence[str] | None) -> tuple[str, ...]:
    """Every registered strategy but PMTRec (it weights a recommender's table rows) by default."""
    names = tuple(strategies) if strategies else tuple(s for s in STRATEGIES if s != "pmtrec")
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; allowed values: {', '.join(STRATEGIES)}")
    return names


# --- 1. the synthetic conflict study ---------------------------------------------------------------


def conflict_study(
    profile: Profile,
    rhos: Sequence[float] = (0.9, 0.5, 0.0),
    n_tasks: int = 2,
    strategies: Sequence[str] | None = None,
    noise: float = 0.3,
    **overrides,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every strategy (Shared Bottom, narrow) and Single Task on synthetic tasks at each ρ, every
    seed of the profile. Returns (runs: one row per ρ, strategy, seed and task with the test AUC and
    the run's mean gradient cosine and conflict fractions; histories: one row per epoch)."""
    settings = lab_settings(profile)
    runs, histories = [], []
    for rho in rhos:
        data = make_synthetic(
            n_samples=settings.synthetic_samples,
            n_tasks=n_tasks,
            rho=rho,
            dim=16,
            noise=noise,
            valid_fraction=0.1,
            test_fraction=0.5,
            seed=0,
        )
        for strategy in (SINGLE_TASK, *check_strategies(strategies)):
            model, weighting = (SINGLE_TASK, "ew") if strategy == SINGLE_TASK else ("shared_bottom", strategy)
            for seed in profile.seeds:
                config = dict(
                    epochs=settings.synthetic_epochs,
                    batch_size=settings.synthetic_batch,
                    patience=0,
                    lr=settings.synthetic_lr,
                    diagnostics=settings.diagnostics,
                    weighting=weighting,
                    quiet=True,
                )
                config.update(overrides)
                out = train_one(model, data, profile, seed, NARROW, **config)
                history = out["history"]
                measured = {
                    c: float(history[c].mean()) if c in history else np.nan
                    for c in ("cos_mean", "conflict_mean", "conflict_any")
                }
                for task, metrics in out["test"].items():
                    runs.append(
                        {
                            "rho": rho,
                            "n_tasks": n_tasks,
                            "strategy": strategy,
                            "seed": seed,
                            "task": task,
                            "auc": metrics["auc"],
                            **measured,
                            "seconds": out["seconds"],
                        }
                    )
                histories.append(history.assign(rho=rho, n_tasks=n_tasks, strategy=strategy, seed=seed))
    return (
        titled(
            "conflict_runs",
            pd.DataFrame(runs),
            "synthetic conflict study: test AUC and gradient conflict",
            keys=("rho", "strategy", "seed", "task"),
        ),
        titled(
            "conflict_histories",
            pd.concat(histories, ignore_index=True),
            "per epoch, with diagnostics",
            keys=("rho", "strategy", "seed", "epoch"),
        ),
    )


def conflict_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per ρ: the gradient cosine and conflict fraction of the shared models (mean ± std over
    strategies and seeds) and EW's Δm over Single Task."""
    shared = runs[runs["strategy"] != SINGLE_TASK].drop_duplicates(["rho", "strategy", "seed"])
    table = shared.groupby("rho", sort=False)[["cos_mean", "conflict_mean"]].agg(["mean", "std"])
    table.columns = [f"{a} {b}" for a, b in table.columns]
    delta = lab_delta_m(runs)
    ew = (
        delta[delta["strategy"] == "ew"].set_index("rho")["Δm % (mean ± std)"]
        if "ew" in set(runs["strategy"])
        else None
    )
    if ew is not None:
        table["EW Δm % over Single Task"] = ew.reindex(table.index)
    return titled("conflict_summary", table.reset_index(), "gradient conflict by task correlation ρ", keys=("rho",))


def lab_delta_m(runs: pd.DataFrame) -> pd.DataFrame:
    """Δm (%) of every strategy over Single Task, per ρ: mean ± std over seeds and paired t-test."""
    return delta_m_table(runs, SINGLE_TASK, {"auc": True}, method="strategy", within=("rho",))


def conflict_statement(runs: pd.DataFrame) -> str:
    """Whether the conflict fraction rises from the highest ρ to the lowest, by a paired t-test over
    the (strategy, seed) runs both settings share; a claim only where p < 0.05."""
    shared = runs[runs["strategy"] != SINGLE_TASK].drop_duplicates(["rho", "strategy", "seed"])
    high, low = shared["rho"].max(), shared["rho"].min()
    wide = shared.pivot_table(index=["strategy", "seed"], columns="rho", values="conflict_mean").dropna()
    diff = wide[low] - wide[high]
    p = float(stats.ttest_rel(wide[low], wide[high]).pvalue) if len(wide) > 1 and diff.std() > 0 else float("nan")
    text = (
        f"Share of measured steps with conflicting task gradients (cosine < 0): {wide[high].mean():.1%} at "
        f"ρ = {high:g}, {wide[low].mean():.1%} at ρ = {low:g} (paired over {len(wide)} strategy × seed runs, "
        f"p = {p:.2g}). "
    )
    if p < ALPHA and diff.mean() > 0:
        return text + "Conflicts are significantly more frequent on the less correlated tasks."
    if p < ALPHA:
        return text + "Conflicts are significantly LESS frequent on the less correlated tasks here."
    return text + "The difference is within seed noise: no conclusion."


def delta_m_statement(delta: pd.DataFrame, within: str = "rho") -> str:
    """Which strategies differ from the Single Task baseline by a paired test (p < 0.05), per setting."""
    lines = []
    for value, part in delta.groupby(within, sort=False):
        part = part[part["strategy"] != SINGLE_TASK]
        better = part[(part["p_paired"] < ALPHA) & (part["delta_m_mean"] > 0)]["strategy"].tolist()
        worse = part[(part["p_paired"] < ALPHA) & (part["delta_m_mean"] < 0)]["strategy"].tolist()
        lines.append(
            f"{within} = {value}: significantly better than Single Task: {', '.join(better) or 'none'}; "
            f"significantly worse: {', '.join(worse) or 'none'}; the other {len(part) - len(better) - len(worse)} "
            f"within seed noise (paired t-test over {int(part['seeds'].max())} seeds, p < {ALPHA})."
        )
    return "\n".join(lines)


# --- 2. the leaderboard ----------------------------------------------------------------------------


def not_applicable(dataset: str, strategy: str) -> str | None:
    """Why a strategy cannot run on a leaderboard dataset (None: it can)."""
    if dataset == "movielens" and strategy in STRATEGIES and STRATEGIES[strategy].per_element_state:
        return "keeps a running state per shared element; MF shares the rows each batch reads"
    return None


def rec_tasks(data) -> tuple[str, ...]:
    """The recommender's tasks on the leaderboard: rec and every auxiliary task but align (its loss,
    alignment plus uniformity, is negative, and several strategies take logarithms of the losses)."""
    return tuple(t for t in data.tasks if t != "align")


def leaderboard(
    dataset: str, profile: Profile, strategies: Sequence[str] | None = None, results_path=None, **overrides
) -> pd.DataFrame:
    """Every strategy with every seed on `dataset` ("census-income": MMoE on income and marital;
    "movielens": MF on the profile's MovieLens with its auxiliary tasks), and "single_task" (Single
    Task; MF on rec alone), the baseline of Δm. `strategies`: None = single_task and every strategy.
    One row per strategy, seed and task (MF: the rec task) with the test metrics, the run's mean
    gradient cosine and conflict, the final gate utilization (MMoE), epochs and seconds; a strategy
    that cannot run there gets rows with `skipped` saying why.
    results_path: a CSV every finished run is appended to; runs already in it are not run again
    (`mtlab sweep lab_census lab_movielens` fills such files in parallel)."""
    from ..data import DATASETS, kind_of

    if dataset not in LEADERBOARD_DATASETS and (dataset not in DATASETS or kind_of(dataset) != "tabular"):
        raise ValueError(
            f"unknown leaderboard dataset {dataset!r}; allowed values: {', '.join(LEADERBOARD_DATASETS)}, or any "
            f"tabular dataset ({', '.join(n for n in DATASETS if kind_of(n) == 'tabular')})"
        )
    settings = lab_settings(profile)
    names = (SINGLE_TASK, *check_strategies(None)) if strategies is None else tuple(strategies)
    check_strategies([s for s in names if s != SINGLE_TASK] or None)
    store = ResultsStore(results_path, ["strategy", "seed"])
    census = dataset != "movielens"  # MMoE on tabular data (Census-Income's two tasks, or every task of another)
    data = None
    for strategy in names:
        reason = not_applicable(dataset, strategy)
        for seed in store.pending((strategy,), profile.seeds):
            if reason:
                new = [{"dataset": dataset, "strategy": strategy, "seed": seed, "skipped": reason}]
            else:
                data = data or _leaderboard_data(dataset, profile, settings)
                new = _leaderboard_run(data, census, strategy, seed, profile, settings, **overrides)
                new = [{"dataset": dataset, **row} for row in new]
            store.add(new)
    runs = store.frame(strategy=names, seed=profile.seeds)
    label = "census-income (MMoE)" if census else f"{settings.rec_dataset} (MF)"
    keys = ("strategy", "seed", "task") if "task" in runs else ("strategy", "seed")
    return titled(f"leaderboard_{dataset}", runs, f"every strategy on {label}: test metrics per seed", keys=keys)


LEADERBOARD_DATASETS = ("census-income", "movielens")


def _leaderboard_data(dataset: str, profile: Profile, settings: LabSettings):
    """Census-Income's two tasks at the lab's subsample; MovieLens of the profile; any other tabular
    dataset (a table of your own) with every task, every row."""
    if dataset == "census-income":
        return load_for_profile("census-income", list(CENSUS_TASKS), _subsampled(profile, settings.census_subsample))
    if dataset == "movielens":
        return load_rec_dataset(settings.rec_dataset)
    return load_for_profile(dataset, None, _subsampled(profile, None))


def _subsampled(profile: Profile, fraction: float | None) -> Profile:
    from dataclasses import replace

    return replace(profile, subsample=fraction)


def _leaderboard_run(
    data, census: bool, strategy: str, seed: int, profile: Profile, settings: LabSettings, **overrides
) -> list[dict]:
    single = strategy == SINGLE_TASK
    weighting = "ew" if single else strategy
    if census:
        options = {"epochs": settings.census_epochs, "batch_size": settings.census_batch, **overrides}
        out = train_one(
            SINGLE_TASK if single else "mmoe", data, profile, seed, weighting=weighting, quiet=True, **options
        )
        per_task = out["test"].items()
    else:
        options = {"epochs": settings.rec_epochs, **overrides}
        out = train_one(
            "mf",
            data,
            profile,
            seed,
            tasks=("rec",) if single else rec_tasks(data),
            weighting=weighting,
            quiet=True,
            **options,
        )
        per_task = [("rec", out["test"]["rec"])]
    history = out["history"]
    measured = {c: float(history[c].mean()) for c in ("cos_mean", "conflict_mean") if c in history}
    gates = {c: float(history[c].iloc[-1]) for c in history if c.startswith("gate_")}  # at the end of training
    return [
        {
            "strategy": strategy,
            "seed": seed,
            "task": task,
            **metrics,
            **measured,
            **gates,
            "epochs": out["epochs"],
            "seconds": out["seconds"],
        }
        for task, metrics in per_task
    ]


def leaderboard_table(runs: pd.DataFrame, metrics: dict[str, bool] | None = None) -> pd.DataFrame:
    """One row per strategy, best Δm first: each task's metric (mean ± std), Δm (%) over the
    single-task model with its spread and paired test, the paired test against EW, and seconds."""
    census = any(m in runs for m in MAIN_METRICS)  # tabular tasks, of any kind
    if metrics is None and census:  # each task's main metric (AUC, RMSE, accuracy), each with its sign
        from .compare import HIGHER_IS_BETTER, main_metric

        metrics = {m: HIGHER_IS_BETTER[m] for m in dict.fromkeys(main_metric(runs[runs["task"].notna()]).values())}
    metrics = metrics or {"recall@40": True, "ndcg@40": True}
    skipped = runs[runs["skipped"].notna()] if "skipped" in runs else runs.iloc[:0]
    ran = runs[runs["skipped"].isna()] if "skipped" in runs else runs
    delta = delta_m_table(ran, SINGLE_TASK, metrics, method="strategy").set_index("strategy")
    ew_runs = delta_m_per_seed(ran, metrics)
    table = pd.DataFrame(index=delta.index)
    for metric in metrics:
        for task, part in ran.groupby("task", sort=False):
            if part[metric].isna().all():  # a task of another kind
                continue
            grouped = part.groupby("strategy", sort=False)[metric]
            label = f"{metric} {task}" if census else metric
            table[label] = grouped.mean().map("{:.4f}".format) + " ± " + grouped.std().fillna(0).map("{:.4f}".format)
    table["Δm % (mean ± std)"] = delta["Δm % (mean ± std)"]
    table["p vs single task"] = delta["p_paired"]
    table["p vs EW"] = [float("nan") if s == "ew" else _paired(ew_runs, s, "ew") for s in table.index]
    table["seconds"] = ran.groupby("strategy", sort=False)["seconds"].mean()
    table["_order"] = delta["delta_m_mean"]
    table = table.sort_values("_order", ascending=False).drop(columns="_order")
    if len(skipped):
        for strategy, reason in skipped.groupby("strategy")["skipped"].first().items():
            table.loc[strategy] = {"Δm % (mean ± std)": f"n/a: {reason}"}
    return titled(
        "leaderboard",
        table.rename_axis("strategy").reset_index(),
        "Δm over the single-task model, mean ± std over seeds, paired t-tests",
        keys=("strategy",),
    )


def delta_m_per_seed(ran: pd.DataFrame, metrics: dict[str, bool]) -> pd.DataFrame:
    from .compare import delta_m

    return delta_m(ran, SINGLE_TASK, metrics, method="strategy").pivot(
        index="seed", columns="strategy", values="delta_m"
    )


def _paired(wide: pd.DataFrame, a: str, b: str) -> float:
    from .seed_stats import paired_p

    return paired_p(wide[a], wide[b]) if a in wide and b in wide else float("nan")


def leaderboard_statement(table: pd.DataFrame) -> str:
    """The strategies whose Δm differs from EW's by a paired test (p < 0.05); no other claim."""
    rows = table[table["p vs EW"].notna() & (table["strategy"] != SINGLE_TASK)]
    better = rows[(rows["p vs EW"] < ALPHA) & (_delta(rows) > _delta(table[table["strategy"] == "ew"]).iloc[0])]
    worse = rows[(rows["p vs EW"] < ALPHA) & ~rows["strategy"].isin(better["strategy"])]
    return (
        f"Better than EW by a paired test (p < {ALPHA}): {', '.join(better['strategy']) or 'none'}; worse: "
        f"{', '.join(worse['strategy']) or 'none'}; the other {len(rows) - len(better) - len(worse)} strategies are "
        f"within seed noise of EW."
    )


def _delta(rows: pd.DataFrame) -> pd.Series:
    return rows["Δm % (mean ± std)"].str.split(" ± ").str[0].astype(float)
