"""Strategies that combine the tasks' gradients on the shared parameters: PCGrad, MGDA, CAGrad,
IMTL-G. They loop over tasks (a handful), never over rows."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from .base import GradientCombination, register, split_losses

NO_WEIGHTS = float("nan")


@register("pcgrad")
class PCGrad(GradientCombination):
    """PCGrad (Yu et al., NeurIPS 2020, Alg. 1): each task gradient g_i, against every other task j in
    random order, loses its component along g_j when they conflict (g_i · g_j < 0):
        g_i ← g_i − (g_i · g_j / ‖g_j‖²) g_j;    g = Σ_i g_i."""

    def combine(self, grads):
        projected = grads.clone()
        for i in range(len(grads)):
            for j in torch.randperm(len(grads)).tolist():
                if j == i:
                    continue
                dot = projected[i] @ grads[j]
                if dot < 0:
                    projected[i] -= dot / grads[j].square().sum().clamp_min(1e-20) * grads[j]
        return projected.sum(0), torch.full((len(grads),), NO_WEIGHTS)


def min_norm_weights(grads: torch.Tensor) -> torch.Tensor:
    """The weights α on the simplex minimizing ‖Σ α_t g_t‖ (Sener & Koltun, NeurIPS 2018): their
    closed form for two tasks (Alg. 1); beyond, the T×T quadratic program αᵀGα on the simplex, solved
    by SLSQP (T is a handful, so this is cheaper than their Frank-Wolfe loop and as exact)."""
    gram = grads @ grads.T
    if len(grads) == 2:
        diff = gram[0, 0] - 2 * gram[0, 1] + gram[1, 1]
        a = ((gram[1, 1] - gram[0, 1]) / diff).clamp(0, 1) if diff > 0 else grads.new_tensor(0.5)
        return torch.stack([a, 1 - a])
    g = gram.double().cpu().numpy()
    return torch.as_tensor(simplex_minimize(lambda w: w @ g @ w, len(grads)), dtype=grads.dtype, device=grads.device)


def simplex_minimize(objective, n: int) -> np.ndarray:
    """argmin of `objective` over the probability simplex in R^n (SLSQP from the uniform point)."""
    result = minimize(objective, np.full(n, 1.0 / n), bounds=[(0, 1)] * n, method="SLSQP",
                      constraints={"type": "eq", "fun": lambda w: w.sum() - 1}, options={"ftol": 1e-12})
    return np.clip(result.x, 0, 1) / np.clip(result.x, 0, 1).sum()


@register("mgda")
class MGDA(GradientCombination):
    """MGDA (Sener & Koltun, NeurIPS 2018): the min-norm convex combination of the task gradients.
    `normalize`: 'none' (default) or 'l2' (each task gradient scaled to unit length first)."""

    def __init__(self, n_tasks: int, normalize: str = "none"):
        super().__init__(n_tasks)
        if normalize not in ("none", "l2"):
            raise ValueError(f"normalize must be 'none' or 'l2', got {normalize!r}")
        self.normalize = normalize

    def combine(self, grads):
        scaled = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-20) if self.normalize == "l2" else grads
        alpha = min_norm_weights(scaled)
        return alpha @ scaled, alpha


@register("cagrad")
class CAGrad(GradientCombination):
    """CAGrad (Liu et al., NeurIPS 2021, Alg. 1): with g₀ the mean gradient and φ = c²‖g₀‖², find w on
    the simplex minimizing g_wᵀg₀ + √φ ‖g_w‖ (g_w = Σ w_t g_t), then d = g₀ + √φ / ‖g_w‖ · g_w, divided
    by (1 + c²) when `rescale`. c = 0 gives the mean gradient. Solved on the T×T Gram matrix (SLSQP,
    as in the authors' code)."""

    def __init__(self, n_tasks: int, c: float = 0.4, rescale: bool = True):
        super().__init__(n_tasks)
        self.c, self.rescale = c, rescale

    def combine(self, grads):
        n = len(grads)
        g0 = grads.mean(0)
        if self.c == 0:
            return g0, torch.full((n,), 1.0 / n)
        gram = (grads @ grads.T).double().cpu().numpy()
        g0_gram = gram.mean(1)  # g_tᵀ g₀
        phi_sqrt = self.c * np.sqrt(max(gram.mean(), 1e-20))  # c ‖g₀‖

        def objective(w):
            return w @ g0_gram + phi_sqrt * np.sqrt(max(w @ gram @ w, 1e-20))

        w = torch.as_tensor(simplex_minimize(objective, n), dtype=grads.dtype, device=grads.device)
        gw = w @ grads
        d = g0 + phi_sqrt / gw.norm().clamp_min(1e-20) * gw
        return (d / (1 + self.c**2) if self.rescale else d), w


@register("imtl_g")
class IMTLG(GradientCombination):
    """IMTL-G (Liu et al., ICLR 2021, Eq. 5–6): weights α such that the combined gradient g = Σ α_t g_t
    has equal projections on every task's unit gradient u_t:
        D = [g₁ − g_t]_{t≥2},  U = [u₁ − u_t]_{t≥2},  α_{2..T} = g₁ Uᵀ (D Uᵀ)⁻¹,  α₁ = 1 − Σ α_{2..T}."""

    def combine(self, grads):
        units = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-20)
        d, u = grads[:1] - grads[1:], units[:1] - units[1:]
        rest = grads[:1] @ u.T @ torch.linalg.pinv(d @ u.T)
        alpha = torch.cat([1 - rest.sum(1), rest[0]])
        return alpha @ grads, alpha


