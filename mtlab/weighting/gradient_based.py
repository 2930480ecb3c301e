"""Strategies that combine the tasks' gradients on the shared parameters, written in mtlab: PCGrad,
MGDA, CAGrad, IMTL-G, IMTL, Nash-MTL, GradNorm, DB-MTL, MoCo, Auto-λ. (The ones TorchJD implements
are in `torchjd_backend`.) They loop over tasks (a handful), never over rows."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn

from .base import (
    GradientCombination,
    GramianCombination,
    OwnAdam,
    register,
    require_positive,
    split_losses,
)

NO_WEIGHTS = float("nan")


def no_weights(n: int) -> torch.Tensor:
    return torch.full((n,), NO_WEIGHTS)


def project_to_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the probability simplex (Duchi et al., ICML 2008, Fig. 1):
    w = max(v − θ, 0) with θ chosen so that Σ w = 1. E.g. [0, 0, 2] → [0, 0, 1];
    [0.6, 0.2] → [0.7, 0.3]."""
    u = v.sort(descending=True).values
    cumulative = u.cumsum(0) - 1
    k = torch.arange(1, len(v) + 1, device=v.device, dtype=v.dtype)
    rho = int((u - cumulative / k > 0).nonzero().max())
    return (v - cumulative[rho] / (rho + 1)).clamp_min(0)


class PerElementState:
    """For strategies that keep a running state per shared element (a moving average of G): the
    shared elements must be the same at every step."""

    per_element_state = True

    def check_same_elements(self, grads: torch.Tensor, state: torch.Tensor | None) -> None:
        if state is not None and state.shape != grads.shape:
            raise ValueError(
                f"{self.registry_name} keeps a running state for each shared element, but the shared elements changed "
                f"from {state.shape[1]} to {grads.shape[1]} between steps: the model declares per-batch shared parts "
                f"(the MF recommender's rows a batch reads, or a representation with rep_grad); use it with a "
                f"strategy without such state (e.g. upgrad, mgda, nash_mtl, famo)"
            )


@register("pcgrad", "PCGrad")
class PCGrad(GradientCombination):
    """PCGrad (Yu et al., NeurIPS 2020, Alg. 1): each task gradient g_i, against every other task j in
    random order, loses its component along g_j when they conflict (g_i · g_j < 0):
        g_i ← g_i − (g_i · g_j / ‖g_j‖²) g_j;    g = Σ_i g_i.
    E.g. g₁ = (1, 0), g₂ = (−1, 1): g₁ → (0.5, 0.5), g₂ → (0, 1), g = (0.5, 1.5).
    (TorchJD's PCGrad agrees; ours also reports no weights, as the projections depend on the order.)"""

    def combine(self, grads, losses):
        projected = grads.clone()
        for i in range(len(grads)):
            for j in torch.randperm(len(grads)).tolist():
                if j == i:
                    continue
                dot = projected[i] @ grads[j]
                if dot < 0:
                    projected[i] -= dot / grads[j].square().sum().clamp_min(1e-20) * grads[j]
        return projected.sum(0), no_weights(len(grads))


def min_norm_weights(gram: torch.Tensor) -> torch.Tensor:
    """The weights α on the simplex minimizing ‖Σ α_t g_t‖² = αᵀ(GGᵀ)α (Sener & Koltun, NeurIPS 2018),
    from the Gramian: their closed form for two tasks (Alg. 1); beyond, the quadratic program on the
    simplex, solved by SLSQP (T is a handful, so this is cheaper than their Frank-Wolfe loop and more
    exact: TorchJD's MGDA runs Frank-Wolfe to a tolerance of 1e-3)."""
    if len(gram) == 2:
        diff = gram[0, 0] - 2 * gram[0, 1] + gram[1, 1]
        a = ((gram[1, 1] - gram[0, 1]) / diff).clamp(0, 1) if diff > 0 else gram.new_tensor(0.5)
        return torch.stack([a, 1 - a])
    g = gram.double().cpu().numpy()
    return torch.as_tensor(simplex_minimize(lambda w: w @ g @ w, len(gram)), dtype=gram.dtype, device=gram.device)


def simplex_minimize(objective, n: int) -> np.ndarray:
    """argmin of `objective` over the probability simplex in R^n (SLSQP from the uniform point)."""
    result = minimize(
        objective,
        np.full(n, 1.0 / n),
        bounds=[(0, 1)] * n,
        method="SLSQP",
        constraints={"type": "eq", "fun": lambda w: w.sum() - 1},
        options={"ftol": 1e-12},
    )
    return np.clip(result.x, 0, 1) / np.clip(result.x, 0, 1).sum()


