"""PMTRec experiments: strategies × datasets (the benchmark), the α × τ sensitivity grid, the
ablations, and how the per-user task weights are distributed and move over epochs."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..data import InteractionData, load_rec_dataset
from .artifacts import titled
from .compare import delta_m_table
from .profiles import Profile
from .single_run import train_one, train_seeds
from .store import ResultsStore

BASELINES = ("ew", "uw", "dwa", "rlw", "pcgrad", "mgda", "cagrad", "imtl_g", "gradnorm", "nash_mtl")
# A reference row, not a weighting: the same recommender trained on BPR alone (no auxiliary task).
SINGLE_TASK = "single_task"
# PMTRec paper: its largest gain, NDCG@40 on Amazon Office (not available offline).
PAPER_HEADLINE = "PMTRec improves NDCG@40 by up to 11.58 % over the best baseline (Amazon Office)"
# The benchmark's datasets per profile: the full one is the closing table's (ML-1M and FilmTrust). The
# quick one is FilmTrust alone: ML-100K beside it took about 3 of CI's 30 minutes (pass datasets to add it).
BENCHMARK_DATASETS = {"quick": ("filmtrust",), "full": ("ml-1m", "filmtrust")}


def train_recommender(
    data: InteractionData,
    strategy: str,
    profile: Profile,
    seed: int,
    tasks=None,
    on_epoch=None,
    model_options: dict | None = None,
    **overrides,
) -> dict:
    """MF with `tasks` (default: all the data support) trained by `strategy` in the one fit loop
    (`train_one`), the profile's recommender settings. "test" holds rec's Recall@K / NDCG@K."""
    out = train_one(
        "mf",
        data,
        profile,
        seed,
        model_options,
        on_epoch=on_epoch,
        tasks=tasks,
        weighting=strategy,
        quiet=True,
        **overrides,
    )
    return {
        **out,
        "test": out["test"]["rec"],
        "test_tasks": out["test"],
        "seconds": float(out["history"]["train_seconds"].sum()),
    }


def train_recommenders(
    data: InteractionData,
    strategy: str,
    profile: Profile,
    seeds=None,
    tasks=None,
    model_options: dict | None = None,
    **overrides,
) -> list[dict]:
    """`train_recommender` for each seed (default: the profile's), in one process: seed-vectorized where
    the strategy allows it (`experiments.train_seeds`), else one after another."""
    outs = train_seeds(
        "mf", data, profile, seeds, model_options, tasks=tasks, weighting=strategy, quiet=True, **overrides
    )
    return [
        {
            **out,
            "test": out["test"]["rec"],
            "test_tasks": out["test"],
            "seconds": float(out["history"]["train_seconds"].sum()),
        }
        for out in outs
    ]


def pmtrec_benchmark(
    datasets: Sequence[str], strategies: Sequence[str], profile: Profile, results_path=None, **overrides
) -> pd.DataFrame:
    """Every strategy on every dataset with every seed: test Recall@K and NDCG@K, one row per run.
    The strategy "single_task" trains on the recommendation task alone, for reference.
    results_path: a CSV every finished run is appended to; runs already there are not run again."""
    store = ResultsStore(results_path, ["dataset", "strategy", "seed"])
    for name in datasets:
        data = None
        for strategy in strategies:
            pending = store.pending((name, strategy), profile.seeds)
            if not pending:
                continue
            data = data or load_rec_dataset(name)
            single = strategy == SINGLE_TASK
            for out in train_recommenders(
                data, "ew" if single else strategy, profile, pending, tasks=("rec",) if single else None, **overrides
            ):
                row = {
                    "dataset": name,
                    "strategy": strategy,
                    "seed": out["seed"],
                    **out["test"],
                    "epochs": out["epochs"],
                    "seconds": out["seconds"],
                }
                store.add([row])
    runs = store.frame(dataset=datasets, strategy=strategies, seed=profile.seeds)
    return titled(
        "pmtrec_benchmark", runs, "every strategy, dataset and seed: test metrics", keys=("dataset", "strategy", "seed")
    )


def mean_pm_std(grouped) -> pd.DataFrame:
    """'mean ± std' over each group (a std of one seed counts as 0), to four decimals."""
    return grouped.mean().map("{:.4f}".format) + " ± " + grouped.std().fillna(0).map("{:.4f}".format)


def summarize_benchmark(runs: pd.DataFrame, metrics=("recall@40", "ndcg@40")) -> pd.DataFrame:
    """Mean ± std per dataset and strategy; Δm (%) of the recommendation metrics over the single-task
    MF (rec alone) of the same dataset, with its spread over seeds and paired test, where it ran."""
    table = mean_pm_std(runs.groupby(["dataset", "strategy"], sort=False)[list(metrics)]).reset_index()
    if SINGLE_TASK in set(runs["strategy"]):
        delta = delta_m_table(
            runs.assign(task="rec"), SINGLE_TASK, {m: True for m in metrics}, method="strategy", within=("dataset",)
        )
        table = table.merge(
            delta[["dataset", "strategy", "Δm % (mean ± std)", "p_paired"]], how="left", on=["dataset", "strategy"]
        )
    return titled(
        "pmtrec_summary",
        table,
        "test metrics, mean ± std over seeds; Δm over single-task MF",
        keys=("dataset", "strategy"),
    )


def pmtrec_gains(runs: pd.DataFrame, metrics=("recall@40", "ndcg@40")) -> pd.DataFrame:
    """PMTRec's relative change over the best baseline (by mean), per dataset."""
    means = runs.groupby(["dataset", "strategy"], sort=False)[list(metrics)].mean()
    gains = []
    for dataset in runs["dataset"].unique():
        part = means.loc[dataset]
        if "pmtrec" in part.index and len(part.drop(index=[SINGLE_TASK], errors="ignore")) > 1:
            best = part.drop(index=["pmtrec", SINGLE_TASK], errors="ignore").max()
            gains.append(
                {
                    "dataset": dataset,
                    **{
                        f"PMTRec vs best baseline, {m}": f"{100 * (part.loc['pmtrec', m] / best[m] - 1):+.2f} %"
                        for m in metrics
                    },
                }
            )
    return titled(
        "pmtrec_gain",
        pd.DataFrame(gains, columns=["dataset", *(f"PMTRec vs best baseline, {m}" for m in metrics)]),
        "PMTRec's change over the best baseline",
        keys=("dataset",),
    )


GRID_ALPHAS, GRID_TAUS = (1.0, 1.1, 1.2, 1.3, 1.5), (0.5, 1.0, 2.0, 5.0)  # notebook 11's grid


def alpha_tau_runs(
    data: InteractionData,
    profile: Profile,
    alphas=GRID_ALPHAS,
    taus=GRID_TAUS,
    results_path=None,
    **overrides,
) -> pd.DataFrame:
    """PMTRec's test metrics for every (α, τ) and seed of the profile: one row per (α, τ, seed).
    results_path: a CSV of such rows that every finished cell is appended to; cells and seeds already
    there are not run again (`mtlab sweep pmtrec_grid` fills it in parallel)."""
    store = ResultsStore(results_path, ["alpha", "tau", "seed"])
    for alpha in alphas:
        for tau in taus:
            pending = store.pending((alpha, tau), profile.seeds)
            if not pending:
                continue
            new = [
                {"alpha": alpha, "tau": tau, "seed": out["seed"], **out["test"]}
                for out in train_recommenders(
                    data, "pmtrec", profile, pending, weighting_options={"alpha": alpha, "tau": tau}, **overrides
                )
            ]
            store.add(new)
    runs = store.frame(alpha=alphas, tau=taus, seed=profile.seeds)
    return titled("alpha_tau_runs", runs, "PMTRec over α × τ: test metrics per seed", keys=("alpha", "tau", "seed"))


def grid_from_runs(runs: pd.DataFrame, metric: str = "ndcg@40", alphas=None, taus=None) -> pd.DataFrame:
    """`metric` of `alpha_tau_runs`, mean over seeds: rows α, columns τ (in the order given; default
    sorted)."""
    grid = (
        runs.groupby(["alpha", "tau"])[metric].mean().reset_index().pivot(index="alpha", columns="tau", values=metric)
    )
    grid = grid.loc[
        list(alphas) if alphas is not None else grid.index, list(taus) if taus is not None else grid.columns
    ]
    return titled("alpha_tau_grid", grid, f"PMTRec {metric} over α (rows) × τ (columns), mean over seeds")


def alpha_tau_grid(
    data: InteractionData,
    profile: Profile,
    alphas=GRID_ALPHAS,
    taus=GRID_TAUS,
    metric: str = "ndcg@40",
    results_path=None,
    **overrides,
) -> pd.DataFrame:
    """`metric` of PMTRec for every (α, τ), mean over the profile's seeds: rows α, columns τ
    (`alpha_tau_runs`, then `grid_from_runs`)."""
    runs = alpha_tau_runs(data, profile, alphas, taus, results_path, **overrides)
    return grid_from_runs(runs, metric, alphas, taus)


ABLATIONS = {
    "PMTRec": ("pmtrec", {}, None),
    "without Task Focusing": ("pmtrec", {"task_focusing": False}, None),
    "without GMB": ("pmtrec", {"balancing": False}, None),
    "single task (rec only)": ("ew", {}, ("rec",)),
}


def pmtrec_ablations(
    data: InteractionData, profile: Profile, variants=tuple(ABLATIONS), results_path=None, **overrides
) -> pd.DataFrame:
    """Test metrics of every variant of ABLATIONS per seed. results_path: a CSV every finished run is
    appended to; (variant, seed) pairs already there are not run again."""
    store = ResultsStore(results_path, ["variant", "seed"])
    for variant in variants:
        strategy, options, tasks = ABLATIONS[variant]
        pending = store.pending((variant,), profile.seeds)
        if not pending:
            continue
        new = [
            {"variant": variant, "seed": out["seed"], **out["test"]}
            for out in train_recommenders(
                data, strategy, profile, pending, tasks=tasks, weighting_options=options, **overrides
            )
        ]
        store.add(new)
    runs = store.frame(variant=variants, seed=profile.seeds)
    return titled("pmtrec_ablations", runs, "PMTRec ablations: test metrics per seed", keys=("variant", "seed"))


def weight_trajectory(data: InteractionData, profile: Profile, seed: int = 0, **overrides) -> pd.DataFrame:
    """PMTRec's per-user task weights after each epoch (the users of the epoch's last batch that
    some task's gradient reached): one row per epoch, user and task; `.attrs["test"]` holds the
    trained model's test metrics."""
    frames = []

    def capture(row, strategy):
        weights, users = strategy.last_weights[0].cpu(), strategy.last_rows[0].cpu()  # [T, U], [U]
        reached = weights.sum(0) > 0  # a gathered row whose gradient is exactly zero in every task has no weights
        weights, users = weights[:, reached], users[reached]
        frames.append(
            pd.DataFrame(
                {
                    "epoch": row["epoch"],
                    "user": users.repeat(len(tasks)).numpy(),
                    "task": [t for t in tasks for _ in range(len(users))],
                    "weight": weights.flatten().numpy(),
                }
            )
        )
        return False

    tasks = data.tasks
    out = train_recommender(data, "pmtrec", profile, seed, tasks=tasks, on_epoch=capture, **overrides)
    trajectory = pd.concat(frames, ignore_index=True)
    trajectory.attrs["test"] = out["test"]
    return trajectory


def weight_summary(trajectory: pd.DataFrame) -> pd.DataFrame:
    """Quartiles of the per-user weight of each task, per epoch, and how personal the weights are:
    the spread (std) of a task's weight across users."""
    table = trajectory.groupby(["epoch", "task"], sort=False)["weight"].describe()
    table = table[["mean", "std", "25%", "50%", "75%"]].reset_index()
    return titled(
        "pmtrec_weights", table, "per-user task weights: mean, spread and quartiles per epoch", keys=("epoch", "task")
    )


def summarize_ablations(ablations: pd.DataFrame, metrics=("recall@40", "ndcg@40")) -> pd.DataFrame:
    """Mean ± std per variant; Δm (%) over the single-task variant with its paired test."""
    table = mean_pm_std(ablations.groupby("variant", sort=False)[list(metrics)]).reset_index()
    single = "single task (rec only)"
    if single in set(ablations["variant"]):
        delta = delta_m_table(ablations.assign(task="rec"), single, {m: True for m in metrics}, method="variant")
        table = table.merge(delta[["variant", "Δm % (mean ± std)", "p_paired"]], how="left", on="variant")
    return titled(
        "pmtrec_ablations_summary",
        table,
        "PMTRec ablations, mean ± std over seeds; Δm over single task",
        keys=("variant",),
    )


def auxiliary_task_study(
    data: InteractionData, profile: Profile, strategies=("ew", "pmtrec"), **overrides
) -> pd.DataFrame:
    """Which auxiliary task helps or hurts the recommendation task: test NDCG@40 and Recall@40 of
    rec alone, of rec with each auxiliary task the data supports, and of rec with all of them, under
    each strategy; mean over the profile's seeds, with the change against rec alone."""
    aux = [t for t in data.tasks if t != "rec"]
    task_sets = {"rec alone": ("rec",), **{f"rec + {t}": ("rec", t) for t in aux}, "rec + all": data.tasks}
    rows = []
    for label, tasks in task_sets.items():
        for strategy in strategies if len(tasks) > 1 else strategies[:1]:
            for out in train_recommenders(data, strategy, profile, tasks=tasks, **overrides):
                rows.append(
                    {
                        "tasks": label,
                        "strategy": strategy if len(tasks) > 1 else "-",
                        "seed": out["seed"],
                        **{m: out["test"][m] for m in ("recall@40", "ndcg@40")},
                    }
                )
    runs = pd.DataFrame(rows)
    table = runs.groupby(["tasks", "strategy"], sort=False)[["recall@40", "ndcg@40"]].mean()
    alone = table.loc[("rec alone", "-"), "ndcg@40"]
    table["ndcg@40 change vs rec alone"] = (100 * (table["ndcg@40"] / alone - 1)).map("{:+.1f} %".format)
    return titled(
        "pmtrec_auxiliary_tasks",
        table.round(4).reset_index(),
        "each auxiliary task beside rec alone",
        keys=("tasks", "strategy"),
    )


def best_cell(grid: pd.DataFrame) -> dict:
    """The (α, τ) with the highest score in an alpha_tau_grid, and that score."""
    alpha, tau = grid.stack().idxmax()
    return {"alpha": alpha, "tau": tau, "score": float(grid.loc[alpha, tau])}


def headline_statement(runs: pd.DataFrame, metric: str = "ndcg@40") -> str:
    """PMTRec's change over the best baseline per dataset, in words, beside the paper's claim."""
    means = runs.groupby(["dataset", "strategy"])[metric].mean()
    parts = []
    for dataset in dict.fromkeys(runs["dataset"]):
        part = means.loc[dataset]
        single = part.get(SINGLE_TASK)
        part = part.drop(index=[SINGLE_TASK], errors="ignore")
        if "pmtrec" not in part.index or len(part) < 2:
            continue
        best = part.drop(index="pmtrec")
        change = 100 * (part["pmtrec"] / best.max() - 1)
        parts.append(
            f"{dataset}: PMTRec {part['pmtrec']:.4f} vs best baseline {best.idxmax()} {best.max():.4f} "
            f"({change:+.2f} %; PMTRec ranks {int((part > part['pmtrec']).sum()) + 1} of {len(part)} strategies"
            + (f"; recommendation alone, without auxiliary tasks: {single:.4f}" if single is not None else "")
            + ")"
        )
    return f"{metric}, ours — " + "; ".join(parts) + f". Paper: {PAPER_HEADLINE}."


__all__ = [
    "ABLATIONS",
    "BASELINES",
    "GRID_ALPHAS",
    "GRID_TAUS",
    "SINGLE_TASK",
    "BENCHMARK_DATASETS",
    "PAPER_HEADLINE",
    "alpha_tau_grid",
    "alpha_tau_runs",
    "grid_from_runs",
    "auxiliary_task_study",
    "best_cell",
    "headline_statement",
    "load_rec_dataset",
    "pmtrec_ablations",
    "pmtrec_benchmark",
    "summarize_ablations",
    "train_recommenders",
    "pmtrec_gains",
    "summarize_benchmark",
    "train_recommender",
    "weight_summary",
    "weight_trajectory",
]
