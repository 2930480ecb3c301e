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
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.temperature = temperature
        # buffers, so that a checkpoint holds them and a resumed run weights as an uninterrupted one
        self.register_buffer("epoch", torch.tensor(-1))  # the epoch being summed
        self.register_buffer("running_sum", torch.zeros(n_tasks))  # of this epoch's step losses
        self.register_buffer("running_steps", torch.tensor(0))
        self.register_buffer("previous_means", torch.full((2, n_tasks), float("nan")))  # epochs e−2, e−1

    def weights(self, losses, epoch):
        detached = losses.detach()
        if epoch != int(self.epoch):
            done = self.running_sum / self.running_steps if int(self.running_steps) else torch.full_like(detached, float("nan"))
            consecutive = epoch == int(self.epoch) + 1
            self.previous_means = torch.stack([self.previous_means[1], done]) if consecutive \
                else torch.full_like(self.previous_means, float("nan"))
            self.epoch.fill_(epoch)
            self.running_sum.zero_()
            self.running_steps.zero_()
        self.running_sum += detached
        self.running_steps += 1
        if epoch < 2 or bool(self.previous_means.isnan().any()):
            return torch.ones_like(detached)
        ratio = self.previous_means[1] / self.previous_means[0]
        return self.n_tasks * torch.softmax(ratio / self.temperature, dim=0)


@register("rlw")
class RandomLossWeighting(LossWeighting):
    """RLW (Lin et al., TMLR 2022): weights drawn every step as softmax of a standard normal sample
    (they sum to one)."""

    def weights(self, losses, epoch):
        return torch.softmax(torch.randn(self.n_tasks, device=losses.device), dim=0)
