"""Models × seeds on one dataset, as tidy DataFrames, and their mean ± std summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..data import MultiTaskData
from ..data.task_kinds import MAIN_METRICS, METRICS, all_binary, main_metric_of
from .artifacts import titled
from .profiles import Profile
from .seed_stats import paired_p
from .single_run import train_seeds
from .store import ResultsStore, companion

RESULT_COLUMNS = [
    "model",
    "seed",
    "task",
    "auc",
    "logloss",
    "trainable_params",
    "flops_per_sample",
    "seconds",
    "epochs",
]


def compare_models(
    data: MultiTaskData,
    models: Sequence[str],
    profile: Profile,
    model_options: dict[str, dict] | None = None,
    results_path: str | Path | None = None,
    **train_overrides,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every model with every seed of the profile.

    Returns (results, histories): results has one row per model × seed × task with its test metrics
    (columns RESULT_COLUMNS: AUC and log loss where every task is binary; with tasks of other kinds a
    column per metric of any kind and `score`, NaN where a task's kind has no such metric: data.task_kinds);
    histories has one row per model × seed × epoch.
    results_path: a CSV that every finished run is appended to (histories beside it, *.history.csv);
        runs already in it are loaded instead of trained again, so a long batch can be resumed.
    """
    results = ResultsStore(results_path, ["model", "seed"])
    histories = ResultsStore(companion(results_path, "history"), ["model", "seed"])
    columns = result_columns(data.kinds) if data.kind == "tabular" else RESULT_COLUMNS
    for model in models:
        pending = results.pending((model,), profile.seeds)
        if not pending:
            continue
        # the pending seeds in one process, seed-vectorized where the model and strategy allow
        for out in train_seeds(model, data, profile, pending, (model_options or {}).get(model), **train_overrides):
            seed = out["seed"]
            new = pd.DataFrame(
                [
                    {
                        "model": model,
                        "seed": seed,
                        "task": task,
                        **metrics,
                        **{k: out[k] for k in ("trainable_params", "flops_per_sample", "seconds", "epochs")},
                    }
                    for task, metrics in out["test"].items()
                ],
                columns=columns,
            )
            history = out["history"].assign(model=model, seed=seed)
            results.add(new)
            histories.add(history)
    return (
        titled(
            "results",
            results.frame(model=models, seed=profile.seeds),
            "test metrics per model, seed and task",
            keys=("model", "seed", "task"),
        ),
        titled(
            "histories",
            histories.frame(model=models, seed=profile.seeds),
            "learning curves per model, seed and epoch",
            keys=("model", "seed", "epoch"),
        ),
    )


def result_columns(kinds) -> list[str]:
    """RESULT_COLUMNS with the metrics of every kind present (all binary: RESULT_COLUMNS itself)."""
    if all_binary(kinds):
        return RESULT_COLUMNS
    metrics = list(dict.fromkeys(m for k in kinds for m in k.metrics)) + ["score"]
    return ["model", "seed", "task", *metrics, *RESULT_COLUMNS[5:]]


def main_metric(results: pd.DataFrame) -> dict[str, str]:
    """{task: the metric a summary shows for it}: AUC for a binary task, RMSE for a regression task,
    accuracy for a multi-class task (data.task_kinds.main_metric_of the metrics with a value for the task)."""
    return {
        task: main_metric_of([m for m in MAIN_METRICS if m in part and part[m].notna().any()])
        for task, part in results.groupby("task", sort=False)
    }