@register("mgda", "MGDA")
class MGDA(GramianCombination):
    """MGDA (Sener & Koltun, NeurIPS 2018): the min-norm convex combination of the task gradients.
    `normalize`: 'none' (default) or 'l2' (each task gradient scaled to unit length first; the
    weights reported are then those of the raw gradients, α_t / ‖g_t‖).
    E.g. g₁ = (1, 0), g₂ = (0, 1): α = (½, ½), d = (½, ½)."""

    def __init__(self, n_tasks: int, normalize: str = "none"):
        super().__init__(n_tasks)
        if normalize not in ("none", "l2"):
            raise ValueError(f"normalize must be 'none' or 'l2', got {normalize!r}")
        self.normalize = normalize

    def weigh(self, gramian, losses):
        if self.normalize == "none":
            return min_norm_weights(gramian)
        norms = gramian.diagonal().clamp_min(1e-40).sqrt()
        return min_norm_weights(gramian / torch.outer(norms, norms)) / norms


@register("cagrad", "CAGrad")
class CAGrad(GramianCombination):
    """CAGrad (Liu et al., NeurIPS 2021, Alg. 1): with g₀ the mean gradient and φ = c²‖g₀‖², find w on
    the simplex minimizing g_wᵀg₀ + √φ ‖g_w‖ (g_w = Σ w_t g_t), then d = g₀ + √φ / ‖g_w‖ · g_w, divided
    by (1 + c²) when `rescale`. c = 0 gives the mean gradient. Solved on the T×T Gramian (SLSQP, as in
    the authors' code). The weights reported are d's: (1/T + √φ/‖g_w‖ · w_t) / (1 + c²)."""

    def __init__(self, n_tasks: int, c: float = 0.4, rescale: bool = True):
        super().__init__(n_tasks)
        self.c, self.rescale = c, rescale

    def weigh(self, gramian, losses):
        n = len(gramian)
        if self.c == 0:
            return gramian.new_full((n,), 1.0 / n)
        gram = gramian.double().cpu().numpy()
        g0_gram = gram.mean(1)  # g_tᵀ g₀
        phi_sqrt = self.c * np.sqrt(max(gram.mean(), 1e-20))  # c ‖g₀‖

        def objective(w):
            return w @ g0_gram + phi_sqrt * np.sqrt(max(w @ gram @ w, 1e-20))

        w = simplex_minimize(objective, n)
        weights = 1.0 / n + phi_sqrt / np.sqrt(max(w @ gram @ w, 1e-20)) * w
        weights = weights / (1 + self.c**2) if self.rescale else weights
        return torch.as_tensor(weights, dtype=gramian.dtype, device=gramian.device)


def imtl_g_weights(gramian: torch.Tensor) -> torch.Tensor:
    """IMTL-G (Liu et al., ICLR 2021, Eq. 5–6) from the Gramian: α such that g = Σ α_t g_t has equal
    projections on every task's unit gradient u_t = g_t / ‖g_t‖:
        D = [g₁ − g_t]_{t≥2},  U = [u₁ − u_t]_{t≥2},  α_{2..T} = g₁ Uᵀ (D Uᵀ)⁻¹,  α₁ = 1 − Σ α_{2..T}.
    With A_ij = g_i · u_j = (GGᵀ)_ij / ‖g_j‖: (g₁Uᵀ)_j = A₁₁ − A₁ⱼ, (DUᵀ)_ij = A₁₁ − A₁ⱼ − A_i1 + A_ij."""
    a = gramian / gramian.diagonal().clamp_min(1e-40).sqrt()[None, :]
    g1_u = a[0, :1] - a[0, 1:]
    d_u = g1_u[None, :] - a[1:, :1] + a[1:, 1:]
    rest = g1_u[None, :] @ torch.linalg.pinv(d_u)
    return torch.cat([1 - rest.sum(1), rest[0]])


@register("imtl_g", "IMTL-G")
class IMTLG(GramianCombination):
    """IMTL-G (Liu et al., ICLR 2021, Eq. 5–6), see `imtl_g_weights`.
    E.g. g₁ = (1, 0), g₂ = (0, 2): α = (⅔, ⅓), g = (⅔, ⅔), equal projections ⅔ on both unit vectors."""

    def weigh(self, gramian, losses):
        return imtl_g_weights(gramian)


