"""Strategies that weight the task losses: EW, UW, DWA, RLW."""

from __future__ import annotations

import torch
from torch import nn

from .base import LossWeighting, register


@register("ew")
class EqualWeighting(LossWeighting):
    """EW: L = Σ_t L_t."""

    def weights(self, losses, epoch):
        return torch.ones_like(losses)


@register("uw")
class UncertaintyWeighting(LossWeighting):
    """UW (Kendall et al., CVPR 2018, Eq. 7 as in LibMTL): L = Σ_t L_t / (2 σ_t²) + log σ_t, with
    s_t = log σ_t² learned (initialized at −0.5)."""

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.log_variance = nn.Parameter(torch.full((n_tasks,), -0.5))

    def loss(self, losses, epoch):
        w = 1 / (2 * self.log_variance.exp())
        return (w * losses + self.log_variance / 2).sum(), w

    def weights(self, losses, epoch):
        return (1 / (2 * self.log_variance.exp())).detach()


@register("dwa")
class DynamicWeightAverage(LossWeighting):
    """DWA (Liu et al., CVPR 2019, Eq. 1): w_t(e) = T · softmax_t(r_t(e−1) / τ), r_t(e−1) =
    L̄_t(e−1) / L̄_t(e−2) from the mean training losses of the last two epochs; w = 1 for the first two."""

    def __init__(self, n_tasks: int, temperature: float = 2.0):
        super().__init__(n_tasks)
        self.temperature = temperature
        self.epoch_sums: dict[int, torch.Tensor] = {}
        self.epoch_counts: dict[int, int] = {}

    def weights(self, losses, epoch):
        detached = losses.detach()
        self.epoch_sums[epoch] = self.epoch_sums.get(epoch, torch.zeros_like(detached)) + detached
        self.epoch_counts[epoch] = self.epoch_counts.get(epoch, 0) + 1
        if epoch < 2 or epoch - 2 not in self.epoch_sums:
            return torch.ones_like(detached)
        mean = lambda e: self.epoch_sums[e] / self.epoch_counts[e]  # noqa: E731
        ratio = mean(epoch - 1) / mean(epoch - 2)
        return self.n_tasks * torch.softmax(ratio / self.temperature, dim=0)


@register("rlw")
class RandomLossWeighting(LossWeighting):
    """RLW (Lin et al., TMLR 2022): weights drawn every step as softmax of a standard normal sample
    (they sum to one)."""

    def weights(self, losses, epoch):
        return torch.softmax(torch.randn(self.n_tasks, device=losses.device), dim=0)
