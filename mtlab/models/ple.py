"""PLE: Progressive Layered Extraction (Tang et al., RecSys 2020, Eq. 1–6).

Each extraction level (a CGC layer) has `n_shared` shared experts and `n_specific` experts per task.
Task t's gate mixes its own experts and the shared ones, on task t's input of that level:
    g_t = softmax(W_t h_t),   h_t' = Σ g_t · [E_t,1(h_t) … E_t,m(h_t), E_s,1(h_s) … ]        (Eq. 1–4)
Below the last level a shared gate mixes *all* experts into the next shared input h_s' (Eq. 5).
Level 1 takes h_t = h_s = Emb(x). `n_levels=1` is CGC. The towers read the last level's h_t.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import KINDS, MultiTaskModel, at_least, in_unit_interval, layer_sizes, parameters_of, register
from .layers import Experts, FeatureEmbedding, Gate, Towers, mix


class ExtractionLevel(nn.Module):
    """One CGC layer: task inputs [T, B, in] (or one shared [B, in]) and shared input [B, in]."""

    def __init__(self, n_tasks, in_dim, expert, n_shared, n_specific, last: bool, dropout: float):
        super().__init__()
        self.n_tasks, self.n_shared, self.n_specific = n_tasks, n_shared, n_specific
        self.specific = Experts(n_tasks * n_specific, in_dim, expert, dropout)
        self.shared = Experts(n_shared, in_dim, expert, dropout)
        self.task_gates = Gate(n_tasks, in_dim, n_specific + n_shared)
        self.shared_gate = None if last else Gate(1, in_dim, n_tasks * n_specific + n_shared)
        self.out_dim = self.specific.out_dim

    def forward(self, task_in: torch.Tensor, shared_in: torch.Tensor):
        t, m = self.n_tasks, self.n_specific
        if task_in.dim() == 2:  # level 1: every task reads the same input
            specific = self.specific(task_in)
        else:  # each task's m experts read that task's input
            b, d = task_in.shape[1:]
            specific = self.specific(task_in.unsqueeze(1).expand(t, m, b, d).reshape(t * m, b, d))
        shared = self.shared(shared_in)  # [S, B, H]
        b, h = shared.shape[1:]
        per_task = torch.cat([specific.view(t, m, b, h), shared.unsqueeze(0).expand(t, -1, -1, -1)], dim=1)
        task_out = torch.einsum("tbe,tebh->tbh", self.task_gates(task_in), per_task)
        if self.shared_gate is None:
            return task_out, None
        shared_out = mix(self.shared_gate(shared_in), torch.cat([specific, shared]))[0]
        return task_out, shared_out


@register("ple")
class PLE(MultiTaskModel):
    task_kinds = frozenset(KINDS)  # a tower per task of its own width and loss (data.task_kinds)

    def __init__(
        self,
        features,
        tasks,
        emb_dim: int = 4,
        n_levels: int = 1,
        n_shared: int = 1,
        n_specific: int = 1,
        expert: Sequence[int] = (256, 128),
        tower: Sequence[int] = (64, 32),
        dropout: float = 0.0,
    ):
        super().__init__(features, tasks)
        at_least(1, emb_dim=emb_dim, n_levels=n_levels, n_shared=n_shared, n_specific=n_specific)
        layer_sizes(expert=expert, tower=tower)
        in_unit_interval(dropout=dropout)
        self.emb_dim, self.n_levels, self.n_shared, self.n_specific = emb_dim, n_levels, n_shared, n_specific
        self.expert, self.tower, self.dropout = tuple(expert), tuple(tower), dropout
        self.embedding = FeatureEmbedding(features, emb_dim)
        levels, in_dim = [], self.embedding.out_dim
        for level in range(n_levels):
            levels.append(
                ExtractionLevel(
                    len(self.tasks), in_dim, expert, n_shared, n_specific, last=level == n_levels - 1, dropout=dropout
                )
            )
            in_dim = levels[-1].out_dim
        self.levels = nn.ModuleList(levels)
        self.towers = Towers(len(self.tasks), in_dim, tower, dropout, self.widths)

    def shared_repr(self, batch) -> torch.Tensor:
        """Mean output of the first level's shared experts: [B, H]."""
        return self.levels[0].shared(self.embedding(batch)).mean(0)

    def specific_repr(self, batch) -> torch.Tensor:
        """Mean output of each task's first-level experts: [T, B, H]."""
        out = self.levels[0].specific(self.embedding(batch))
        return out.view(len(self.tasks), self.n_specific, *out.shape[1:]).mean(1)

    def shared_parameters(self):
        """The embedding, every level's shared experts and shared gate; a level's task-specific
        experts below the last level (the shared gate mixes them into every task's path), and its
        task gates below the last two levels (their output feeds such experts)."""
        last = self.n_levels - 1
        shared = parameters_of(self.embedding)
        for i, level in enumerate(self.levels):
            shared += parameters_of(level.shared, level.shared_gate)
            shared += parameters_of(level.specific) if i < last else []
            shared += parameters_of(level.task_gates) if i < last - 1 else []
        return shared

    def forward(self, batch):
        task_in = shared_in = self.embedding(batch)
        for level in self.levels:
            task_in, shared_in = level(task_in, shared_in)
        return self.towers(task_in)