@register("imtl", "IMTL")
class IMTL(GramianCombination):
    """IMTL (Liu et al., ICLR 2021, §3.3), the hybrid: IMTL-L learns a scale s_t per task on the
    losses, L̃_t = e^{s_t} L_t − s_t (Eq. 3; s_t is trained with the model, initialized at 0, and
    makes the scaled losses equal: ∂L̃_t/∂s_t = e^{s_t} L_t − 1), and IMTL-G (Eq. 5–6) combines the
    gradients of the scaled losses on the shared parameters. Task-specific parameters get ∇L̃_t.
    E.g. s = (0, ln 2), g₁ = (1, 0), g₂ = (0, 1): scaled gradients (1, 0) and (0, 2), IMTL-G α = (⅔, ⅓)."""

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.loss_scale = nn.Parameter(torch.zeros(n_tasks))

    def combined_losses(self, losses):
        per_task, _ = split_losses(losses)
        return [self.loss_scale[t].exp() * loss - self.loss_scale[t] for t, loss in enumerate(per_task)]

    def weigh(self, gramian, losses):
        return imtl_g_weights(gramian)


@register("nash_mtl", "Nash-MTL")
class NashMTL(GramianCombination):
    """Nash-MTL (Navon et al., ICML 2022, Eq. 4): the bargaining solution α > 0 with
    (G Gᵀ α)_t = 1 / α_t for every task, combined gradient Σ α_t g_t. Solved on the T×T Gramian
    exactly, by Newton's method (`nash_solution`; the authors, and TorchJD after them, use a
    sequence of convex programs with cvxpy, which mtlab does not depend on).
    E.g. orthogonal g₁ = (1, 0), g₂ = (0, 2): α = (1, ½)."""

    private_weighted = True  # the authors' code steps on Σ_t α_t L_t: task-specific parameters get α_t g_t

    def __init__(self, n_tasks: int, max_norm: float = 0.0):
        super().__init__(n_tasks)
        self.max_norm = max_norm  # clip the combined gradient's norm (0 = off), as in the authors' code
        self.register_buffer("start", torch.ones(n_tasks, dtype=torch.float64))

    def weigh(self, gramian, losses):
        gram = gramian.double().cpu().numpy()
        scale = np.sqrt(max(np.abs(gram).max(), 1e-20))  # solve for unit-scale gradients, then rescale
        start = self.start.numpy() if len(self.start) == len(gram) else np.ones(len(gram))
        unit = nash_solution(gram / scale**2, start)
        self.start = torch.as_tensor(unit, dtype=torch.float64)  # the next step starts here (a buffer: checkpointed)
        a = unit / scale
        norm = np.sqrt(max(a @ gram @ a, 0.0))
        if self.max_norm and norm > self.max_norm:
            a = a * (self.max_norm / norm)
        return torch.as_tensor(a, dtype=gramian.dtype, device=gramian.device)


def nash_solution(gram: np.ndarray, start: np.ndarray, tol: float = 1e-12, max_steps: int = 100) -> np.ndarray:
    """α > 0 with (GGᵀα)_t = 1/α_t: the minimizer of the strictly convex φ(α) = ½ αᵀGα − Σ_t log α_t
    (its gradient is Gα − 1/α, its Hessian G + diag(1/α²) is positive definite), by Newton's method
    with a backtracking line search that keeps α > 0 and lowers φ. Converges quadratically in a few
    T×T solves, from the last step's solution; L-BFGS-B, used before, took tens of ms a step on
    ill-conditioned Gramians (10× an EW epoch on Census-Income)."""

    def phi(a):
        return 0.5 * a @ gram @ a - np.log(a).sum()

    a = np.clip(start, 1e-6, None)
    for _ in range(max_steps):
        residual = gram @ a - 1 / a
        if np.abs(residual * a).max() < tol:  # relative: (Gα)_t α_t = 1 at the solution
            break
        step = np.linalg.solve(gram + np.diag(1 / a**2), residual)
        t, value, slope = 1.0, phi(a), residual @ step
        while np.any(a - t * step <= 0) or phi(a - t * step) > value - 1e-4 * t * slope:
            t *= 0.5
            if t < 1e-12:
                return a
        a = a - t * step
    return a


