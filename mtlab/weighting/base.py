"""The interface every gradient-combination strategy follows (after LibMTL's split of architecture
from weighting): a strategy sees the per-task losses and the shared parameters, and nothing else.

    strategy.backward(losses, shared, epoch) -> weights [T]

`losses` is a tensor [T] or a sequence of T scalar losses. Prefer the sequence where tasks have
their own parts of the graph: the gradient of one element of a stacked tensor flows back through the
stack into every task's graph (as zeros), so T per-task passes would cost T full backward passes.

fills `.grad` of every parameter that the losses reach. Loss-weighting strategies weight the losses
and call backward once. Gradient-combination strategies take each task's gradient on the shared
parameters (one autograd pass per task), combine them into one, and give every other parameter its
own task's gradient: the backward of the summed losses (or of the losses weighted by the strategy's
weights, `private_weighted = True`, where the method's paper trains the task-specific parameters on
the weighted loss). `shared` is what the model declares (`TaskModel.shared_parameters`, or a step's
`StepOutput.shared`): whole parameters, `SharedPart`s or `TableRows` (mtlab.sharing). `extra`, an
auxiliary loss outside the tasks (an adversarial term), gets its plain gradient everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..sharing import SharedPart, TableRows, parameter_of

STRATEGIES: dict[str, type[Weighting]] = {}


def register(name: str):
    def add(cls):
        cls.registry_name = name
        STRATEGIES[name] = cls
        return cls

    return add


def split_losses(losses) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(the T losses one by one, the losses as a tensor [T])."""
    if isinstance(losses, torch.Tensor):
        return list(losses), losses
    return list(losses), torch.stack(list(losses))


def differentiable(shared) -> list[torch.Tensor]:
    """What gradients are taken on: the gathered rows of a TableRows, else the parameter itself."""
    return [s.values if isinstance(s, TableRows) else parameter_of(s) for s in shared]


def selected(target, full: torch.Tensor) -> torch.Tensor:
    """The shared elements of `full` (a tensor shaped like the target's parameter, or like a
    TableRows' gathered rows), flattened."""
    if isinstance(target, SharedPart):
        return full[target.mask.expand_as(full)]
    return full.flatten()


def shared_size(target) -> int:
    """How many shared elements a target holds (without gathering them)."""
    if isinstance(target, SharedPart):
        return int(target.mask.expand_as(target.param).sum())
    return differentiable([target])[0].numel()


def set_grad(target, grad: torch.Tensor) -> None:
    """Write a combined gradient into the shared elements' `.grad` (replacing what the plain
    backward left there); every other element keeps its own."""
    param = parameter_of(target)
    if param.grad is None:
        param.grad = torch.zeros_like(param)
    if isinstance(target, TableRows):
        param.grad[target.index] = grad.view(len(target.index), *param.shape[1:])
    elif isinstance(target, SharedPart):
        param.grad[target.mask.expand_as(param)] = grad.flatten()
    else:
        param.grad = grad.reshape(param.shape).clone()


def _rows_grad(target) -> torch.Tensor | None:
    """The current `.grad` of a target's shared elements, flattened (None when there is none)."""
    param = parameter_of(target)
    if param.grad is None:
        return None
    if isinstance(target, TableRows):
        return param.grad[target.index].flatten().clone()
    return selected(target, param.grad).clone()


class Weighting(nn.Module):
    """Base class; a strategy may own parameters (e.g. UW's log-variances): the trainer optimizes them."""

    def __init__(self, n_tasks: int):
        super().__init__()
        self.n_tasks = n_tasks

    def backward(self, losses: torch.Tensor, shared: Sequence[nn.Parameter | SharedPart | TableRows],
                 epoch: int = 0, extra: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class LossWeighting(Weighting):
    def weights(self, losses: torch.Tensor, epoch: int) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, losses: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights(losses, epoch)
        return (w * losses).sum(), w

    def backward(self, losses, shared, epoch=0, extra=None):
        total, w = self.loss(split_losses(losses)[1], epoch)
        (total if extra is None else total + extra).backward()
        return w.detach()


class GradientCombination(Weighting):
    """Per-task gradients on the shared parameters G [T, P] → one combined gradient [P]."""

    private_weighted = False  # task-specific parameters: the plain sum of the task gradients

    def combine(self, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (combined gradient [P], the task weights it amounts to [T] or NaNs)."""
        raise NotImplementedError

    def task_gradients(self, per_task, inputs, shared) -> torch.Tensor:
        """G [T, P]: each task's gradient on the shared elements, one autograd pass per task."""
        rows = []
        for loss in per_task:
            grads = (torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
                     if loss.requires_grad else [None] * len(inputs))  # a frozen task: no gradient
            rows.append(torch.cat([selected(s, g if g is not None else torch.zeros_like(x))
                                   for g, x, s in zip(grads, inputs, shared)]))
        return torch.stack(rows)

    def backward(self, losses, shared, epoch=0, extra=None):
        per_task, losses = split_losses(losses)
        if extra is not None:
            extra.backward(retain_graph=True)
        shared = [s for s in shared if isinstance(s, TableRows) or parameter_of(s).requires_grad]
        sizes = [shared_size(s) for s in shared]
        shared = [s for s, size in zip(shared, sizes) if size]
        sizes = [size for size in sizes if size]
        if not shared:  # nothing shared (Single Task, a one-task model): each task its own gradient
            losses.sum().backward()
            return torch.ones_like(losses.detach())
        inputs = differentiable(shared)
        combined, weights = self.combine(self.task_gradients(per_task, inputs, shared))
        earlier = [_rows_grad(s) for s in shared]  # e.g. an auxiliary loss's, kept on top
        private = (weights.detach().to(losses.dtype) * losses).sum() if self.private_weighted else losses.sum()
        private.backward()
        offset = 0
        for target, size, before in zip(shared, sizes, earlier):  # shared: the combined gradient
            part = combined[offset:offset + size]
            set_grad(target, part if before is None else part + before)
            offset += size
        return weights
