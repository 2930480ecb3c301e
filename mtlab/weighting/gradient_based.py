"""Strategies that combine the tasks' gradients on the shared parameters: PCGrad, MGDA, CAGrad,
IMTL-G. They loop over tasks (a handful), never over rows."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from .base import GradientCombination, register

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
