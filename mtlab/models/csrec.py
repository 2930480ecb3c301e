"""CSRec: Contrastive Sharing (Bai et al., WWW 2022), as in the MPT-Rec authors' code.

Task masks M_t as in Sparse Sharing. The parameters used by some task but not shared by every task
form the contrastive mask C (for two tasks, M_0 ∨ M_1 minus M_0 ⊙ M_1). Task t's update of the
shared weights W is

    ∇L_t(W ⊙ M_t) ⊙ M_t − ∇L_t(W ⊙ C) ⊙ C

i.e. task t learns through its subnet and unlearns what the contrastive subnet (the parameters
that are not common to all tasks) would contribute to it. Here the second term is the gradient of
−contrast_weight · Σ_t L_t(W ⊙ C), computed on the detached embedding, with the biases and the towers'
parameters detached, so that it reaches only the masked weights W, as the update rule says (letting
it reach the embedding or the biases turns it into unbounded gradient ascent on them).
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from .base import register, task_losses
from .sparse_sharing import SparseSharing


@register("csrec")
class CSRec(SparseSharing):
    task_kinds = frozenset({"binary"})  # its contrastive loss flips binary labels

    def __init__(
        self,
        features,
        tasks,
        emb_dim: int = 4,
        bottom=(256, 128),
        tower=(64, 32),
        dropout: float = 0.0,
        prune_rounds: int = 10,
        prune_rate: float = 0.1,
        prune_min_sparsity: float = 0.4,
        prune_epochs: int = 1,
        prune_warmup_epochs: int = 1,
        contrast_weight: float = 1.0,
    ):
        super().__init__(
            features,
            tasks,
            emb_dim,
            bottom,
            tower,
            dropout,
            prune_rounds,
            prune_rate,
            prune_min_sparsity,
            prune_epochs,
            prune_warmup_epochs,
        )
        self.contrast_weight = contrast_weight

    def contrastive_masks(self) -> list[torch.Tensor]:
        """C = (1 − Π_t M_t) ⊙ max_t M_t per masked layer, shaped [1, in, out]: the weights some task
        uses but not every task. (`method-notes.md` writes 1 − M_0 ⊙ M_1, which also holds the
        weights pruned for every task; they are not part of any subnet and must stay exactly zero.)"""
        return [
            (1 - layer.mask.prod(0, keepdim=True)) * layer.mask.amax(0, keepdim=True) for layer in self.masked_layers()
        ]

    def training_loss(self, batch, labels, step):
        x = self.embedding(batch)
        losses = task_losses(self.towers(self.shared(x)), labels)
        if not self.contrast_weight:
            return losses, None
        contrast = self.shared(x.detach(), self.contrastive_masks(), detach_bias=True)  # [1, B, H]: one subnet
        frozen_towers = {k: v.detach() for k, v in self.towers.named_parameters()}
        contrast_logits = functional_call(self.towers, frozen_towers, (contrast.expand(len(self.tasks), -1, -1),))
        return losses, -self.contrast_weight * task_losses(contrast_logits, labels).sum()
