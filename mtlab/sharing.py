"""How a model declares what its tasks share, in the terms a weighting strategy combines: a whole
parameter, a `SharedPart` (some elements of a parameter), `TableRows` (the rows of an embedding
table one batch read), or a `SharedRepresentation` (rep_grad: the output of the shared layers). Below both `models` and `weighting`, which import it; it imports only torch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SharedPart:
    """The elements of `param` selected by the boolean `mask` (broadcastable to it) are shared; the
    others are reached by one task at most (Sparse Sharing's weights outside the masks' overlap)."""

    param: nn.Parameter
    mask: torch.Tensor


@dataclass
class TableRows:
    """The rows of an embedding `table` that two or more tasks read in a batch: `values` =
    table[index] (index unique), in the graph of the losses."""

    table: nn.Parameter
    index: torch.Tensor
    values: torch.Tensor


@dataclass
class SharedRepresentation:
    """`rep_grad` (as LibMTL's): the one representation every task's tower reads. `output` is it in
    the graph of the shared parameters below; `leaf` = output.detach().requires_grad_() is what the
    towers read. A strategy combines the tasks' gradients with respect to the representation (a
    [T, batch × width] matrix instead of [T, shared parameters]) and sends the combined gradient
    down through `output` in one backward pass."""

    output: torch.Tensor
    leaf: torch.Tensor

    @classmethod
    def split(cls, output: torch.Tensor) -> SharedRepresentation:
        return cls(output, output.detach().requires_grad_(True))


def parameter_of(shared) -> nn.Parameter:
    """The parameter a shared item belongs to (a SharedRepresentation: its leaf)."""
    if isinstance(shared, SharedRepresentation):
        return shared.leaf
    if isinstance(shared, TableRows):
        return shared.table
    return shared.param if isinstance(shared, SharedPart) else shared
