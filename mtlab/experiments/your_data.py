"""Notebook 30 (your data): a table of one's own, prepared, looked at task by task, and the models and
strategies compared on it with Δm over Single Task (mean ± std over seeds, paired tests).

Every function returns DataFrames and writes nothing (the notebook's example file is written by
`mtlab.data.census.write_csv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import MultiTaskData
from .artifacts import titled
from .compare import compare_models
from .profiles import Profile

SPLITS = ("train", "valid", "test")


def new_rows(source, tasks: Sequence[str], n: int = 5) -> pd.DataFrame:
    """The first `n` rows of a table (a path to CSV / Parquet, or a DataFrame) without its task columns:
    rows as they arrive to be predicted, labels unknown. `tasks`: 'COLUMN:KIND[:POSITIVE]' strings or
    column names."""
    from ..data.converters.table import read_frame

    frame = source if isinstance(source, pd.DataFrame) else read_frame(source)
    columns = {str(t).split(":")[0] for t in tasks}
    return frame.head(n).drop(columns=[c for c in frame.columns if str(c) in columns]).reset_index(drop=True)


def predicted(model, rows: pd.DataFrame) -> pd.DataFrame:
    """A saved model's predictions of `rows` (`SavedModel.predict`), one row each, titled for the report;
    its notices (unknown codes, missing numbers, ignored columns) in `attrs["notices"]`."""
    frame = model.predict(rows)
    return titled("predictions", frame, f"The saved model's predictions of {len(rows)} new rows")


# the example task set of notebook 30 on Census-Income written as a CSV file: one task of each kind
CENSUS_TASKS = ("income:binary:50000+.", "weeks_worked_in_year:regression", "marital_status:multiclass")


def task_summary(data: MultiTaskData) -> pd.DataFrame:
    """One row per task and split: its kind, the rows with a label, and what the labels look like in the
    target's own terms: a binary task's positive rate, a regression target's mean and std (its units),
    a multi-class task's number of classes and the share of its most frequent class."""
    rows = []
    for t, (task, kind) in enumerate(zip(data.tasks, data.kinds)):
        for split in SPLITS:
            y = data.split(split).all_labels()[:, t].cpu().numpy()
            y = y[~np.isnan(y)]
            row = {"task": task, "kind": kind.kind, "split": split, "labelled rows": len(y)}
            if kind.kind == "binary":
                row["positive rate"] = float(y.mean()) if len(y) else np.nan
            elif kind.kind == "regression":
                values = y * kind.std + kind.mean
                row["mean"], row["std"] = float(values.mean()), float(values.std())
            else:
                counts = np.bincount(y.astype(int), minlength=kind.width)
                row["classes"] = kind.width
                row["majority class"] = kind.classes[int(counts.argmax())]
                row["majority share"] = float(counts.max() / max(1, counts.sum()))
            rows.append(row)
    return titled(
        "task_summary",
        pd.DataFrame(rows),
        "every task's labels per split, in the target's own terms",
        keys=("task", "split"),
    )


def target_values(data: MultiTaskData, split: str = "train") -> pd.DataFrame:
    """The labels of a split in long form (task, kind, value): a regression target in its units, a
    class by its name, a binary label as 0/1 (for histograms and counts)."""
    labels = data.split(split).all_labels().cpu().numpy()
    parts = []
    for t, (task, kind) in enumerate(zip(data.tasks, data.kinds)):
        y = labels[:, t]
        y = y[~np.isnan(y)]
        if kind.kind == "regression":
            values = pd.Series(y * kind.std + kind.mean)
        elif kind.kind == "multiclass":
            values = pd.Series(np.asarray(kind.classes, dtype=object)[y.astype(int)])
        else:
            values = pd.Series(y.astype(int))
        parts.append(pd.DataFrame({"task": task, "kind": kind.kind, "value": values}))
    return pd.concat(parts, ignore_index=True)


def task_association(data: MultiTaskData, split: str = "train") -> pd.DataFrame:
    """How related every two tasks are, across kinds, on the rows where both have a label, each pair
    by the measure its kinds allow, all in [0, 1] except Pearson's r in [−1, 1]:
    binary or regression with binary or regression: Pearson's r; multi-class with binary or
    regression: the correlation ratio η = √(Σ_k n_k (ȳ_k − ȳ)² / Σ_i (y_i − ȳ)²) of the number across the
    classes; multi-class with multi-class: Cramér's V = √(χ² / (n · (min(K₁, K₂) − 1))).
    E.g. income and never-married on Census-Income: r ≈ −0.15."""
    labels = data.split(split).all_labels().cpu().numpy()
    tasks, kinds = list(data.tasks), data.kinds
    table = pd.DataFrame(np.eye(len(tasks)), index=tasks, columns=tasks)
    for a in range(len(tasks)):
        for b in range(a + 1, len(tasks)):
            both = ~np.isnan(labels[:, a]) & ~np.isnan(labels[:, b])
            x, y = labels[both, a], labels[both, b]
            ka, kb = kinds[a].kind, kinds[b].kind
            if ka != "multiclass" and kb != "multiclass":
                value = float(np.corrcoef(x, y)[0, 1])
            elif ka == "multiclass" and kb == "multiclass":
                value = _cramers_v(x.astype(int), y.astype(int))
            else:
                classes, number = (x, y) if ka == "multiclass" else (y, x)
                value = _correlation_ratio(classes.astype(int), number)
            table.iloc[a, b] = table.iloc[b, a] = value
    return titled("task_association", table, "association between tasks: Pearson r, correlation ratio η, Cramér's V")


def _correlation_ratio(classes: np.ndarray, values: np.ndarray) -> float:
    total = ((values - values.mean()) ** 2).sum()
    if total == 0:
        return float("nan")
    counts = np.bincount(classes)
    sums = np.bincount(classes, weights=values)
    present = counts > 0
    means = sums[present] / counts[present]
    return float(np.sqrt((counts[present] * (means - values.mean()) ** 2).sum() / total))


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    table = pd.crosstab(a, b).to_numpy().astype(float)
    n = table.sum()
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    k = min(table.shape) - 1
    return float(np.sqrt(chi2 / (n * k))) if k > 0 else float("nan")


def compare_strategies(
    data: MultiTaskData,
    model: str,
    strategies: Sequence[str],
    profile: Profile,
    baseline: str = "single_task",
    results_path: str | Path | None = None,
    **train_overrides,
) -> pd.DataFrame:
    """`model` trained with each weighting strategy and every seed of the profile, beside `baseline`
    (a model, trained with the plain sum): one row per method × seed × task with the test metrics,
    `method` naming "model · strategy" (the baseline by its model name). results_path: a CSV (and a
    file per strategy beside it) from which finished runs are loaded instead of trained again."""
    parts = []
    base_path = None if results_path is None else Path(results_path).with_suffix(".baseline.csv")
    base, _ = compare_models(data, [baseline], profile, results_path=base_path, **train_overrides)
    parts.append(base.assign(method=baseline, strategy="ew"))
    for strategy in strategies:
        path = None if results_path is None else Path(results_path).with_suffix(f".{strategy}.csv")
        results, _ = compare_models(
            data, [model], profile, results_path=path, **{**train_overrides, "weighting": strategy}
        )
        parts.append(results.assign(method=f"{model} · {strategy}", strategy=strategy))
    return titled(
        "strategy_results",
        pd.concat(parts, ignore_index=True),
        f"test metrics of {model} per strategy and seed",
        keys=("method", "seed", "task"),
    )


__all__ = [
    "CENSUS_TASKS",
    "compare_strategies",
    "target_values",
    "task_association",
    "task_summary",
]
