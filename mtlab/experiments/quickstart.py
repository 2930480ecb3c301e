"""Notebook 00: what the Census-Income tasks look like, and Single Task against Shared Bottom."""

from __future__ import annotations

import pandas as pd

from ..data import MultiTaskData

SPLITS = ("train", "valid", "test")


def split_sizes(data: MultiTaskData) -> pd.Series:
    return pd.Series({s: len(data.split(s)) for s in SPLITS}, name="rows")


def label_summary(data: MultiTaskData) -> pd.DataFrame:
    """Positive rate of every task in every split (rows: tasks, columns: splits)."""
    rates = {s: data.split(s).labels.float().mean(0).cpu().numpy() for s in SPLITS}
    return pd.DataFrame(rates, index=pd.Index(data.tasks, name="task")).add_prefix("positive rate, ")


def label_correlation(data: MultiTaskData, split: str = "train") -> pd.DataFrame:
    """Pearson correlation between the task labels of a split."""
    labels = data.split(split).labels.cpu().numpy()
    return pd.DataFrame(labels, columns=list(data.tasks)).corr(method="pearson")
