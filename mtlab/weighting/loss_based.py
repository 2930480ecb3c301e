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
        # in the state_dict (buffers, and the counters as extra state), so that a checkpoint holds them
        # and a resumed run weights as an uninterrupted one; the counters stay Python ints, so a step
        # never waits for the device to read them
        self.register_buffer("running_sum", torch.zeros(n_tasks))  # of this epoch's step losses
        self.register_buffer("previous_means", torch.zeros(2, n_tasks))  # mean losses of epochs e−2, e−1
        self.epoch, self.steps, self.finished = -1, 0, 0  # epoch being summed, its steps, finished epochs in a row

    def get_extra_state(self) -> dict:
        return {"epoch": self.epoch, "steps": self.steps, "finished": self.finished}

    def set_extra_state(self, state: dict) -> None:
        self.epoch, self.steps, self.finished = state["epoch"], state["steps"], state["finished"]

    def weights(self, losses, epoch):
        detached = losses.detach()
        if epoch != self.epoch:
            consecutive = self.steps and epoch == self.epoch + 1  # the epoch just summed is e − 1
            if consecutive:
                self.previous_means = torch.stack([self.previous_means[1], self.running_sum / self.steps])
            self.finished = min(self.finished + 1, 2) if consecutive else 0
            self.epoch, self.steps = epoch, 0
            self.running_sum.zero_()
        self.running_sum += detached
        self.steps += 1
        if epoch < 2 or self.finished < 2:
            return torch.ones_like(detached)
        ratio = self.previous_means[1] / self.previous_means[0]
        return self.n_tasks * torch.softmax(ratio / self.temperature, dim=0)


@register("rlw")
class RandomLossWeighting(LossWeighting):
    """RLW (Lin et al., TMLR 2022): weights drawn every step as softmax of a standard normal sample
    (they sum to one)."""

    def weights(self, losses, epoch):
        return torch.softmax(torch.randn(self.n_tasks, device=losses.device), dim=0)
