"""PMTRec experiments: strategies × datasets (the benchmark), the α × τ sensitivity grid, the
ablations, and how the per-user task weights are distributed and move over epochs."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..data.interactions import InteractionData, load_movielens, make_synthetic_interactions
from ..models.mf import MFMultiTask
from ..train.device import seed_everything
from ..train.recsys import RecConfig, evaluate_recommender, fit_recommender
from .artifacts import record
from .profiles import Profile

REC_DATASETS = ("ml-100k", "ml-1m", "synthetic")
BASELINES = ("ew", "uw", "dwa", "rlw", "pcgrad", "mgda", "cagrad", "imtl_g", "gradnorm", "nash_mtl")
# PMTRec paper: its largest gain, NDCG@40 on Amazon Office (not available offline).
PAPER_HEADLINE = "PMTRec improves NDCG@40 by up to 11.58 % over the best baseline (Amazon Office)"
REC_EPOCHS = {"quick": 10, "full": 100}


def load_rec_dataset(name: str, seed: int = 0) -> InteractionData:
    if name == "synthetic":
        return make_synthetic_interactions(n_users=600, n_items=500, p_in=0.15, seed=seed)
    if name in ("ml-100k", "ml-1m"):
        return load_movielens(name, seed=seed)
    raise ValueError(f"unknown recommendation dataset {name!r}; allowed values: {', '.join(REC_DATASETS)}")


def tasks_for(data: InteractionData) -> tuple[str, ...]:
    """rec first, then every auxiliary task the data supports."""
    tasks = ["rec", "category", "attribute", "align"]
    if data.social is not None:
        tasks.insert(1, "social")
    if data.train_ratings is not None and float(data.train_ratings.std()) > 0:
        tasks.append("rating")
    return tuple(tasks)


def rec_config(profile: Profile, seed: int, **overrides) -> RecConfig:
    base = dict(epochs=REC_EPOCHS[profile.name], batch_size=2048, lr=5e-3, patience=profile.patience + 3,
                seed=seed, device=profile.device, quiet=True)
    return RecConfig(**{**base, **overrides})


def train_recommender(data: InteractionData, strategy: str, profile: Profile, seed: int, tasks=None,
                      dim: int = 64, on_epoch=None, **overrides) -> dict:
    seed_everything(seed)
    tasks = tasks or tasks_for(data)
    model = MFMultiTask(data.n_users, data.n_items, dim, tasks,
                        n_categories=data.item_categories.shape[1] if data.item_categories is not None else 0,
                        attribute_sizes={k: int(v.max()) + 1 for k, v in data.user_attributes.items()})
    model, history, used = fit_recommender(model, data, rec_config(profile, seed, weighting=strategy, **overrides),
                                           on_epoch=on_epoch)
    return {"test": evaluate_recommender(model, data.to(next(model.parameters()).device), "test"),
            "history": history, "strategy": used, "epochs": len(history),
            "seconds": float(history["train_seconds"].sum())}


def pmtrec_benchmark(datasets: Sequence[str], strategies: Sequence[str], profile: Profile,
                     **overrides) -> pd.DataFrame:
    """Every strategy on every dataset with every seed: test Recall@K and NDCG@K, one row per run."""
    rows = []
    for name in datasets:
        data = load_rec_dataset(name)
        for strategy in strategies:
            for seed in profile.seeds:
                out = train_recommender(data, strategy, profile, seed, **overrides)
                rows.append({"dataset": name, "strategy": strategy, "seed": seed, **out["test"],
                             "epochs": out["epochs"], "seconds": out["seconds"]})
    return record("pmtrec_benchmark", pd.DataFrame(rows), "every strategy, dataset and seed: test metrics")


def summarize_benchmark(runs: pd.DataFrame, metrics=("recall@40", "ndcg@40")) -> pd.DataFrame:
    """Mean ± std per dataset and strategy, and PMTRec's relative change over the best baseline."""
    g = runs.groupby(["dataset", "strategy"], sort=False)
    table = g[list(metrics)].mean().round(4).astype(str) + " ± " + g[list(metrics)].std().fillna(0).round(4).astype(str)
    means = g[list(metrics)].mean()
    gains = []
    for dataset in runs["dataset"].unique():
        part = means.loc[dataset]
        if "pmtrec" in part.index and len(part) > 1:
            best = part.drop(index="pmtrec").max()
            gains.append({"dataset": dataset, **{f"PMTRec vs best baseline, {m}": f"{100 * (part.loc['pmtrec', m] / best[m] - 1):+.2f} %"
                                                 for m in metrics}})
    record("pmtrec_gain", pd.DataFrame(gains), "PMTRec's change over the best baseline")
    return record("pmtrec_summary", table.reset_index(), "test metrics, mean ± std over seeds")


