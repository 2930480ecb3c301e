"""The interface every mtlab model follows, and the registry that builds one by name."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from torch import nn

from ..data.tabular import Batch, FeatureSpec

MODELS: dict[str, type[MultiTaskModel]] = {}


class MultiTaskModel(nn.Module):
    """Maps a Batch to one logit per task: `forward(batch) -> [B, T]`, columns in `self.tasks` order.

    Constructors take the feature spec, the task names and keyword hyperparameters only (no data),
    store the hyperparameters under their own names, and build every layer from them.
    """

    def __init__(self, features: FeatureSpec, tasks: Sequence[str]):
        super().__init__()
        if not tasks:
            raise ValueError("a model needs at least one task")
        self.features, self.tasks = features, tuple(tasks)

    def forward(self, batch: Batch):  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self) -> dict:
        """The keyword hyperparameters this model was built with."""
        names = list(inspect.signature(type(self).__init__).parameters)[3:]
        return {n: getattr(self, n) for n in names}


def register(name: str):
    def add(cls):
        if name in MODELS:
            raise ValueError(f"model name {name!r} registered twice")
        cls.registry_name = name
        MODELS[name] = cls
        return cls

    return add


def build_model(name: str, features: FeatureSpec, tasks: Sequence[str], **config) -> MultiTaskModel:
    """Build a registered model from feature sizes, task names and hyperparameters."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}")
    cls = MODELS[name]
    allowed = list(inspect.signature(cls.__init__).parameters)[3:]
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {unknown}; its options: {', '.join(allowed)}")
    return cls(features, tasks, **config)
