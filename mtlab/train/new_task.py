"""Learning a new task T3 next to existing tasks T1, T2 (MPT-Rec Sec. 4.3): full retraining,
fine-tuning on a frozen pre-trained model (Shared Bottom*, MMoE*, PLE*, MPT-Rec prompt tuning) and
MAML (Finn et al., 2017).

Every stage sees the same features: the data are loaded once with all three tasks, so T3's column
is out of the features from pre-training on, and the two-task stages use `data.select_tasks`.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..data.tabular import MultiTaskData
from ..models import build_model
from ..models.new_task import FrozenBaseNewTask, attach_new_task
from .device import resolve_device, seed_everything
from .trainer import FitResult, TrainConfig, fit


def pretrain(name: str, data: MultiTaskData, config: TrainConfig, **options):
    """Build (seeded) and fit `name` on all tasks of `data`; returns (model, FitResult)."""
    seed_everything(config.seed)
    model = build_model(name, data.features, data.tasks, **options)
    return model, fit(model, data, config)


def fine_tune(base, data3: MultiTaskData, config: TrainConfig, **head_options) -> tuple[FrozenBaseNewTask, FitResult]:
    """Freeze `base` (trained on data3's first tasks) and train a head for data3's last task."""
    if tuple(data3.tasks[:-1]) != tuple(base.tasks):
        raise ValueError(f"the base predicts {list(base.tasks)}; data3 must hold those tasks and then the new "
                         f"one, got {list(data3.tasks)}")
    seed_everything(config.seed)
    model = attach_new_task(base, data3.tasks[-1], **head_options)
    return model, fit(model, data3, config)


# ----------------------------------------------------------------------------------------------- MAML

def inner_step(model, params: dict, batch, labels: torch.Tensor, lr: float, first_order: bool = False) -> dict:
    """One MAML inner step: θ' = θ − lr · ∇_θ BCE(f(x; θ), y), as a new parameter dict (the graph is
    kept unless `first_order`, so the outer loss differentiates through it)."""
    loss = F.binary_cross_entropy_with_logits(functional_call(model, params, (batch,))[:, 0], labels)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
    return {name: p - lr * g for (name, p), g in zip(params.items(), grads)}


def meta_train(model, data: MultiTaskData, config: TrainConfig, inner_lr: float = 0.05, inner_steps: int = 1,
               first_order: bool = False) -> list[float]:
    """Meta-train a single-output `model` with every task of `data` as a MAML task.

    Each meta step takes, for every task, a support and a query batch of `config.batch_size` rows,
    adapts θ on the support set (`inner_steps` steps) and sums the query losses of the adapted
    parameters; Adam on θ. One epoch = len(train) / (2·batch) meta steps. Returns the meta losses.
    """
    device = resolve_device(config.device)
    data = data.to(device)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    n, b = len(data.train), config.batch_size
    losses = []
    for _ in range(config.epochs):
        for _ in range(max(1, n // (2 * b))):
            meta_loss = 0.0
            for t in range(len(data.tasks)):
                rows = torch.randperm(n, generator=gen)[: 2 * b].to(device)
                (support, y_s), (query, y_q) = data.train.rows(rows[:b]), data.train.rows(rows[b:])
                params = dict(model.named_parameters())
                for _ in range(inner_steps):
                    params = inner_step(model, params, support, y_s[:, t], inner_lr, first_order)
                out = functional_call(model, params, (query,))[:, 0]
                meta_loss = meta_loss + F.binary_cross_entropy_with_logits(out, y_q[:, t])
            optimizer.zero_grad(set_to_none=True)
            (meta_loss / len(data.tasks)).backward()
            optimizer.step()
            losses.append(meta_loss.item() / len(data.tasks))
    return losses


def maml(data3: MultiTaskData, config: TrainConfig, backbone: str = "shared_bottom", inner_lr: float = 0.05,
         meta_epochs: int = 3, **options):
    """MAML for the new task: meta-train a one-output `backbone` on the existing tasks (data3's first
    tasks) for `meta_epochs`, then adapt all of it to the new task with `config`.
    Returns (model, FitResult of the adaptation)."""
    existing, new = data3.select_tasks(data3.tasks[:-1]), data3.select_tasks(data3.tasks[-1:])
    seed_everything(config.seed)
    model = build_model(backbone, data3.features, new.tasks, **options)
    meta_train(model, existing, replace(config, epochs=meta_epochs), inner_lr)
    return model, fit(model, new, config)
