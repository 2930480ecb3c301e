"""Single Task: an independent network per task (own embeddings, bottom and tower); no sharing.

The baseline of every multi-task table (MPT-Rec, Table 2, "Single Task"). The T networks have the
same shape, so they are computed together as batched matmuls.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import KINDS, MultiTaskModel, at_least, in_unit_interval, layer_sizes, register
from .layers import FeatureEmbedding, ParallelMLP, Towers


@register("single_task")
class SingleTask(MultiTaskModel):
    task_kinds = frozenset(KINDS)  # a tower per task of its own width and loss (data.task_kinds)

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
        n = len(self.tasks)
        self.embedding = FeatureEmbedding(features, emb_dim, copies=n)
        self.bottoms = ParallelMLP(n, self.embedding.out_dim, bottom, dropout)
        self.towers = Towers(n, self.bottoms.out_dim, tower, dropout, self.widths)

    def shared_parameters(self):
        return []  # each task's network is its own (the stacked tensors hold one slice per task)

    def forward(self, batch):
        return self.towers(self.bottoms(self.embedding(batch)))
