"""Shared Bottom (Caruana, 1997): one network shared by all tasks, a tower per task on top.

h = MLP_shared(Emb(x));   logit_t = Tower_t(h)        (MPT-Rec, Table 2, "Shared Bottom")
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import KINDS, MultiTaskModel, at_least, in_unit_interval, layer_sizes, parameters_of, register
from .layers import FeatureEmbedding, Towers, mlp


@register("shared_bottom")
class SharedBottom(MultiTaskModel):
    task_kinds = frozenset(KINDS)  # a tower per task of its own width and loss (data.task_kinds)
    one_representation = True  # `represent` then `heads`: rep_grad combines gradients of the representation

    def __init__(
        self,
        features,
        tasks,
        emb_dim: int = 4,
        bottom: Sequence[int] = (256, 128),
        tower: Sequence[int] = (64, 32),
        dropout: float = 0.0,
    ):
        super().__init__(features, tasks)
        at_least(1, emb_dim=emb_dim)
        layer_sizes(bottom=bottom, tower=tower)
        in_unit_interval(dropout=dropout)
        self.emb_dim, self.bottom, self.tower, self.dropout = emb_dim, tuple(bottom), tuple(tower), dropout
        self.embedding = FeatureEmbedding(features, emb_dim)
        self.shared = mlp(self.embedding.out_dim, bottom, dropout)
        self.towers = Towers(
            len(self.tasks), bottom[-1] if bottom else self.embedding.out_dim, tower, dropout, self.widths
        )

    def shared_parameters(self):
        return parameters_of(self.embedding, self.shared)

    def represent(self, batch):
        """h, the one representation every tower reads (rep_grad combines the gradients on it)."""
        return self.shared(self.embedding(batch))

    def heads(self, h):
        return self.towers(h)

    def forward(self, batch):
        return self.heads(self.represent(batch))