@register("gradnorm", "GradNorm")
class GradNorm(GramianCombination):
    """GradNorm (Chen et al., ICML 2018, Eq. 1–2): learnable task weights w (renormalized to sum to T)
    scale the task gradients; after each step w moves by `lr` down the gradient of
        Σ_t | w_t ‖g_t‖ − mean_k(w_k ‖g_k‖) · r_t^α |,   r_t = (L_t / L_t(0)) / mean_k(L_k / L_k(0)),
    the target held constant. g_t is task t's gradient on all shared parameters (the paper uses the
    last shared layer only: a cheaper approximation of the same quantity); ‖g_t‖ = √(GGᵀ)_tt.
    Eq. 1, L = Σ_t w_t L_t, trains every parameter: the task-specific ones get w_t ∇L_t."""

    per_task_state = True

    def __init__(self, n_tasks: int, alpha: float = 1.5, lr: float = 0.025):
        super().__init__(n_tasks)
        self.alpha, self.lr = alpha, lr
        self.register_buffer("task_weights", torch.ones(n_tasks))
        self.register_buffer("initial_losses", torch.full((n_tasks,), float("nan")))  # L_t(0), set at step 1

    def private_scale(self, losses):
        # L_t(0) at the first step, without waiting for the device to test it
        self.initial_losses = torch.where(self.initial_losses.isnan(), losses, self.initial_losses)
        return self.task_weights.clone()

    def weigh(self, gramian, losses):
        w = self.task_weights.to(gramian.dtype).requires_grad_(True)
        norms = gramian.diagonal().clamp_min(0).sqrt()
        ratio = losses / self.initial_losses.clamp_min(1e-12)
        target = ((w * norms).mean() * (ratio / ratio.mean()) ** self.alpha).detach()
        with torch.enable_grad():
            (step,) = torch.autograd.grad((w * norms - target).abs().sum(), w)
        with torch.no_grad():
            new = (self.task_weights - self.lr * step).clamp_min(1e-3)
            self.task_weights = new * self.n_tasks / new.sum()
        return w.detach()


@register("db_mtl", "DB-MTL")
class DBMTL(PerElementState, GradientCombination):
    """DB-MTL (Lin et al., "Dual-Balancing for Multi-Task Learning", arXiv 2308.12029, 2023, Alg. 1):
    loss-scale balancing trains on log L_t (∇ log L_t = g_t / L_t); gradient-magnitude balancing keeps
    a moving average ĝ_t ← β_k ĝ_t + (1 − β_k) ∇log L_t with β_k = β / k^σ (step k ≥ 1; as in the
    authors' code, ĝ_t starts at 0), and rescales every task to the largest norm:
        d = Σ_t (max_k ‖ĝ_k‖ / ‖ĝ_t‖) ĝ_t.
    Task-specific parameters get ∇ log L_t = g_t / L_t. The weights reported are the balancing
    factors max_k ‖ĝ_k‖ / ‖ĝ_t‖. E.g. step 1, β = 0.9: ĝ = 0.1 · ∇log L; with g₁ = (2, 0), g₂ = (0, 1), L = (1, 1):
    ĝ = (0.2, 0), (0, 0.1) → d = (0.2, 0.2)."""

    def __init__(self, n_tasks: int, beta: float = 0.9, beta_sigma: float = 0.5):
        super().__init__(n_tasks)
        self.beta, self.beta_sigma = beta, beta_sigma
        self.average: torch.Tensor | None = None  # ĝ [T, P], in the extra state
        self.steps = 0

    def get_extra_state(self):
        return {"average": self.average, "steps": self.steps}

    def set_extra_state(self, state):
        self.average, self.steps = state["average"], state["steps"]

    def private_scale(self, losses):
        require_positive("db_mtl", losses)
        return 1 / losses.clamp_min(1e-8)

    def combine(self, grads, losses):
        self.check_same_elements(grads, self.average)
        log_grads = grads / losses.clamp_min(1e-8).to(grads.dtype)[:, None]
        self.steps += 1
        beta = self.beta / self.steps**self.beta_sigma
        previous = torch.zeros_like(log_grads) if self.average is None else self.average.to(log_grads)
        self.average = beta * previous + (1 - beta) * log_grads
        norms = self.average.norm(dim=1)
        alpha = norms.max() / norms.clamp_min(1e-8)
        return alpha @ self.average, alpha


