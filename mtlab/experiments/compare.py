"""Models × seeds on one dataset, as tidy DataFrames, and their mean ± std summary."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..data import MultiTaskData
from .profiles import Profile
from .single_run import train_one

RESULT_COLUMNS = ["model", "seed", "task", "auc", "logloss", "trainable_params", "flops_per_sample",
                  "seconds", "epochs"]


def compare_models(
    data: MultiTaskData,
    models: Sequence[str],
    profile: Profile,
    model_options: dict[str, dict] | None = None,
    **train_overrides,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every model with every seed of the profile.

    Returns (results, histories): results has one row per model × seed × task with the test AUC and
    log loss (columns RESULT_COLUMNS); histories has one row per model × seed × epoch.
    """
    rows, histories = [], []
    for model in models:
        for seed in profile.seeds:
            out = train_one(model, data, profile, seed, (model_options or {}).get(model), **train_overrides)
            for task, metrics in out["test"].items():
                rows.append({"model": model, "seed": seed, "task": task, **metrics,
                             **{k: out[k] for k in ("trainable_params", "flops_per_sample", "seconds", "epochs")}})
            histories.append(out["history"].assign(model=model, seed=seed))
    return pd.DataFrame(rows, columns=RESULT_COLUMNS), pd.concat(histories, ignore_index=True)


def summarize(results: pd.DataFrame, metric: str = "auc") -> pd.DataFrame:
    """Mean, std and 'mean ± std' of `metric` per model and task (models in the order given)."""
    order = list(dict.fromkeys(results["model"]))
    stats = results.groupby(["model", "task"], sort=False)[metric].agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    stats["mean ± std"] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(stats["mean"], stats["std"])]
    stats["model"] = pd.Categorical(stats["model"], categories=order, ordered=True)
    return stats.sort_values(["model", "task"]).reset_index(drop=True)


def summary_table(results: pd.DataFrame, metric: str = "auc") -> pd.DataFrame:
    """One row per model, one column per task, cells 'mean ± std'."""
    stats = summarize(results, metric)
    return stats.pivot(index="model", columns="task", values="mean ± std").rename_axis(columns=None)