def summarize(results: pd.DataFrame, metric: str = "auc", method: str = "model") -> pd.DataFrame:
    """Mean, std and 'mean ± std' of `metric` per method (column `method`, in the order given) and task."""
    order = list(dict.fromkeys(results[method]))
    stats = results.groupby([method, "task"], sort=False)[metric].agg(["mean", "std", "count"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    stats["mean ± std"] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(stats["mean"], stats["std"])]
    stats[method] = pd.Categorical(stats[method], categories=order, ordered=True)
    return stats.sort_values([method, "task"]).reset_index(drop=True)


def summary_table(
    results: pd.DataFrame, metric: str | None = None, baseline: str = "single_task", method: str = "model"
) -> pd.DataFrame:
    """One row per method (column `method`: the model by default), one column per task, cells
    'mean ± std' of `metric` (default: each task's main metric, `main_metric`: AUC where binary, the
    column then named by the task alone; RMSE or accuracy, named 'task (metric)'); beside them Δm (%)
    over `baseline` on those metrics, each with its sign (HIGHER_IS_BETTER), with its spread over seeds
    and the paired test (`delta_m_table`) when the baseline ran."""
    shown = {t: metric for t in dict.fromkeys(results["task"])} if metric else main_metric(results)
    parts = []
    for m in dict.fromkeys(shown.values()):
        part = summarize(results[results["task"].isin([t for t, v in shown.items() if v == m])], m, method)
        part["task"] = [t if m == "auc" or metric else f"{t} ({m})" for t in part["task"]]
        parts.append(part)
    stats = pd.concat(parts)
    table = stats.pivot(index=method, columns="task", values="mean ± std").rename_axis(columns=None)
    if baseline in set(results[method]):
        metrics = {m: HIGHER_IS_BETTER.get(m, True) for m in dict.fromkeys(shown.values())}
        delta = delta_m_table(results, baseline, metrics, method=method).set_index(method)
        table["Δm % (mean ± std)"] = delta["Δm % (mean ± std)"].reindex(table.index)
        table[f"p (Δm vs {baseline})"] = delta["p_paired"].reindex(table.index)
    what = metric or ", ".join(dict.fromkeys(shown.values()))
    return titled("summary", table, f"test {what}, mean ± std over seeds; Δm over {baseline}")


# which way is better, for Δm
HIGHER_IS_BETTER = {
    **{m: up for metrics in METRICS.values() for m, up in metrics.items()},
    "score": True,
    "recall@20": True,
    "recall@40": True,
    "ndcg@20": True,
    "ndcg@40": True,
}


def delta_m(
    results: pd.DataFrame,
    baseline: str = "single_task",
    metrics: dict[str, bool] | None = None,
    method: str = "model",
    within: Sequence[str] = (),
) -> pd.DataFrame:
    """Δm per method and seed, as LibMTL's `count_improvement` (Maninis et al., CVPR 2019, Eq. 6):
        Δm = 100 / T · Σ_t mean_m (−1)^{l_m} (M_{t,m} − B_{t,m}) / B_{t,m}
    over the tasks t and `metrics` m ({name: higher is better}; l_m = 1 where lower is better), B the
    baseline's mean over seeds (per `within` group, e.g. a data setting). `results`: one row per
    method, seed and task with a column per metric. Returns columns [*within, method, seed, delta_m]."""
    metrics = metrics or {"auc": True}
    keys = [*within, "task"]
    base = results[results[method] == baseline]
    if base.empty:
        raise ValueError(
            f"no runs of the baseline {baseline!r} (column {method!r}); it has {sorted(set(results[method]))}"
        )
    reference = base.groupby(keys)[list(metrics)].mean().add_suffix("_baseline")
    joined = results.join(reference, on=keys)
    change = pd.DataFrame(
        {
            m: (joined[m] - joined[f"{m}_baseline"]) / joined[f"{m}_baseline"] * (1 if up else -1)
            for m, up in metrics.items()
        }
    )
    joined["delta_m"] = 100 * change.mean(axis=1)
    per_run = joined.groupby([*within, method, "seed"], sort=False)["delta_m"].mean()
    return per_run.reset_index()


DELTA_M_COLUMNS = ["delta_m_mean", "delta_m_std", "seeds", "Δm % (mean ± std)", "p_paired"]


def delta_m_table(
    results: pd.DataFrame,
    baseline: str = "single_task",
    metrics: dict[str, bool] | None = None,
    method: str = "model",
    within: Sequence[str] = (),
) -> pd.DataFrame:
    """Δm (%) per method: mean, std over seeds, 'mean ± std', and the two-sided paired t-test (over
    the seeds both ran) of its per-seed Δm against the baseline's own."""

    runs = delta_m(results, baseline, metrics, method, within)
    rows = []
    for key, part in runs.groupby([*within, method], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        where = dict(zip([*within, method], key))
        base = runs[(runs[method] == baseline) & _matches(runs, within, where)].set_index("seed")["delta_m"]
        mine = part.set_index("seed")["delta_m"]
        std = mine.std() if len(mine) > 1 else 0.0
        rows.append(
            {
                **where,
                "delta_m_mean": mine.mean(),
                "delta_m_std": std,
                "seeds": len(mine),
                "Δm % (mean ± std)": f"{round(mine.mean(), 2) + 0.0:+.2f} ± {std:.2f}",  # no "-0.00"
                "p_paired": float("nan") if where[method] == baseline else paired_p(mine, base),
            }
        )
    return titled(
        "delta_m",
        pd.DataFrame(rows, columns=[*within, method, *DELTA_M_COLUMNS]),
        f"Δm (%) over {baseline}, mean ± std over seeds, paired t-test",
        keys=(*within, method),
    )


def _matches(frame: pd.DataFrame, columns, where: dict) -> pd.Series:
    keep = pd.Series(True, index=frame.index)
    for c in columns:
        keep &= frame[c] == where[c]
    return keep
