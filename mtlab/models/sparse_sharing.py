"""Sparse Sharing (Sun et al., AAAI 2020): every task trains its own subnet of one shared network.

The bottom MLP's weight matrices are shared; task t sees them through a binary mask M_t found by
iterative magnitude pruning (`mtlab.train.pruning.find_task_masks`), and the subnets are then trained
in parallel:   h_t = MLP(Emb(x); W ⊙ M_t),   logit_t = Tower_t(h_t).
Gradients reach W only through W ⊙ M_t, so a pruned weight never changes what a task computes; the
weights pruned for every task are also set to exactly zero. Knowledge flows through the overlap.

The pruning knobs live on the model (`prune_*`) so that they can be set like any model option.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import (
    KINDS,
    MultiTaskModel,
    SharedPart,
    at_least,
    in_unit_interval,
    layer_sizes,
    parameters_of,
    register,
)
from .layers import FeatureEmbedding, Towers


class MaskedLinear(nn.Module):
    """One weight matrix [in, out] seen by n tasks through masks [n, in, out]: [B, in] or
    [n, B, in] → [n, B, out] (one batched matmul). A `mask` argument overrides the task masks."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        reference = nn.Linear(in_dim, out_dim)  # nn.Linear's initialization
        self.weight = nn.Parameter(reference.weight.detach().T.clone())
        self.bias = nn.Parameter(reference.bias.detach().clone())
        self.register_buffer("mask", torch.ones(n, in_dim, out_dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, detach_bias: bool = False) -> torch.Tensor:
        weight = self.weight * (self.mask if mask is None else mask)  # [n, in, out]
        return torch.matmul(x, weight) + (self.bias.detach() if detach_bias else self.bias)


class MaskedMLP(nn.Module):
    def __init__(self, n: int, in_dim: int, hidden: Sequence[int], dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList()
        for width in hidden:
            self.layers.append(MaskedLinear(n, in_dim, width))
            in_dim = width
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.out_dim = in_dim

    def forward(
        self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None, detach_bias: bool = False
    ) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = self.dropout(torch.relu(layer(x, None if masks is None else masks[i], detach_bias)))
        return x


@register("sparse_sharing")
class SparseSharing(MultiTaskModel):
    task_kinds = frozenset(KINDS)  # a tower per task of its own width and loss (data.task_kinds)

    def __init__(
        self,
        features,
        tasks,
        emb_dim: int = 4,
        bottom: Sequence[int] = (256, 128),
        tower: Sequence[int] = (64, 32),
        dropout: float = 0.0,
        prune_rounds: int = 10,
        prune_rate: float = 0.1,
        prune_min_sparsity: float = 0.4,
        prune_epochs: int = 1,
        prune_warmup_epochs: int = 1,
    ):
        super().__init__(features, tasks)
        if not 0 < prune_rate < 1:
            raise ValueError(f"prune_rate must be in (0, 1), got {prune_rate}")
        at_least(1, emb_dim=emb_dim, prune_epochs=prune_epochs)
        at_least(0, prune_rounds=prune_rounds, prune_warmup_epochs=prune_warmup_epochs)
        layer_sizes(bottom=bottom, tower=tower)
        in_unit_interval(dropout=dropout, prune_min_sparsity=prune_min_sparsity)
        self.register_buffer("subnets_found", torch.tensor(False))  # saved with the weights: a resume skips the search
        self.emb_dim, self.bottom, self.tower, self.dropout = emb_dim, tuple(bottom), tuple(tower), dropout
        self.prune_rounds, self.prune_rate, self.prune_min_sparsity = prune_rounds, prune_rate, prune_min_sparsity
        self.prune_epochs, self.prune_warmup_epochs = prune_epochs, prune_warmup_epochs
        self.embedding = FeatureEmbedding(features, emb_dim)
        self.shared = MaskedMLP(len(self.tasks), self.embedding.out_dim, bottom, dropout)
        self.towers = Towers(len(self.tasks), self.shared.out_dim, tower, dropout, self.widths)

    preparation = "subnet_search"  # the fit loop finds the task masks first (mtlab.train.pruning)

    def shared_parameters(self):
        """The embedding, the bottom's biases, and the bottom weights in two or more tasks' masks
        (before the subnet search every mask is all ones: all of them)."""
        shared = parameters_of(self.embedding)
        for layer in self.masked_layers():
            overlap = layer.mask.sum(0) >= 2
            shared.append(layer.weight if bool(overlap.all()) else SharedPart(layer.weight, overlap))
            shared.append(layer.bias)
        return shared

    def prepared(self) -> bool:
        return bool(self.subnets_found)

    def masked_layers(self) -> list[MaskedLinear]:
        return list(self.shared.layers)

    def sparsity(self) -> torch.Tensor:
        """Fraction of the shared weights pruned, per task: [T]."""
        pruned = sum((1 - layer.mask).sum(dim=(1, 2)) for layer in self.masked_layers())
        return pruned / sum(layer.weight.numel() for layer in self.masked_layers())

    @torch.no_grad()
    def zero_pruned_weights(self) -> None:
        """Set the weights no task uses to exactly zero (they then never move: no gradient)."""
        for layer in self.masked_layers():
            layer.weight.mul_(layer.mask.amax(0))

    def forward(self, batch):
        return self.towers(self.shared(self.embedding(batch)))
