"""Shared building blocks: feature embedding, MLP, and batched experts, gates and towers.

Several networks of the same shape (the experts of a layer, the towers of the tasks, the gates)
are held as one stacked weight tensor and computed with one batched matmul, never a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tabular import Batch, FeatureSpec

GATHER_LIMIT = 1 << 24  # elements of a gathered bag tensor above which embedding_bag is used


def lookup(weight: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """weight[codes]: on CPU by index_select, whose backward (index_add) skips the sort that
    embedding's dense backward does (about 2x faster at these sizes); on CUDA by embedding, whose
    backward is deterministic there (index_add's atomics are not)."""
    if codes.is_cuda:
        return F.embedding(codes, weight)
    return weight.index_select(0, codes.reshape(-1)).view(*codes.shape, weight.shape[1])


class FeatureEmbedding(nn.Module):
    """Embeds every categorical column with one lookup into a single table (codes shifted by
    per-column offsets) and concatenates the numeric columns: [B, C·dim + D].

    `copies` > 1 gives each of that many networks its own embedding of the same input, returned as
    [copies, B, C·dim + D] (Single Task, STEM) — still one lookup.

    `shared_first=True` keeps copy 0 in a table of its own (`shared_table`): STEM's shared copy and its
    task copies are then separate parameters, so no tensor mixes shared and task-private columns. The
    values (and the random stream used to draw them) are those of the one-table layout.
    """

    def __init__(
        self, features: FeatureSpec, dim: int = 4, copies: int = 1, init_std: float = 0.01, shared_first: bool = False
    ):
        super().__init__()
        self.dim, self.copies, self.n_num = dim, copies, features.n_num
        sizes = torch.tensor((0, *features.cat_cardinalities), dtype=torch.long)
        self.register_buffer("offsets", sizes.cumsum(0)[:-1], persistent=False)
        self.table = nn.Embedding(max(1, int(sizes.sum())), dim * copies)
        nn.init.normal_(self.table.weight, std=init_std)
        self.shared_table = None
        if shared_first:
            full = self.table.weight.detach()
            self.shared_table = nn.Embedding.from_pretrained(full[:, :dim].clone(), freeze=False)
            self.table = nn.Embedding.from_pretrained(full[:, dim:].clone(), freeze=False)
        self.bag_table = self.shared_bag_table = None
        if features.n_bag:  # multi-valued fields: one EmbeddingBag over every field's codes (+1; 0 pads)
            bag_sizes = torch.tensor((0, *[c + 1 for c in features.bag_cardinalities]), dtype=torch.long)
            self.register_buffer("bag_offsets", bag_sizes.cumsum(0)[:-1].view(1, -1, 1), persistent=False)
            self.bag_table = nn.EmbeddingBag(int(bag_sizes.sum()), dim * copies, mode="mean", padding_idx=0)
            nn.init.normal_(self.bag_table.weight, std=init_std)
            with torch.no_grad():
                self.bag_table.weight[0].zero_()
            if shared_first:  # as for the single-valued fields: copy 0 in a bag table of its own
                full = self.bag_table.weight.detach()
                self.shared_bag_table = nn.EmbeddingBag.from_pretrained(
                    full[:, :dim].clone(), freeze=False, mode="mean", padding_idx=0
                )
                self.bag_table = nn.EmbeddingBag.from_pretrained(
                    full[:, dim:].clone(), freeze=False, mode="mean", padding_idx=0
                )
        self.out_dim = (features.n_cat + features.n_bag) * dim + features.n_num

    def pooled_bags(self, bags: torch.Tensor) -> torch.Tensor:
        """[B, F, L] codes (+1, 0 = padding) → the mean embedding of each bag [B, F, copies·dim], in one
        call: every (row, field) is one fixed-length bag; padding is left out of the mean (an empty
        bag gives zeros)."""
        b, f, length = bags.shape
        shifted = torch.where(bags > 0, bags + self.bag_offsets, torch.zeros_like(bags)).view(b * f, length)
        tables = [t for t in (self.shared_bag_table, self.bag_table) if t is not None]
        width = sum(t.embedding_dim for t in tables)
        if shifted.is_cuda or shifted.numel() * width > GATHER_LIMIT:
            pooled = torch.cat([t(shifted) for t in tables], dim=1)
        else:  # CPU: a gather and a masked mean; its backward (index_add) is about 2x faster than
            # embedding_bag's, which sorts the indices; used while the gathered [B·F, L, width] stays small
            mask = (shifted > 0).unsqueeze(-1)
            count = mask.sum(1).clamp_min(1)
            pooled = torch.cat([(lookup(t.weight, shifted) * mask).sum(1) / count for t in tables], dim=1)
        return pooled.view(b, f, -1)

    def forward(self, batch: Batch) -> torch.Tensor:
        codes = batch.cat + self.offsets
        emb = lookup(self.table.weight, codes)  # [B, C, copies·dim]
        if self.shared_table is not None:
            emb = torch.cat([lookup(self.shared_table.weight, codes), emb], dim=2)
        if self.bag_table is not None:
            emb = torch.cat([emb, self.pooled_bags(batch.bags)], dim=1)  # [B, C + F, copies·dim]
        if self.copies == 1:
            return torch.cat([emb.flatten(1), batch.num], dim=1)
        b, c = emb.shape[:2]
        emb = emb.view(b, c, self.copies, self.dim).permute(2, 0, 1, 3).reshape(self.copies, b, c * self.dim)
        return torch.cat([emb, batch.num.expand(self.copies, -1, -1)], dim=2)


def mlp(in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear → ReLU (→ Dropout) for each hidden size."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    return nn.Sequential(*layers)


class ParallelLinear(nn.Module):
    """`n` independent linear layers in one batched matmul.

    Input [B, in] (the same input for all n) or [n, B, in]; output [n, B, out]. Each slice is
    initialized as nn.Linear would be.
    """

    def __init__(self, n: int, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        bound = 1 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound)) if bias else None
        self.n, self.in_dim, self.out_dim = n, in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # one input shared by all n: a single [B, in] x [in, n·out] matmul
            out = (x @ self.weight.transpose(0, 1).reshape(self.in_dim, -1)).view(x.shape[0], self.n, -1)
            out = out.transpose(0, 1)
        else:
            out = torch.matmul(x, self.weight)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"n={self.n}, in_dim={self.in_dim}, out_dim={self.out_dim}, bias={self.bias is not None}"


class ParallelMLP(nn.Module):
    """`n` independent MLPs of the same shape (the experts of a layer, the towers of the tasks),
    computed together: [B, in] or [n, B, in] → [n, B, hidden[-1]]."""

    def __init__(self, n: int, in_dim: int, hidden: Sequence[int], dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [ParallelLinear(n, in_dim, width), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            in_dim = width
        self.net = nn.Sequential(*layers)
        self.n, self.out_dim = n, in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) if len(self.net) else x.expand(self.n, *x.shape[-2:])


class Experts(ParallelMLP):
    """A layer of experts: `n_experts` MLPs on the same input, [B, in] → [E, B, out]."""


class Gate(nn.Module):
    """`n_gates` softmax gates over `n_experts`: [B, in] → weights [G, B, E] summing to one. While
    `record` is set (the training diagnostics' measured steps), the last weights are kept, detached."""

    def __init__(self, n_gates: int, in_dim: int, n_experts: int, bias: bool = True):
        super().__init__()
        self.proj = ParallelLinear(n_gates, in_dim, n_experts, bias=bias)
        self.record, self.last = False, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.proj(x), dim=-1)
        if self.record:
            self.last = weights.detach()
        return weights


def mix(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Gate-weighted sum of expert outputs: weights [G, B, E], experts [E, B, H] → [G, B, H]."""
    return torch.einsum("gbe,ebh->gbh", weights, experts)


class Towers(nn.Module):
    """One tower per task ending in its logits: [B, in] or [T, B, in] → logits [B, Σ width], task t's
    `widths[t]` columns in task order (1 per binary or regression task, K per K-class task; default all
    1: [B, T]). The towers stay one batched computation: the last layer is as wide as the widest task,
    and a narrower task's extra outputs are left out of the logits (they get no gradient)."""

    def __init__(
        self,
        n_tasks: int,
        in_dim: int,
        hidden: Sequence[int] = (64, 32),
        dropout: float = 0.0,
        widths: Sequence[int] | None = None,
    ):
        super().__init__()
        widths = tuple(widths or (1,) * n_tasks)
        if len(widths) != n_tasks:
            raise ValueError(f"{len(widths)} head widths for {n_tasks} tasks")
        self.body = ParallelMLP(n_tasks, in_dim, hidden, dropout)
        self.head = ParallelLinear(n_tasks, self.body.out_dim, max(widths))
        self.widths = widths
        if max(widths) > 1:  # where each task's columns sit in the [B, T · max width] layout
            index = [t * max(widths) + k for t, w in enumerate(widths) for k in range(w)]
            self.register_buffer("take", torch.tensor(index), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))  # [T, B, max width]
        if max(self.widths) == 1:
            return out.squeeze(-1).transpose(0, 1)
        return out.transpose(0, 1).reshape(out.shape[1], -1).index_select(1, self.take)
