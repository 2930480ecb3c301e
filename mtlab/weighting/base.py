"""The interface every gradient-combination strategy follows (after LibMTL's split of architecture
from weighting): a strategy sees the per-task losses and the shared parameters, and nothing else.

    strategy.backward(losses, shared, epoch) -> weights [T]

`losses` is a tensor [T] or a sequence of T scalar losses. Prefer the sequence where tasks have
their own parts of the graph: the gradient of one element of a stacked tensor flows back through the
stack into every task's graph (as zeros), so T per-task passes would cost T full backward passes.

fills `.grad` of every parameter that the losses reach. Loss-weighting strategies weight the losses
and call backward once. Gradient-combination strategies take each task's gradient on the shared
parameters (one autograd pass per task), combine them into one, and give the task-specific
parameters their own tasks' gradients (the plain backward of the summed losses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

STRATEGIES: dict[str, type[Weighting]] = {}


def register(name: str):
    def add(cls):
        cls.registry_name = name
        STRATEGIES[name] = cls
        return cls

    return add


@dataclass
class TableRows:
    """The rows of an embedding `table` a batch touched: `values` = table[index] (index unique), in
    the graph of the losses."""

    table: nn.Parameter
    index: torch.Tensor
    values: torch.Tensor


def split_losses(losses) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(the T losses one by one, the losses as a tensor [T])."""
    if isinstance(losses, torch.Tensor):
        return list(losses), losses
    return list(losses), torch.stack(list(losses))


def differentiable(shared) -> list[torch.Tensor]:
    """What gradients are taken on: the gathered rows of a TableRows, else the parameter itself."""
    return [s.values if isinstance(s, TableRows) else s for s in shared]


def set_grad(target, grad: torch.Tensor) -> None:
    """Write a combined gradient of a parameter or of a table's gathered rows into `.grad`
    (replacing what the plain backward left there)."""
    if isinstance(target, TableRows):
        target.table.grad = torch.zeros_like(target.table)
        target.table.grad[target.index] = grad
    else:
        target.grad = grad.clone()


class Weighting(nn.Module):
    """Base class; a strategy may own parameters (e.g. UW's log-variances): the trainer optimizes them."""

    def __init__(self, n_tasks: int):
        super().__init__()
        self.n_tasks = n_tasks

    def backward(self, losses: torch.Tensor, shared: Sequence[nn.Parameter | TableRows],
                 epoch: int = 0) -> torch.Tensor:
        raise NotImplementedError


class LossWeighting(Weighting):
    def weights(self, losses: torch.Tensor, epoch: int) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, losses: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights(losses, epoch)
        return (w * losses).sum(), w

    def backward(self, losses, shared, epoch=0):
        total, w = self.loss(split_losses(losses)[1], epoch)
        total.backward()
        return w.detach()


class GradientCombination(Weighting):
    """Per-task gradients on the shared parameters G [T, P] → one combined gradient [P]."""

    def combine(self, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (combined gradient [P], the task weights it amounts to [T] or NaNs)."""
        raise NotImplementedError

    def backward(self, losses, shared, epoch=0):
        per_task, losses = split_losses(losses)
        shared = [s for s in shared if isinstance(s, TableRows) or s.requires_grad]
        inputs = differentiable(shared)
        rows = []
        for t in range(len(losses)):
            grads = (torch.autograd.grad(per_task[t], inputs, retain_graph=True, allow_unused=True)
                     if per_task[t].requires_grad else [None] * len(inputs))  # a frozen task: no gradient
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(x)).flatten()
                                   for g, x in zip(grads, inputs)]))
        combined, weights = self.combine(torch.stack(rows))
        params = [s.table if isinstance(s, TableRows) else s for s in shared]
        before = [None if p.grad is None else p.grad.clone() for p in params]  # e.g. an auxiliary loss's
        losses.sum().backward()  # task-specific parameters: their own task's gradient
        offset = 0
        for target, x, p, earlier in zip(shared, inputs, params, before):  # shared: the combined gradient
            set_grad(target, combined[offset:offset + x.numel()].view_as(x))
            if earlier is not None:
                p.grad += earlier
            offset += x.numel()
        return weights
