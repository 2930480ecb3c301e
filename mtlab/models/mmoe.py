"""MMoE: Multi-gate Mixture-of-Experts (Ma et al., KDD 2018, Eq. 5–6).

    f_t(x) = Σ_e g_t(x)_e · E_e(x),   g_t(x) = softmax(W_t x),   logit_t = Tower_t(f_t(x))

All experts run as one batched matmul per layer; all gates as one more.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import KINDS, MultiTaskModel, at_least, in_unit_interval, layer_sizes, parameters_of, register
from .layers import Experts, FeatureEmbedding, Gate, Towers, mix


@register("mmoe")
class MMoE(MultiTaskModel):
    task_kinds = frozenset(KINDS)  # a tower per task of its own width and loss (data.task_kinds)

    def __init__(
        self,
        features,
        tasks,
        emb_dim: int = 4,
        n_experts: int = 4,
        expert: Sequence[int] = (256, 128),
        tower: Sequence[int] = (64, 32),
        dropout: float = 0.0,
    ):
        super().__init__(features, tasks)
        at_least(1, emb_dim=emb_dim, n_experts=n_experts)
        layer_sizes(expert=expert, tower=tower)
        in_unit_interval(dropout=dropout)
        self.emb_dim, self.n_experts, self.expert = emb_dim, n_experts, tuple(expert)
        self.tower, self.dropout = tuple(tower), dropout
        self.embedding = FeatureEmbedding(features, emb_dim)
        self.experts = Experts(n_experts, self.embedding.out_dim, expert, dropout)
        self.gates = Gate(len(self.tasks), self.embedding.out_dim, n_experts)
        self.towers = Towers(len(self.tasks), self.experts.out_dim, tower, dropout, self.widths)

    def shared_parameters(self):
        return parameters_of(self.embedding, self.experts)  # gate t and tower t: task t's alone

    def forward(self, batch):
        x = self.embedding(batch)
        return self.towers(mix(self.gates(x), self.experts(x)))
