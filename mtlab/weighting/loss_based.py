"""Strategies that weight (or transform) the task losses: EW, UW, DWA, RLW, GLS, STCH, FAMO."""

from __future__ import annotations

import torch
from torch import nn

from .base import LossWeighting, OwnAdam, register, require_positive


@register("ew", "equal (EW)")
class EqualWeighting(LossWeighting):
    """EW: L = Σ_t L_t."""

    def weights(self, losses, epoch):
        return torch.ones_like(losses)


@register("uw", "uncertainty (UW)")
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


@register("dwa", "DWA")
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


@register("rlw", "random (RLW)")
class RandomLossWeighting(LossWeighting):
    """RLW (Lin et al., TMLR 2022): weights drawn every step as softmax of a standard normal sample
    (they sum to one)."""

    def weights(self, losses, epoch):
        return torch.softmax(torch.randn(self.n_tasks, device=losses.device), dim=0)


@register("gls", "GLS")
class GeometricLossStrategy(LossWeighting):
    """GLS (Chennupati et al., CVPR Workshops 2019, Eq. 5): L = (Π_t L_t)^{1/T}, the geometric mean,
    computed as exp(mean_t log L_t). Its gradient weights L_t by ∂L/∂L_t = L / (T L_t) (reported).
    E.g. L = (1, 4): L = 2, weights (1, ¼)."""

    def loss(self, losses, epoch):
        require_positive("gls", losses)
        total = losses.clamp_min(1e-20).log().mean().exp()
        return total, (total / (len(losses) * losses.clamp_min(1e-20))).detach()

    def weights(self, losses, epoch):
        return self.loss(losses, epoch)[1]


@register("stch", "STCH")
class SmoothTchebycheff(LossWeighting):
    """STCH (Lin et al., "Smooth Tchebycheff Scalarization for Multi-Objective Optimization", ICML
    2024, Eq. 8), as LibMTL applies it to multi-task learning: during `warmup_epochs` the model trains
    on Σ_t log L_t and the last warm-up epoch's mean losses become the nadir point L̄; then
        L = T · μ · log Σ_t exp(log(L_t / L̄_t) / μ)
    (equal preferences, ideal point 0 in log space), a smooth maximum of the normalized log losses
    (μ → 0: the worst task only; large μ: their mean). Weight on L_t: T · softmax_t(…/μ) / L_t.
    E.g. no warm-up, μ = 1, L = (1, e): softmax(0, 1) = (0.269, 0.731), weights (0.538, 0.538)."""

    def __init__(self, n_tasks: int, mu: float = 1.0, warmup_epochs: int = 1):
        super().__init__(n_tasks)
        if not mu > 0:
            raise ValueError(f"mu must be positive, got {mu!r}")
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an integer of at least 0, got {warmup_epochs!r}")
        self.mu, self.warmup_epochs = mu, warmup_epochs
        self.register_buffer("loss_sum", torch.zeros(n_tasks))  # over the last warm-up epoch's steps
        self.register_buffer("nadir", torch.full((n_tasks,), float("nan")))
        self.steps = 0

    def get_extra_state(self):
        return {"steps": self.steps}

    def set_extra_state(self, state):
        self.steps = state["steps"]

    def loss(self, losses, epoch):
        require_positive("stch", losses)
        logs = losses.clamp_min(1e-20).log()
        if epoch < self.warmup_epochs:
            if epoch == self.warmup_epochs - 1:
                self.loss_sum += losses.detach()
                self.steps += 1
            return logs.sum(), (1 / losses.clamp_min(1e-20)).detach()
        if self.nadir.isnan().any():  # first step after the warm-up (read once)
            self.nadir = self.loss_sum / self.steps if self.steps else torch.ones_like(self.nadir)
        scaled = (logs - self.nadir.log()) / self.mu
        total = len(losses) * self.mu * torch.logsumexp(scaled, 0)
        return total, (len(losses) * torch.softmax(scaled, 0) / losses.clamp_min(1e-20)).detach()

    def weights(self, losses, epoch):
        return self.loss(losses, epoch)[1]


@register("famo", "FAMO")
class FAMO(LossWeighting):
    """FAMO (Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023, Alg. 1): one
    backward pass a step. With logits ξ, z = softmax(ξ) and c = Σ_t z_t / L_t,
        L = Σ_t z_t log L_t / c            (its gradient: Σ_t (z_t / (c L_t)) ∇L_t, weights reported)
    and after the step ξ moves so that the losses fall at equal rates: with δ_t = log L_t(before) −
    log L_t(after), ξ.grad = J_softmax(ξ)ᵀ δ, stepped by its own Adam (lr `w_lr`, weight decay
    `gamma`). "After" is the next step's losses (on the next batch), as in LibMTL: no extra forward
    pass (the authors' code evaluates the same batch again). E.g. ξ = 0, L = (1, 2): z = (½, ½),
    c = ¾, weights (⅔, ⅓). `min_losses` (a number or one per task): L_t is taken as L_t − min_t, as the
    authors' code does, for losses that can be ≤ 0 (an alignment loss): give a lower bound of each."""

    def __init__(self, n_tasks: int, w_lr: float = 0.025, gamma: float = 1e-3, min_losses=None):
        super().__init__(n_tasks)
        if min_losses is not None:
            bounds = torch.as_tensor(min_losses, dtype=torch.float32).flatten()
            if bounds.numel() not in (1, n_tasks) or not torch.isfinite(bounds).all():
                raise ValueError(f"famo: min_losses must be one finite number or {n_tasks}, got {min_losses!r}")
            self.register_buffer("min_losses", bounds.expand(n_tasks).clone())
        else:
            self.min_losses = None
        self.logits = OwnAdam(torch.zeros(n_tasks), lr=w_lr, weight_decay=gamma)
        self.previous: torch.Tensor | None = None  # the last step's losses

    def get_extra_state(self):
        return {"logits": self.logits.state_dict(), "previous": self.previous}

    def set_extra_state(self, state):
        self.logits.load_state_dict(state["logits"])
        self.previous = state["previous"]

    def loss(self, losses, epoch):
        if self.min_losses is not None:
            losses = losses - self.min_losses.to(losses)
        given = self.min_losses is not None
        hint = (
            "lower min_losses, " if given else "give min_losses below every loss (--weighting-option min_losses=-5), "
        )
        require_positive("famo", losses, hint)
        logits = self.logits.on(losses.device)
        current = losses.detach().clamp_min(1e-8)
        if self.previous is not None:
            delta = self.previous.log() - current.log()
            with torch.enable_grad():
                xi = logits.value
                (grad,) = torch.autograd.grad(torch.softmax(xi, 0), xi, grad_outputs=delta.to(xi))
            logits.step(grad)
        self.previous = current
        z = torch.softmax(logits.value.detach(), 0).to(losses.dtype)
        c = (z / current).sum()
        return (z * losses.clamp_min(1e-8).log()).sum() / c, z / (c * current)

    def weights(self, losses, epoch):
        raise NotImplementedError("FAMO's weights come with its loss (a step updates its state)")
