"""MAML (Finn et al., ICML 2017) as a model the one fit loop trains: each task of the data is a MAML
task; a training step adapts θ on a support half of the batch and scores the adapted parameters on
the query half (Eq. 1):

    θ'_t = θ − α ∇_θ L_t(f_θ; support)          (inner step, `inner_steps` times)
    L_meta = (1/T) Σ_t L_t(f_θ'_t; query)        (the outer loss, per task in `StepOutput.losses`)

The inner loop runs inside the training step (a handful of tasks, no loop over rows); the outer
update is the fit loop's Adam step. Every parameter of the one backbone is shared by all tasks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .base import MultiTaskModel, StepOutput


def inner_step(model, params: dict, batch, labels: torch.Tensor, lr: float, first_order: bool = False) -> dict:
    """One MAML inner step: θ' = θ − lr · ∇_θ BCE(f(x; θ), y), as a new parameter dict (the graph is
    kept unless `first_order`, so the outer loss differentiates through it)."""
    loss = F.binary_cross_entropy_with_logits(functional_call(model, params, (batch,))[:, 0], labels)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
    return {name: p - lr * g for (name, p), g in zip(params.items(), grads)}


class MetaLearner(MultiTaskModel):
    """Meta-trains a one-output `backbone` with every task of the data as a MAML task. Its forward
    gives the unadapted backbone's logit for every task (what validation scores)."""

    def __init__(
        self, backbone: MultiTaskModel, tasks, inner_lr: float = 0.05, inner_steps: int = 1, first_order: bool = False
    ):
        super().__init__(backbone.features, tasks)
        if len(backbone.tasks) != 1:
            raise ValueError(f"MAML meta-trains a one-output backbone; this one predicts {list(backbone.tasks)}")
        self.backbone, self.inner_lr, self.inner_steps, self.first_order = backbone, inner_lr, inner_steps, first_order

    def config(self) -> dict:
        return {
            "backbone": type(self.backbone).__name__,
            **self.backbone.config(),
            "inner_lr": self.inner_lr,
            "inner_steps": self.inner_steps,
            "first_order": self.first_order,
        }

    def shared_parameters(self):
        return list(self.backbone.parameters())

    def forward(self, batch):
        return self.backbone(batch).expand(-1, len(self.tasks))

    def training_step(self, data, batch, step, generator=None) -> StepOutput:
        rows = batch.rows
        if rows is None:
            raise ValueError(
                "MAML splits each batch by row index into a support and a query half: load the data in memory"
            )
        half = len(rows) // 2
        if half == 0:
            raise ValueError("MAML needs batches of at least 2 rows (a support and a query half)")
        (support, y_s), (query, y_q) = data.train.rows(rows[:half]), data.train.rows(rows[half : 2 * half])
        losses = []
        for t in range(len(self.tasks)):  # the tasks: a handful
            params = dict(self.backbone.named_parameters())
            for _ in range(self.inner_steps):
                params = inner_step(self.backbone, params, support, y_s[:, t], self.inner_lr, self.first_order)
            logits = functional_call(self.backbone, params, (query,))[:, 0]
            losses.append(F.binary_cross_entropy_with_logits(logits, y_q[:, t]) / len(self.tasks))
        return StepOutput(torch.stack(losses), self.shared_parameters())
