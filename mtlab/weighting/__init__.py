"""Gradient-combination strategies behind one small interface (`Weighting.backward`), usable by every
trainer in mtlab: `TrainConfig(weighting="pcgrad")`."""

from . import gradient_based, loss_based, pmtrec, torchjd_backend  # noqa: F401  (registers the strategies)
from .base import (
    STRATEGIES,
    GradientCombination,
    GramianCombination,
    LossWeighting,
    TableRows,
    Weighting,
)


def build_weighting(name: str, n_tasks: int, **options) -> Weighting:
    if name not in STRATEGIES:
        raise ValueError(f"unknown weighting {name!r}; available: {', '.join(STRATEGIES)}")
    return STRATEGIES[name](n_tasks, **options)


__all__ = [
    "STRATEGIES",
    "GradientCombination",
    "GramianCombination",
    "LossWeighting",
    "TableRows",
    "Weighting",
    "build_weighting",
]
