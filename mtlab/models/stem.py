"""STEM: Shared and Task-specific EMbeddings (Su et al., AAAI 2024; "STEM-Net").

Every task has its own embedding table besides a shared one (one lookup for all of them). Shared
experts read the shared embedding; task t's experts read task t's embedding. Task t's gate, on its
own embedding, mixes the shared experts, its own experts and the *other* tasks' experts — the last
with their gradient stopped ("all forward, task-specific backward"):

    h_t = Σ_e g_t,e · [E_shared(x_s) ; E_t(x_t) ; sg(E_u(x_u)) for u ≠ t],   logit_t = Tower_t(h_t)

so task t's loss never reaches the other tasks' experts or embeddings. (The MPT-Rec release
overwrites its list of specific outputs in a loop, so one task's expert never learns; not here.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import KINDS, MultiTaskModel, at_least, in_unit_interval, layer_sizes, parameters_of, register
from .layers import Experts, FeatureEmbedding, Gate, Towers


@register("stem")
class STEM(MultiTaskModel):
    task_kinds = frozenset(KINDS)  # a tower per task of its own width and loss (data.task_kinds)

    def __init__(
        self,
        features,
        tasks,
        emb_dim: int = 4,
        n_shared: int = 1,
        n_specific: int = 1,
        expert: Sequence[int] = (256, 128),
        tower: Sequence[int] = (64, 32),
        dropout: float = 0.0,
    ):
        super().__init__(features, tasks)
        at_least(1, emb_dim=emb_dim, n_shared=n_shared, n_specific=n_specific)
        layer_sizes(expert=expert, tower=tower)
        in_unit_interval(dropout=dropout)
        self.emb_dim, self.n_shared, self.n_specific = emb_dim, n_shared, n_specific
        self.expert, self.tower, self.dropout = tuple(expert), tuple(tower), dropout
        t = len(self.tasks)
        # copy 0 (shared) in a table of its own: the task copies are each task's alone
        self.embedding = FeatureEmbedding(features, emb_dim, copies=t + 1, shared_first=True)
        in_dim = self.embedding.out_dim
        self.shared = Experts(n_shared, in_dim, expert, dropout)
        self.specific = Experts(t * n_specific, in_dim, expert, dropout)
        self.gates = Gate(t, in_dim, n_shared + t * n_specific)
        self.towers = Towers(t, self.specific.out_dim, tower, dropout, self.widths)
        owner = torch.arange(t).repeat_interleave(n_specific)  # which task owns each specific expert
        self.register_buffer("own", owner[None, :] == torch.arange(t)[:, None], persistent=False)  # [T, T·m]

    def shared_parameters(self):
        """The shared embedding copy and the shared experts. Task t's embedding columns, experts,
        gate and tower are its own: the other tasks see task t's experts with the gradient stopped."""
        return parameters_of(self.embedding.shared_table, self.embedding.shared_bag_table, self.shared)

    def _experts(self, batch):
        emb = self.embedding(batch)  # [T+1, B, in]
        t, m = len(self.tasks), self.n_specific
        b, d = emb.shape[1:]
        shared = self.shared(emb[0])  # [S, B, H]
        specific = self.specific(emb[1:].unsqueeze(1).expand(t, m, b, d).reshape(t * m, b, d))  # [T·m, B, H]
        return emb, shared, specific

    def shared_repr(self, batch) -> torch.Tensor:
        """Mean output of the shared experts: [B, H]."""
        return self._experts(batch)[1].mean(0)

    def specific_repr(self, batch) -> torch.Tensor:
        """Mean output of each task's experts: [T, B, H]."""
        specific = self._experts(batch)[2]
        return specific.view(len(self.tasks), self.n_specific, *specific.shape[1:]).mean(1)

    def forward(self, batch):
        emb, shared, specific = self._experts(batch)
        t = len(self.tasks)
        # task t sees every specific expert, but only its own with gradient: [T, T·m, B, H]
        seen = torch.where(self.own[:, :, None, None], specific, specific.detach())
        experts = torch.cat([shared.unsqueeze(0).expand(t, -1, -1, -1), seen], dim=1)
        fused = torch.einsum("tbe,tebh->tbh", self.gates(emb[1:]), experts)
        return self.towers(fused)
