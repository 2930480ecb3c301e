"""How a model declares what its tasks share, in the terms a weighting strategy combines: a whole
parameter, a `SharedPart` (some elements of a parameter), or `TableRows` (the rows of an embedding
table one batch read). Below both `models` and `weighting`, which import it; it imports only torch."""

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


def parameter_of(shared) -> nn.Parameter:
    """The parameter a shared item belongs to."""
    if isinstance(shared, TableRows):
        return shared.table
    return shared.param if isinstance(shared, SharedPart) else shared