@register("nash_mtl")
class NashMTL(GradientCombination):
    """Nash-MTL (Navon et al., ICML 2022, Eq. 4): the bargaining solution α > 0 with
    (G Gᵀ α)_t = 1 / α_t for every task, combined gradient Σ α_t g_t. Solved on the T×T Gram matrix
    by minimizing ‖G Gᵀ α − 1/α‖² over α > 0 (L-BFGS-B; the authors use a sequence of convex
    programs with cvxpy, which mtlab does not depend on)."""

    private_weighted = True  # the authors' code steps on Σ_t α_t L_t: task-specific parameters get α_t g_t

    def __init__(self, n_tasks: int, max_norm: float = 0.0):
        super().__init__(n_tasks)
        self.max_norm = max_norm  # clip the combined gradient's norm (0 = off), as in the authors' code

    def combine(self, grads):
        gram = (grads @ grads.T).double().cpu().numpy()
        scale = np.sqrt(max(np.abs(gram).max(), 1e-20))  # solve for unit-scale gradients, then rescale
        g = gram / scale**2

        def residual(a):
            r = g @ a - 1 / a
            jac = 2 * (g.T @ r + r / a**2)
            return r @ r, jac

        start = np.full(len(grads), 1.0)
        a = minimize(residual, start, jac=True, method="L-BFGS-B", bounds=[(1e-6, None)] * len(grads),
                     options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 500}).x / scale
        alpha = torch.as_tensor(a, dtype=grads.dtype, device=grads.device)
        combined = alpha @ grads
        if self.max_norm and combined.norm() > self.max_norm:
            combined = combined * (self.max_norm / combined.norm())
        return combined, alpha


@register("gradnorm")
class GradNorm(GradientCombination):
    """GradNorm (Chen et al., ICML 2018, Eq. 1–2): learnable task weights w (renormalized to sum to T)
    scale the task gradients; after each step w moves by `lr` down the gradient of
        Σ_t | w_t ‖g_t‖ − mean_k(w_k ‖g_k‖) · r_t^α |,   r_t = (L_t / L_t(0)) / mean_k(L_k / L_k(0)),
    the target held constant. g_t is task t's gradient on all shared parameters (the paper uses the
    last shared layer only: a cheaper approximation of the same quantity)."""

    def __init__(self, n_tasks: int, alpha: float = 1.5, lr: float = 0.025):
        super().__init__(n_tasks)
        self.alpha, self.lr = alpha, lr
        self.register_buffer("task_weights", torch.ones(n_tasks))
        self.register_buffer("initial_losses", torch.full((n_tasks,), float("nan")))  # L_t(0), set at step 1
        self._losses = None

    private_weighted = True  # Eq. 1: L = Σ_t w_t L_t trains every parameter

    def backward(self, losses, shared, epoch=0, extra=None):
        self._losses = split_losses(losses)[1].detach()
        # L_t(0) at the first step, without waiting for the device to test it
        self.initial_losses = torch.where(self.initial_losses.isnan(), self._losses, self.initial_losses)
        return super().backward(losses, shared, epoch, extra)

    def combine(self, grads):
        w = self.task_weights.to(grads.dtype).requires_grad_(True)
        norms = grads.norm(dim=1)
        ratio = self._losses / self.initial_losses.clamp_min(1e-12)
        target = ((w * norms).mean() * (ratio / ratio.mean()) ** self.alpha).detach()
        (step,) = torch.autograd.grad((w * norms - target).abs().sum(), w)
        with torch.no_grad():
            new = (self.task_weights - self.lr * step).clamp_min(1e-3)
            self.task_weights = new * self.n_tasks / new.sum()
        used = w.detach()
        return used @ grads, used
