"""The interface every gradient-combination strategy follows (after LibMTL's split of architecture
from weighting): a strategy sees the per-task losses and the shared parameters, and nothing else.

    strategy.backward(losses, shared, epoch) -> weights [T]

fills `.grad` of every parameter that the losses reach. Loss-weighting strategies weight the losses
and call backward once. Gradient-combination strategies take each task's gradient on the shared
parameters (one autograd pass per task), combine them into one, and give the task-specific
parameters their own tasks' gradients (the plain backward of the summed losses).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

STRATEGIES: dict[str, type[Weighting]] = {}


def register(name: str):
    def add(cls):
        cls.registry_name = name
        STRATEGIES[name] = cls
        return cls

    return add


class Weighting(nn.Module):
    """Base class; a strategy may own parameters (e.g. UW's log-variances): the trainer optimizes them."""

    def __init__(self, n_tasks: int):
        super().__init__()
        self.n_tasks = n_tasks

    def backward(self, losses: torch.Tensor, shared: Sequence[nn.Parameter], epoch: int = 0) -> torch.Tensor:
        raise NotImplementedError


class LossWeighting(Weighting):
    def weights(self, losses: torch.Tensor, epoch: int) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, losses: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights(losses, epoch)
        return (w * losses).sum(), w

    def backward(self, losses, shared, epoch=0):
        total, w = self.loss(losses, epoch)
        total.backward()
        return w.detach()


class GradientCombination(Weighting):
    """Per-task gradients on the shared parameters G [T, P] → one combined gradient [P]."""

    def combine(self, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (combined gradient [P], the task weights it amounts to [T] or NaNs)."""
        raise NotImplementedError

    def backward(self, losses, shared, epoch=0):
        shared = [p for p in shared if p.requires_grad]
        rows = []
        for t in range(len(losses)):
            grads = (torch.autograd.grad(losses[t], shared, retain_graph=True, allow_unused=True)
                     if losses[t].requires_grad else [None] * len(shared))  # a frozen task: no gradient
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                   for g, p in zip(grads, shared)]))
        combined, weights = self.combine(torch.stack(rows))
        before = [None if p.grad is None else p.grad.clone() for p in shared]  # e.g. an auxiliary loss's
        losses.sum().backward()  # task-specific parameters: their own task's gradient
        offset = 0
        for p, earlier in zip(shared, before):  # shared parameters: the combined gradient, not the sum
            p.grad = combined[offset:offset + p.numel()].view_as(p).clone()
            if earlier is not None:
                p.grad += earlier
            offset += p.numel()
        return weights