def alpha_tau_grid(data: InteractionData, profile: Profile, alphas=(1.0, 1.05, 1.1, 1.2), taus=(0.5, 1.0, 2.0, 5.0),
                   metric: str = "ndcg@40", **overrides) -> pd.DataFrame:
    """`metric` of PMTRec for every (α, τ), mean over the profile's seeds: rows α, columns τ."""
    rows = []
    for alpha in alphas:
        for tau in taus:
            scores = [train_recommender(data, "pmtrec", profile, seed, weighting_options={"alpha": alpha, "tau": tau},
                                        **overrides)["test"][metric] for seed in profile.seeds]
            rows.append({"alpha": alpha, "tau": tau, metric: sum(scores) / len(scores)})
    grid = pd.DataFrame(rows).pivot(index="alpha", columns="tau", values=metric)
    return record("alpha_tau_grid", grid, f"PMTRec {metric} over α (rows) × τ (columns)")


ABLATIONS = {"PMTRec": ("pmtrec", {}, None), "without Task Focusing": ("pmtrec", {"task_focusing": False}, None),
             "without GMB": ("pmtrec", {"balancing": False}, None), "single task (rec only)": ("ew", {}, ("rec",))}


def pmtrec_ablations(data: InteractionData, profile: Profile, **overrides) -> pd.DataFrame:
    rows = []
    for variant, (strategy, options, tasks) in ABLATIONS.items():
        for seed in profile.seeds:
            out = train_recommender(data, strategy, profile, seed, tasks=tasks, weighting_options=options, **overrides)
            rows.append({"variant": variant, "seed": seed, **out["test"]})
    return record("pmtrec_ablations", pd.DataFrame(rows), "PMTRec ablations: test metrics per seed")


def weight_trajectory(data: InteractionData, profile: Profile, seed: int = 0, **overrides) -> pd.DataFrame:
    """The per-user task weights of PMTRec after each epoch (the last batch's touched users):
    one row per epoch, task and user."""
    frames = []

    def capture(row, strategy):
        users = strategy.last_weights[0]  # [T, users touched]
        frames.append(pd.DataFrame({"epoch": row["epoch"], "task": [t for t in tasks for _ in range(users.shape[1])],
                                    "weight": users.flatten().cpu().numpy()}))
        return False

    tasks = tasks_for(data)
    train_recommender(data, "pmtrec", profile, seed, tasks=tasks, on_epoch=capture, **overrides)
    return pd.concat(frames, ignore_index=True)


def weight_summary(trajectory: pd.DataFrame) -> pd.DataFrame:
    """Quartiles of the per-user weight of each task, per epoch."""
    table = trajectory.groupby(["epoch", "task"])["weight"].describe()[["mean", "25%", "50%", "75%"]].reset_index()
    return record("pmtrec_weights", table, "per-user task weights: quartiles per epoch")


__all__ = ["ABLATIONS", "BASELINES", "PAPER_HEADLINE", "alpha_tau_grid", "load_rec_dataset", "pmtrec_ablations",
           "pmtrec_benchmark", "summarize_benchmark", "tasks_for", "train_recommender", "weight_summary",
           "weight_trajectory"]
