"""The interface every mtlab model follows, and the registry that builds one by name."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tabular import Batch, FeatureSpec

MODELS: dict[str, type[MultiTaskModel]] = {}


def task_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy per task: [B, T] logits and labels → [T]."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0)


@dataclass
class Step:
    """Where a training step stands, for models whose loss depends on it (schedules, per-row state)."""

    rows: torch.Tensor  # indices of the batch's rows in the training split
    n_rows: int  # size of the training split
    epoch: int  # 0-based
    progress: float  # fraction of all planned training steps done, in [0, 1]


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

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters more than one task can reach (everything but the per-task towers): where
        gradient-combination strategies combine the tasks' gradients."""
        return [p for name, p in self.named_parameters() if not name.startswith(("towers.", "head."))]

    def training_loss(self, batch: Batch, labels: torch.Tensor, step: Step):
        """Per-task losses [T] (weighted and summed by the trainer) and an extra scalar loss or None.

        Models with auxiliary objectives (adversarial, contrastive) override this; the default is
        the per-task BCE of `forward`.
        """
        return task_losses(self(batch), labels), None

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
