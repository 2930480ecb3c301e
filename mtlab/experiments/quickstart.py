"""Notebook 00: what the Census-Income tasks look like, and Single Task against Shared Bottom."""

from __future__ import annotations

import pandas as pd

from ..data import MultiTaskData
from .artifacts import titled

SPLITS = ("train", "valid", "test")


def split_sizes(data: MultiTaskData) -> pd.Series:
    return pd.Series({s: len(data.split(s)) for s in SPLITS}, name="rows")


def label_summary(data: MultiTaskData) -> pd.DataFrame:
    """Positive rate of every task in every split (rows: tasks, columns: splits). Data with tasks of
    other kinds get `your_data.task_summary` instead (a standardized target has no positive rate)."""
    if any(k.kind != "binary" for k in data.kinds):
        from .your_data import task_summary

        return task_summary(data)
    rates = {s: data.split(s).labels.float().mean(0).cpu().numpy() for s in SPLITS}
    table = pd.DataFrame(rates, index=pd.Index(data.tasks, name="task")).add_prefix("positive rate, ")
    return titled("label_rates", table, "positive rate of every task per split")


def label_correlation(data: MultiTaskData, split: str = "train") -> pd.DataFrame:
    """Pearson correlation between the task labels of a split."""
    labels = data.split(split).labels.cpu().numpy()
    corr = pd.DataFrame(labels, columns=list(data.tasks)).corr(method="pearson")
    return titled("label_correlation", corr, "Pearson correlation between task labels")
