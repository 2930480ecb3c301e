"""A new task on a frozen multi-task model: the fine-tuning schemes of MPT-Rec's Table 3.

`FrozenBaseNewTask(base, new_task, head)` predicts the base's tasks with the base, untouched, and the
new task with `head`, the only module that trains. The base is frozen for real: its parameters do
not require gradients, it is computed without autograd, and it stays in eval mode, so no dropout,
running statistic or other state of it can move. Its predictions stay bit-identical.

Heads (each reads the frozen base's internals for a batch):
- SharedBottomHead  — Shared Bottom*: a new tower on the frozen shared bottom.
- MMoEHead          — MMoE*: a new gate over the frozen experts, and a tower.
- PLEHead           — PLE*: new task-specific experts, a gate over them and the frozen shared experts,
                      and a tower (single-level PLE, i.e. CGC).
- PromptHead        — MPT-Rec prompt tuning (Eq. 10–15), with the ablation variants of Figs. 4 and 5.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import MultiTaskModel
from .layers import Experts, Gate, Towers


class FrozenBaseNewTask(MultiTaskModel):
    def __init__(self, base: MultiTaskModel, new_task: str, head: nn.Module):
        super().__init__(base.features, (*base.tasks, new_task))
        self.base, self.head = base, head
        self.base.requires_grad_(False)
        self.base.eval()

    def shared_parameters(self):
        return []  # the base is frozen; the head is the new task's alone

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()  # frozen means frozen, in training too
        return self

    def forward(self, batch):
        with torch.no_grad():
            old = self.base(batch)
        return torch.cat([old, self.head(self.base, batch)[:, None]], dim=1)

    def training_loss(self, batch, labels, step):
        """Only the new task's BCE trains (the base's tasks contribute constant zeros)."""
        new = F.binary_cross_entropy_with_logits(self.head(self.base, batch), labels[:, -1])
        zeros = torch.zeros(len(self.base.tasks), device=new.device)
        return torch.cat([zeros, new[None]]), None


class SharedBottomHead(nn.Module):
    def __init__(self, base, tower: Sequence[int] = (64, 32)):
        super().__init__()
        in_dim = base.bottom[-1] if base.bottom else base.embedding.out_dim
        self.tower = Towers(1, in_dim, tower)

    def forward(self, base, batch):
        with torch.no_grad():
            h = base.shared(base.embedding(batch))
        return self.tower(h)[:, 0]


class MMoEHead(nn.Module):
    def __init__(self, base, tower: Sequence[int] = (64, 32)):
        super().__init__()
        self.gate = Gate(1, base.embedding.out_dim, base.n_experts)
        self.tower = Towers(1, base.experts.out_dim, tower)

    def forward(self, base, batch):
        with torch.no_grad():
            x = base.embedding(batch)
            experts = base.experts(x)  # [E, B, H]
        return self.tower(torch.einsum("gbe,ebh->gbh", self.gate(x), experts))[:, 0]


class PLEHead(nn.Module):
    def __init__(self, base, tower: Sequence[int] = (64, 32)):
        super().__init__()
        if base.n_levels != 1:
            raise ValueError("PLE* is defined here for single-level PLE (CGC); build the base with n_levels=1")
        in_dim = base.embedding.out_dim
        self.experts = Experts(base.n_specific, in_dim, base.expert)
        self.gate = Gate(1, in_dim, base.n_specific + base.n_shared)
        self.tower = Towers(1, self.experts.out_dim, tower)

    def forward(self, base, batch):
        with torch.no_grad():
            x = base.embedding(batch)
            shared = base.levels[0].shared(x)  # [S, B, H], frozen
        experts = torch.cat([self.experts(x), shared])
        return self.tower(torch.einsum("gbe,ebh->gbh", self.gate(x), experts))[:, 0]


class PromptHead(nn.Module):
    """MPT-Rec prompt tuning for a new task (Eq. 10–15), everything of the base frozen:

        H = LayerNorm(W₂ ReLU(W₁ x))                                   (Eq. 10, projection)
        a = softmax(H · [e_1 … e_K] / T)      per instance            (Eq. 11, prompt_weights="instance")
          = softmax(e_new · [e_1 … e_K])      per task (TES)           (prompt_weights="task")
          = 1/K                               fixed (FW)               (prompt_weights="fixed")
        h_new = Σ_k a_k h_k                                           (Eq. 12)
        ĥ = h_new ⊙ e_new                                             (Eq. 13)
        z = g₀ ĥ + g₁ h_s,   g = softmax(W_g x)                        (Eq. 14; use="both")
        ŷ = σ(Tower(z))                                                (Eq. 15)

    `use="shared"` predicts from h_s only, `use="specific"` from ĥ only (the Fig. 4 ablations).
    Temperature T = 150 as in the authors' code.
    """

    def __init__(
        self,
        base,
        projection: Sequence[int] = (64,),
        temperature: float = 150.0,
        prompt_weights: str = "instance",
        use: str = "both",
        tower: Sequence[int] = (64, 32),
    ):
        super().__init__()
        if prompt_weights not in ("instance", "task", "fixed"):
            raise ValueError(f"prompt_weights must be 'instance', 'task' or 'fixed', got {prompt_weights!r}")
        if use not in ("both", "shared", "specific"):
            raise ValueError(f"use must be 'both', 'shared' or 'specific', got {use!r}")
        self.temperature, self.prompt_weights, self.use = temperature, prompt_weights, use
        in_dim, hidden = base.embedding.out_dim, base.task_embedding.embedding_dim
        layers, width = [], in_dim
        for size in projection:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.projection = nn.Sequential(*layers, nn.Linear(width, hidden), nn.LayerNorm(hidden))
        self.task_embedding = nn.Parameter(torch.randn(hidden))  # e_new, initialized as nn.Embedding
        self.gate = Gate(1, in_dim, 2, bias=False)
        self.tower = Towers(1, hidden, tower)
        if prompt_weights != "instance":  # the projection is not used: do not count it as trained
            self.projection.requires_grad_(False)

    def task_weights(self, x: torch.Tensor, old_embeddings: torch.Tensor) -> torch.Tensor:
        """a: [B, K] (Eq. 11 and its FW / TES variants)."""
        k = old_embeddings.shape[0]
        if self.prompt_weights == "fixed":
            return x.new_full((x.shape[0], k), 1.0 / k)
        if self.prompt_weights == "task":
            return torch.softmax(old_embeddings @ self.task_embedding, dim=0).expand(x.shape[0], k)
        return torch.softmax(self.projection(x) @ old_embeddings.T / self.temperature, dim=1)

    def forward(self, base, batch):
        with torch.no_grad():
            x = base.embedding(batch)
            shared = base.shared_expert(x)[0]  # h_s [B, H]
            specific = base.specific_experts(x)  # h_k [K, B, H]
            old = base.task_embedding.weight  # e_k [K, H]
        if self.use == "shared":
            return self.tower(shared)[:, 0]
        a = self.task_weights(x, old)
        aware = torch.einsum("bk,kbh->bh", a, specific) * self.task_embedding  # Eq. 12–13
        if self.use == "specific":
            return self.tower(aware)[:, 0]
        g = self.gate(x)[0]  # [B, 2]
        return self.tower(g[:, :1] * aware + g[:, 1:] * shared)[:, 0]  # Eq. 14–15


HEADS = {"shared_bottom": SharedBottomHead, "mmoe": MMoEHead, "ple": PLEHead, "mpt_rec": PromptHead}


def attach_new_task(base: MultiTaskModel, new_task: str, **head_options) -> FrozenBaseNewTask:
    """Freeze `base` and add a trainable head for `new_task` (the scheme follows the base's type)."""
    name = getattr(base, "registry_name", type(base).__name__)
    if name not in HEADS:
        raise ValueError(f"no fine-tuning scheme for {name!r}; schemes exist for {', '.join(HEADS)}")
    return FrozenBaseNewTask(base, new_task, HEADS[name](base, **head_options))
