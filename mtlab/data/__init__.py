"""Datasets as tensors: real data first (Census-Income), plus a synthetic generator."""

from __future__ import annotations

from .census import TASKS as CENSUS_TASKS
from .census import load_census
from .download import SOURCES, data_dir, fetch
from .synthetic import make_synthetic
from .tabular import Batch, DataError, FeatureSpec, MultiTaskData, TabularSplit

# name -> (loader, one-line description, {task: description})
DATASETS = {
    "census-income": (
        load_census,
        "UCI Census-Income (KDD), 199,523 train / 99,762 held-out rows; fetch first",
        {name: d.description for name, d in CENSUS_TASKS.items()}
        | {"column=value": "any categorical column made binary"},
    ),
    "synthetic": (
        make_synthetic,
        "MMoE-style synthetic tasks with controllable correlation rho (no download)",
        {"t1 … tN": "tasks of the generator, pairwise cosine rho"},
    ),
}


def load_dataset(name: str, tasks=None, subsample: float | None = None, seed: int = 0, **options):
    """Load a registered dataset by name. `tasks` picks and orders tasks (default: the dataset's)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if name == "census-income":
        return load_census(tasks=tasks or ("income", "marital"), subsample=subsample, seed=seed, **options)
    if tasks:
        options.setdefault("n_tasks", len(tasks))
    data = make_synthetic(seed=seed, **options).subsample(subsample, seed)
    return data.select_tasks(tasks) if tasks else data


__all__ = [
    "Batch", "DATASETS", "DataError", "FeatureSpec", "MultiTaskData", "SOURCES", "TabularSplit",
    "data_dir", "fetch", "load_census", "load_dataset", "make_synthetic",
]
