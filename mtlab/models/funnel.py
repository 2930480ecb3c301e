"""The click → conversion funnel: ESMM, ESCM², AITM. Each predicts, for every impression, the three
tasks of the funnel data (mtlab.data.funnel_shards): ctr = P(click), cvr = P(conversion | click) and
ctcvr = P(click and conversion), as logits [B, 3] in that order; each trains on the entire space of
impressions, and the conversion label is never used on an impression without a click.

The cvr slot of the losses is each method's own CVR objective (ESCM²'s counterfactual risk); ESMM
and AITM have none (their CVR is learnt through ctcvr), so theirs is the log loss of their pCVR on
the batch's clicked impressions, computed without gradient: in the training history for the
record, and left out of every gradient combination (a task with no gradient takes no part).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    MultiTaskModel,
    SharedPart,
    at_least,
    in_unit_interval,
    layer_sizes,
    parameters_of,
    register,
    task_losses,
)
from .layers import FeatureEmbedding, ParallelMLP, mlp

FUNNEL_TASKS = ("ctr", "cvr", "ctcvr")
FUNNEL_MODELS = ("esmm", "escm2", "aitm")  # they train on funnel data only (ali-ccp, aliexpress-<cc>)


def logit_of_log(log_p: torch.Tensor) -> torch.Tensor:
    """logit(p) from log p, stably: log p − log(1 − p) (p kept below 1)."""
    log_p = log_p.clamp_max(-1e-7)
    return log_p - torch.log(-torch.expm1(log_p))


def product_logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """logit(σ(a) σ(b)): log p = log σ(a) + log σ(b)."""
    return logit_of_log(F.logsigmoid(a) + F.logsigmoid(b))


def ratio_logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """logit(σ(a) / σ(b)) (AITM's pCVR = ŷ_purchase / ŷ_click, clipped below 1)."""
    return logit_of_log(F.logsigmoid(a) - F.logsigmoid(b))


def tower_slice(towers: nn.Module, out: torch.Tensor | None, k: int) -> list[SharedPart]:
    """Slice k of stacked two-tower parameters ([2, …]) as SharedParts."""
    params = list(towers.parameters()) + ([out] if out is not None else [])
    return [
        SharedPart(p, (torch.arange(p.shape[0], device=p.device) == k).view(-1, *[1] * (p.dim() - 1))) for p in params
    ]


def clicked_logloss(cvr_logit: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The log loss of pCVR on the batch's clicked impressions (labels[:, 1] is NaN elsewhere)."""
    return task_losses(cvr_logit[:, None], labels[:, 1:2])[0]


class FunnelModel(MultiTaskModel):
    """Shared embedding, a CTR tower and a CVR tower (one batched MLP)."""

    required_tasks = FUNNEL_TASKS

    def __init__(self, features, tasks, emb_dim: int = 8, tower: Sequence[int] = (64, 32), dropout: float = 0.0):
        super().__init__(features, tasks)
        if tuple(tasks) != FUNNEL_TASKS:
            raise ValueError(
                f"{type(self).__name__} predicts the funnel's tasks {list(FUNNEL_TASKS)}, in that order; "
                f"got {list(tasks)} (train it on ali-ccp or aliexpress-<cc> with --tasks ctr,cvr,ctcvr)"
            )
        at_least(1, emb_dim=emb_dim)
        layer_sizes(tower=tower)
        in_unit_interval(dropout=dropout)
        self.emb_dim, self.tower, self.dropout = emb_dim, tuple(tower), dropout
        self.embedding = FeatureEmbedding(features, emb_dim)
        self.towers = ParallelMLP(2, self.embedding.out_dim, tower, dropout)
        self.out = nn.Parameter(torch.empty(2, self.towers.out_dim, 1))  # the two towers' output layers
        nn.init.uniform_(self.out, -1 / math.sqrt(self.towers.out_dim), 1 / math.sqrt(self.towers.out_dim))

    def shared_parameters(self):
        """The embedding and the CTR tower (slice 0 of the stacked towers and output layers): ctcvr =
        pCTR × pCVR reaches it as the ctr task does. The CVR tower (slice 1) is ctcvr's alone here."""
        return parameters_of(self.embedding) + tower_slice(self.towers, self.out, 0)

    def ctr_cvr(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.towers(self.embedding(batch))  # [2, B, H]
        logits = torch.bmm(hidden, self.out).squeeze(-1)  # [2, B]
        return logits[0], logits[1]

    def forward(self, batch):
        ctr, cvr = self.ctr_cvr(batch)
        return torch.stack([ctr, cvr, product_logit(ctr, cvr)], 1)


@register("esmm")
class ESMM(FunnelModel):
    """ESMM (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018, Eq. 1–5): pCTCVR = pCTR × pCVR,
    and over every impression
        L = Σ BCE(pCTR, click) + Σ BCE(pCTCVR, click ∧ conversion);
    pCVR is learnt only through the product, so it is defined (and unbiased) on the entire space."""

    def training_loss(self, batch, labels, step):
        ctr, cvr = self.ctr_cvr(batch)
        l_ctr = F.binary_cross_entropy_with_logits(ctr, labels[:, 0])
        l_ctcvr = F.binary_cross_entropy_with_logits(product_logit(ctr, cvr), labels[:, 2])
        with torch.no_grad():
            l_cvr = clicked_logloss(cvr, labels)
        return [l_ctr, l_cvr, l_ctcvr], None


@register("escm2")
class ESCM2(FunnelModel):
    """ESCM² (Wang et al., "ESCM²: Entire Space Counterfactual Multi-Task Model", SIGIR 2022, Eq. 8–13):
    ESMM's two losses plus a counterfactual CVR risk in the cvr slot, weighted by `risk_weight`
    (λ_c). `variant="ipw"` (Eq. 9): over the clicked impressions, BCE(pCVR, conversion) / p̂CTR,
    with p̂CTR = pCTR detached and clipped at `min_propensity`, averaged over all impressions.
    `variant="dr"` (Eq. 11–12): an imputation tower predicts the CVR error ê of every impression;
        R = mean over impressions of [ ê + o · (e − ê) / p̂CTR ],  plus the imputation loss
            mean over clicked of (e − ê)² / p̂CTR,
    e = BCE(pCVR, conversion) on a clicked impression, o = click."""

    def __init__(
        self,
        features,
        tasks,
        emb_dim: int = 8,
        tower: Sequence[int] = (64, 32),
        dropout: float = 0.0,
        variant: str = "ipw",
        risk_weight: float = 0.1,
        min_propensity: float = 0.05,
    ):
        super().__init__(features, tasks, emb_dim, tower, dropout)
        if variant not in ("ipw", "dr"):
            raise ValueError(f"variant must be 'ipw' or 'dr', got {variant!r}")
        if not 0 < min_propensity <= 1:
            raise ValueError(f"min_propensity must be in (0, 1], got {min_propensity!r}")
        self.variant, self.risk_weight, self.min_propensity = variant, risk_weight, min_propensity
        self.imputation = (
            nn.Sequential(
                mlp(self.embedding.out_dim, tower, dropout),
                nn.Linear(tower[-1] if tower else self.embedding.out_dim, 1),
            )
            if variant == "dr"
            else None
        )

    def shared_parameters(self):
        """The embedding and both towers: the CTR tower serves ctr and ctcvr, the CVR tower the
        counterfactual risk (cvr) and ctcvr; the imputation tower serves the cvr risk alone."""
        return parameters_of(self.embedding, self.towers) + [self.out]

    def loss_counts(self, labels):
        """Every loss, the counterfactual risk included, averages over every impression."""
        return torch.full((labels.shape[1],), labels.shape[0], device=labels.device)

    def training_loss(self, batch, labels, step):
        x = self.embedding(batch)
        hidden = self.towers(x)
        logits = torch.bmm(hidden, self.out).squeeze(-1)
        ctr, cvr = logits[0], logits[1]
        l_ctr = F.binary_cross_entropy_with_logits(ctr, labels[:, 0])
        l_ctcvr = F.binary_cross_entropy_with_logits(product_logit(ctr, cvr), labels[:, 2])
        clicked = labels[:, 0]
        propensity = torch.sigmoid(ctr).detach().clamp_min(self.min_propensity)
        error = F.binary_cross_entropy_with_logits(cvr, torch.nan_to_num(labels[:, 1]), reduction="none") * clicked
        if self.variant == "ipw":
            risk = (error / propensity).mean()
        else:
            imputed = self.imputation(x).squeeze(-1)
            risk = (imputed + clicked * (error - imputed) / propensity).mean()
            risk = risk + (clicked * (error.detach() - imputed) ** 2 / propensity).mean()
        return [l_ctr, self.risk_weight * risk, l_ctcvr], None


class InformationTransfer(nn.Module):
    """AITM's attention unit (Eq. 3–5): over the two vectors u ∈ {p (transferred), q (the task's own)},
    w_u = softmax_u(⟨h1(u), h2(u)⟩ / √k), z = Σ_u w_u h3(u)."""

    def __init__(self, dim: int):
        super().__init__()
        self.h1, self.h2, self.h3 = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.scale = math.sqrt(dim)

    def forward(self, transferred: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        u = torch.stack([transferred, own], 1)  # [B, 2, k]
        w = torch.softmax((self.h1(u) * self.h2(u)).sum(-1) / self.scale, dim=1)  # [B, 2]
        return (w.unsqueeze(-1) * self.h3(u)).sum(1)


@register("aitm")
class AITM(MultiTaskModel):
    """AITM (Xi et al., "Adaptive Information Transfer Multi-task", KDD 2021, Eq. 1–8) for the two
    steps click → purchase: each task has a tower q_t; the purchase task reads its own q and the
    information p = MLP(q_click) transferred from the click task through the attention unit; outputs
    ŷ_click = σ(head(q_click)), ŷ_purchase = σ(head(z)). Loss: BCE of both over every impression, plus
    the behavioural expectation calibrator α · mean max(ŷ_purchase − ŷ_click, 0) (Eq. 7), as the
    step's extra loss. pCVR = ŷ_purchase / ŷ_click (≤ 1 by the calibrator; clipped)."""

    required_tasks = FUNNEL_TASKS

    def __init__(
        self,
        features,
        tasks,
        emb_dim: int = 8,
        tower: Sequence[int] = (64, 32),
        dropout: float = 0.0,
        calibrator: float = 0.6,
    ):
        super().__init__(features, tasks)
        if tuple(tasks) != FUNNEL_TASKS:
            raise ValueError(f"AITM predicts the funnel's tasks {list(FUNNEL_TASKS)}, in that order; got {list(tasks)}")
        at_least(1, emb_dim=emb_dim)
        layer_sizes(tower=tower)
        if not tower:
            raise ValueError("AITM needs at least one tower layer (the transferred information lives there)")
        self.emb_dim, self.tower, self.dropout, self.calibrator = emb_dim, tuple(tower), dropout, calibrator
        self.embedding = FeatureEmbedding(features, emb_dim)
        self.towers = ParallelMLP(2, self.embedding.out_dim, tower, dropout)
        width = self.towers.out_dim
        self.transfer = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.attention = InformationTransfer(width)
        self.click_head, self.purchase_head = nn.Linear(width, 1), nn.Linear(width, 1)

    def shared_parameters(self):
        """The embedding and the click tower (slice 0 of the stacked towers), which the purchase task
        reads through the transferred information; the transfer and attention units, the purchase
        tower (slice 1) and each head are one task's."""
        return parameters_of(self.embedding) + tower_slice(self.towers, None, 0)

    def click_purchase(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.towers(self.embedding(batch))  # [2, B, H]: click, purchase
        click = self.click_head(q[0]).squeeze(-1)
        purchase = self.purchase_head(self.attention(self.transfer(q[0]), q[1])).squeeze(-1)
        return click, purchase

    def forward(self, batch):
        click, purchase = self.click_purchase(batch)
        return torch.stack([click, ratio_logit(purchase, click), purchase], 1)

    def training_loss(self, batch, labels, step):
        click, purchase = self.click_purchase(batch)
        l_ctr = F.binary_cross_entropy_with_logits(click, labels[:, 0])
        l_ctcvr = F.binary_cross_entropy_with_logits(purchase, labels[:, 2])
        calibration = self.calibrator * (torch.sigmoid(purchase) - torch.sigmoid(click)).clamp_min(0).mean()
        with torch.no_grad():
            l_cvr = clicked_logloss(ratio_logit(purchase, click), labels)
        return [l_ctr, l_cvr, l_ctcvr], calibration


__all__ = ["AITM", "ESCM2", "ESMM", "FUNNEL_MODELS", "FUNNEL_TASKS", "product_logit"]