@register("moco", "MoCo")
class MoCo(PerElementState, GradientCombination):
    """MoCo (Fernando et al., ICLR 2023, Alg. 1): tracked gradients Y and weights λ on the simplex,
        y_t ← y_t − β_k (y_t − g_t),   λ ← Π_Δ(λ − γ_k (Y Yᵀ + ρI) λ),   d = Σ_t λ_t y_t,
    β_k = β / k^σβ, γ_k = γ / k^σγ (step k ≥ 1), Y starting at 0 and λ uniform. With `scale_to_loss`
    (the authors' code, and LibMTL's) each g_t is first rescaled to length L_t. The weights reported
    are λ (of the tracked gradients). E.g. T = 2, step 1, β = 0.5, γ = 0.1, ρ = 0, no scaling,
    g₁ = (1, 0), g₂ = (0, 1): Y = ½ I, λ = Π_Δ(½ − 0.1 · ¼ · ½) = (½, ½), d = (¼, ¼)."""

    per_task_state = True

    def __init__(
        self,
        n_tasks: int,
        beta: float = 0.5,
        beta_sigma: float = 0.5,
        gamma: float = 0.1,
        gamma_sigma: float = 0.5,
        rho: float = 0.0,
        scale_to_loss: bool = True,
    ):
        super().__init__(n_tasks)
        self.beta, self.beta_sigma, self.gamma, self.gamma_sigma, self.rho = beta, beta_sigma, gamma, gamma_sigma, rho
        self.scale_to_loss = scale_to_loss
        self.register_buffer("lambdas", torch.full((n_tasks,), 1.0 / n_tasks))
        self.tracked: torch.Tensor | None = None  # Y [T, P], in the extra state
        self.steps = 0

    def get_extra_state(self):
        return {"tracked": self.tracked, "steps": self.steps}

    def set_extra_state(self, state):
        self.tracked, self.steps = state["tracked"], state["steps"]

    def combine(self, grads, losses):
        self.check_same_elements(grads, self.tracked)
        if self.scale_to_loss:
            require_positive("moco (scale_to_loss=True)", losses)
            grads = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-8) * losses.to(grads.dtype)[:, None]
        self.steps += 1
        beta = self.beta / self.steps**self.beta_sigma
        gamma = self.gamma / self.steps**self.gamma_sigma
        tracked = torch.zeros_like(grads) if self.tracked is None else self.tracked.to(grads)
        self.tracked = tracked - beta * (tracked - grads)
        lam = self.lambdas.to(grads.dtype)
        gram = self.tracked @ self.tracked.T + self.rho * torch.eye(len(grads), dtype=grads.dtype, device=grads.device)
        self.lambdas = project_to_simplex(lam - gamma * gram @ lam).to(self.lambdas)
        return self.lambdas.to(grads.dtype) @ self.tracked, self.lambdas.clone()


@register("auto_lambda", "Auto-λ")
class AutoLambda(PerElementState, GradientCombination):
    """Auto-λ (Liu, James, Davison & Johns, TMLR 2022, Eq. 3–5), first-order and without a held-out
    split: task weights λ, trained on Σ_t λ_t L_t, are meta-learned so that one step on the weighted
    loss lowers the loss of the primary tasks (here: all, each weighted 1) on fresh data. With the
    finite-difference idea of its Eq. 5 taken to first order,
        ∂L_val(θ − η ∇Σλ_t L_t) / ∂λ_t ≈ −η ⟨∇L_val(θ'), g_t⟩,
    and the next batch as the fresh data (it is drawn independently of the one the step used), every
    step k updates λ with the previous step's task gradients G_{k−1} and this step's total gradient
    on the shared parameters: meta-gradient −G_{k−1} Σ_t g_t^{(k)} (the sign and Adam's
    normalization, lr `meta_lr`, make η irrelevant), then λ ← max(λ, `floor`).
    The paper differentiates through a virtual SGD step on a validation batch (second order, one more
    forward and backward per step) over all parameters; this sees the shared ones only, the interface
    every strategy has. λ starts at `init` (the paper: 0.1 for its dense tasks; 1 here starts at EW).
    `floor` > 0 (the paper: 0) keeps every task's gradient measurable for the next update."""

    per_task_state = True

    def __init__(self, n_tasks: int, init: float = 1.0, meta_lr: float = 1e-3, floor: float = 1e-4):
        super().__init__(n_tasks)
        if not floor > 0:
            raise ValueError(f"floor must be positive, got {floor!r}")
        self.floor = floor
        self.meta = OwnAdam(torch.full((n_tasks,), float(init)), lr=meta_lr)
        self.previous: torch.Tensor | None = None  # G_{k−1}

    def get_extra_state(self):
        return {"previous": self.previous, "meta": self.meta.state_dict()}

    def set_extra_state(self, state):
        self.previous = state["previous"]
        self.meta.load_state_dict(state["meta"])

    @property
    def lambdas(self) -> torch.Tensor:
        return self.meta.value.detach()

    def private_scale(self, losses):
        return self.meta.on(losses.device).value.detach().clone()

    def combine(self, grads, losses):
        self.check_same_elements(grads, self.previous)
        used = self.lambdas.clone().to(grads.dtype)
        if self.previous is not None:
            self.meta.step(-(self.previous.to(grads) @ grads.sum(0)))
            with torch.no_grad():
                self.meta.value.clamp_(min=self.floor)
        self.previous = grads.detach()
        return used @ grads, used
