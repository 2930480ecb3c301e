"""Models × seeds on one dataset, as tidy DataFrames, and their mean ± std summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..data import MultiTaskData
from .artifacts import titled
from .profiles import Profile
from .single_run import train_one
from .store import append_rows, done_keys, load_rows

RESULT_COLUMNS = ["model", "seed", "task", "auc", "logloss", "trainable_params", "flops_per_sample",
                  "seconds", "epochs"]


def compare_models(
    data: MultiTaskData,
    models: Sequence[str],
    profile: Profile,
    model_options: dict[str, dict] | None = None,
    results_path: str | Path | None = None,
    **train_overrides,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every model with every seed of the profile.

    Returns (results, histories): results has one row per model × seed × task with the test AUC and
    log loss (columns RESULT_COLUMNS); histories has one row per model × seed × epoch.
    results_path: a CSV that every finished run is appended to (histories beside it, *.history.csv);
        runs already in it are loaded instead of trained again, so a long batch can be resumed.
    """
    old_results = load_rows(results_path)
    old_histories = load_rows(_history_path(results_path)) if results_path else pd.DataFrame()
    done = done_keys(old_results, ["model", "seed"])
    rows, histories = [old_results], [old_histories]
    for model in models:
        for seed in profile.seeds:
            if (model, seed) in done:
                continue
            out = train_one(model, data, profile, seed, (model_options or {}).get(model), **train_overrides)
            new = pd.DataFrame([{"model": model, "seed": seed, "task": task, **metrics,
                                 **{k: out[k] for k in ("trainable_params", "flops_per_sample", "seconds", "epochs")}}
                                for task, metrics in out["test"].items()], columns=RESULT_COLUMNS)
            history = out["history"].assign(model=model, seed=seed)
            rows.append(new)
            histories.append(history)
            append_rows(new, results_path)
            append_rows(history, _history_path(results_path) if results_path else None)
    results = pd.concat([f for f in rows if len(f)], ignore_index=True)
    histories = pd.concat([f for f in histories if len(f)], ignore_index=True)
    wanted = lambda f: f[f["model"].isin(models) & f["seed"].isin(profile.seeds)].reset_index(drop=True)  # noqa: E731
    return (titled("results", wanted(results), "test metrics per model, seed and task"),
            titled("histories", wanted(histories), "learning curves per model, seed and epoch"))


def _history_path(results_path) -> Path:
    return Path(results_path).with_suffix(".history.csv")


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
    table = stats.pivot(index="model", columns="task", values="mean ± std").rename_axis(columns=None)
    return titled("summary", table, f"test {metric}, mean ± std over seeds")
