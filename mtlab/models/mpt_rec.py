"""MPT-Rec pre-training (Efficient Multi-task Prompt Tuning for Recommendation, arXiv 2408.17214,
Sec. 3.2; the equations as in `shared/papers/method-notes.md`).

    x = Emb(features);  h_s = E_s(x);  h_k = E_k(x)                 shared and task-specific experts
    ĥ_k = h_k ⊙ e_k                                                (Eq. 6, task embedding e_k)
    g_k = softmax(W_k x) ∈ R²;  z_k = g_k,0 · ĥ_k + g_k,1 · h_s     (Eq. 7, gate without bias)
    ŷ_k = σ(T_k(z_k))                                               (Eq. 8)
    ŷ_k^gen = σ(T_k(h_s))   (same tower)                            (Eq. 1–2, shared-only prediction)
    L_cls = NLL(log_softmax(A · GRL_λ(h_s)), c)                     (Eq. 3–4, adversarial task classifier)
    L = Σ_k BCE(ŷ_k) + β_gen · Σ_k BCE(ŷ_k^gen) + β_cls · L_cls     (Eq. 5, 9)

The "generative adversarial network" is, as in the authors' release, a task classifier trained
through a gradient-reversal layer: the classifier learns to tell the task label c_i from h_s while
the shared expert learns to hide it. Reversal strength λ = 2/(1+exp(−10p)) − 1 over training
progress p (DANN), or a constant. The data carry no task labels, so c_i is inferred EM-style: random
at first, then every `assign_every` epochs each row is assigned the task whose fused prediction has
the lowest BCE on it (updated as the rows are visited, per batch: no extra pass over the data).

Defaults: the paper's balance weight 0.1 for the classifier (β_cls); the shared-only prediction loss
enters Eq. 5 unweighted (β_gen = 1). The authors' scripts set both to 0; `adversarial=False` does
the same and leaves the plain fused model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    MultiTaskModel,
    at_least,
    in_unit_interval,
    layer_sizes,
    parameters_of,
    register,
    task_losses,
)
from .layers import Experts, FeatureEmbedding, Gate, Towers, mlp


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the gradient by −λ backward (Ganin & Lempitsky, 2015). In the
    setup_context form with a generated vmap rule, so seed-vectorized training can batch it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, strength):
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.strength = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        return -ctx.strength * grad, None


def reverse_gradient(x: torch.Tensor, strength: float) -> torch.Tensor:
    return GradientReversal.apply(x, strength)


def dann_strength(progress, gamma: float = 10.0):
    """λ(p) = 2 / (1 + exp(−γ p)) − 1: 0 at the start of training, → 1 at the end. `progress` a float,
    or a 0-dim tensor (a compiled step reads it as data, so a new value is no new compile)."""
    if isinstance(progress, torch.Tensor):
        return 2.0 / (1.0 + torch.exp(-gamma * progress)) - 1.0
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


@register("mpt_rec")
class MPTRec(MultiTaskModel):
    schedule = True  # the GRL strength follows the progress (DANN), the EM step the epoch (tensors in a compiled step)

    def __init__(
        self,
        features,
        tasks,
        emb_dim: int = 4,
        expert: Sequence[int] = (256, 128),
        tower: Sequence[int] = (64, 32),
        dropout: float = 0.0,
        adversarial: bool = True,
        beta_gen: float = 1.0,
        beta_cls: float = 0.1,
        grl: str = "dann",
        grl_lambda: float = 1.0,
        classifier: Sequence[int] = (),
        assign_every: int = 1,
    ):
        super().__init__(features, tasks)
        if grl not in ("dann", "constant"):
            raise ValueError(f"grl must be 'dann' or 'constant', got {grl!r}")
        at_least(1, emb_dim=emb_dim, assign_every=assign_every)
        layer_sizes(expert=expert, tower=tower, classifier=classifier)
        in_unit_interval(dropout=dropout)
        self.emb_dim, self.expert, self.tower, self.dropout = emb_dim, tuple(expert), tuple(tower), dropout
        self.adversarial, self.beta_gen, self.beta_cls = adversarial, beta_gen, beta_cls
        self.grl, self.grl_lambda, self.classifier = grl, grl_lambda, tuple(classifier)
        self.assign_every = assign_every
        k = len(self.tasks)
        self.embedding = FeatureEmbedding(features, emb_dim)
        in_dim = self.embedding.out_dim
        self.shared_expert = Experts(1, in_dim, expert, dropout)
        self.specific_experts = Experts(k, in_dim, expert, dropout)
        hidden = self.shared_expert.out_dim
        self.task_embedding = nn.Embedding(k, hidden)
        self.gates = Gate(k, in_dim, 2, bias=False)
        self.towers = Towers(k, hidden, tower, dropout)
        self.task_classifier = nn.Sequential(
            mlp(hidden, classifier), nn.Linear(classifier[-1] if classifier else hidden, k)
        )
        self.register_buffer("task_assignment", torch.empty(0, dtype=torch.long))  # c_i per training row

    # representations, for analysis (t-SNE) and prompt tuning
    def shared_repr(self, batch) -> torch.Tensor:
        """h_s: [B, H]."""
        return self.shared_expert(self.embedding(batch))[0]

    def specific_repr(self, batch) -> torch.Tensor:
        """h_k of every task: [K, B, H]."""
        return self.specific_experts(self.embedding(batch))

    def _parts(self, batch):
        x = self.embedding(batch)
        shared = self.shared_expert(x)[0]  # [B, H]
        aware = self.specific_experts(x) * self.task_embedding.weight[:, None, :]  # Eq. 6: [K, B, H]
        g = self.gates(x)  # [K, B, 2]
        fused = g[..., :1] * aware + g[..., 1:] * shared  # Eq. 7
        return shared, self.towers(fused)  # Eq. 8 logits [B, K]

    def shared_parameters(self):
        """The embedding and the shared expert. Task-specific experts, task embeddings, gates and
        towers are task k's own (row k of each stacked tensor); the task classifier is reached by
        the adversarial loss only."""
        return parameters_of(self.embedding, self.shared_expert)

    @property
    def row_state(self) -> bool:
        """The adversarial classifier's task assignment c_i is kept per training row."""
        return self.adversarial

    def forward(self, batch):
        return self._parts(batch)[1]

    def training_loss(self, batch, labels, step):
        shared, logits = self._parts(batch)
        losses = task_losses(logits, labels)  # a row without a task's label (CVR unclicked) is left out
        if not self.adversarial:
            return losses, None
        gen_loss = task_losses(self.towers(shared), labels).sum()  # Eq. 1–2: shared-only prediction
        with torch.no_grad():  # a task without a label on the row is never its assignment
            per_row = F.binary_cross_entropy_with_logits(logits, labels.nan_to_num(), reduction="none")
            per_row = per_row.masked_fill(labels.isnan(), float("inf"))
        assignment = self._assign(per_row, step)  # Eq. 3–4 labels c_i (EM-style)
        strength = dann_strength(step.progress) * self.grl_lambda if self.grl == "dann" else self.grl_lambda
        cls_loss = F.cross_entropy(self.task_classifier(reverse_gradient(shared, strength)), assignment)
        return losses, self.beta_gen * gen_loss + self.beta_cls * cls_loss

    def start_rows(self, n_rows: int, device) -> None:
        """The random first assignment c_i of every training row (drawn from the global stream)."""
        self.task_assignment = torch.randint(len(self.tasks), (n_rows,), device=device)

    def _assign(self, per_row_bce: torch.Tensor, step) -> torch.Tensor:
        """E-step: c_i = argmin_k BCE_k(i) for this batch's rows on refresh epochs; random at first."""
        if self.task_assignment.numel() != step.n_rows:
            self.start_rows(step.n_rows, per_row_bce.device)
        refresh = (step.epoch > 0) & (step.epoch % self.assign_every == 0)  # a bool, or a 0-dim tensor
        if isinstance(refresh, torch.Tensor):  # branch-free: a compiled step does not specialize on the epoch
            current = self.task_assignment[step.rows]
            self.task_assignment[step.rows] = torch.where(refresh, per_row_bce.argmin(1), current)
        elif refresh:
            self.task_assignment[step.rows] = per_row_bce.argmin(1)
        return self.task_assignment[step.rows]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "task_assignment")
        if saved is not None:  # sized by the training data, not the constructor
            self.task_assignment = torch.empty_like(saved, device=self.task_assignment.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
