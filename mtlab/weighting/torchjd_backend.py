"""Strategies whose arithmetic is TorchJD's (`torchjd.aggregation`, property-tested upstream): mtlab
supplies the task gradients (or only their Gramian), TorchJD the weights or the combined vector.
Where TorchJD gives a weighting of the Gramian, mtlab's Gramian path feeds it without concatenating
the [T, P] matrix; the others see G. TorchJD's conventions hold (UPGrad averages the projected
gradients), so the numbers are TorchJD's on the same matrix.

A TorchJD object is held outside the module tree (its lazily created buffers would not load into a
fresh one); its running state is the strategy's extra state, so a checkpoint resumes it exactly.
"""

from __future__ import annotations

import copy

import torch
from torchjd import aggregation as jd

from .base import GradientCombination, GramianCombination, register
from .gradient_based import PerElementState, no_weights


class TorchJD:
    """Holds a TorchJD weighting or aggregator as `self.backend`, its state in the extra state."""

    state_names: tuple[str, ...] = ()

    def use(self, backend) -> None:
        object.__setattr__(self, "backend", backend)  # not a submodule: see the module docstring

    def get_extra_state(self):
        return copy.deepcopy({name: getattr(self.backend, name) for name in self.state_names})

    def set_extra_state(self, state):
        for name, value in state.items():
            setattr(self.backend, name, value)


class TorchJDGramian(TorchJD, GramianCombination):
    def weigh(self, gramian, losses):
        return self.backend(gramian)


@register("upgrad", "UPGrad")
class UPGrad(TorchJDGramian):
    """UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024, Eq. 7; TorchJD):
    every task gradient g_i is projected onto the dual cone of the rows, {x : G x ≥ 0} (so that it
    conflicts with no task), and the projections are averaged:
        d = (1/T) Σ_i π_{dual cone}(g_i),   each projection solved as a QP on the Gramian (quadprog).
    E.g. g₁ = (−4, 1, 1), g₂ = (6, 1, 1): d = (0.2929, 1.9004, 1.9004), weights (1.1109, 0.7894)
    (TorchJD's own example)."""

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.use(jd.UPGradWeighting())


@register("dualproj", "DualProj")
class DualProj(TorchJDGramian):
    """DualProj (Quinton & Rey, 2024; TorchJD): the mean gradient projected onto the dual cone of the
    task gradients, d = π_{dual cone}((1/T) Σ_t g_t): the closest direction to the mean that
    conflicts with no task. E.g. g₁ = (1, 0), g₂ = (−1, 1): mean (0, ½) conflicts with none → d = (0, ½)."""

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.use(jd.DualProjWeighting())


@register("aligned_mtl", "Aligned-MTL")
class AlignedMTL(TorchJDGramian):
    """Aligned-MTL (Senushkin et al., CVPR 2023, Alg. 1; TorchJD): the task gradients are made
    orthogonal with equal magnitudes by the balance transformation of the Gramian's eigendecomposition
    GGᵀ = VΛVᵀ, B = √σ · V Λ^{-1/2} Vᵀ (σ the smallest eigenvalue, `scale_mode` 'min'; or 'median',
    'rmse'), and d = Gᵀ B w with equal preferences w. E.g. orthogonal g₁ = (2, 0), g₂ = (0, 1): B
    scales them to length 1 each: weights (¼, ½), d = (½, ½)."""

    def __init__(self, n_tasks: int, scale_mode: str = "min"):
        super().__init__(n_tasks)
        if scale_mode not in ("min", "median", "rmse"):
            raise ValueError(f"scale_mode must be 'min', 'median' or 'rmse', got {scale_mode!r}")
        self.use(jd.AlignedMTLWeighting(scale_mode=scale_mode))


@register("gradvac", "GradVac")
class GradVac(TorchJDGramian):
    """GradVac (Wang et al., ICLR 2021, Alg. 2; TorchJD): for each pair (i, j), in random order, with
    φ_ij the cosine of g_i and g_j and φ̂_ij its moving average (φ̂ ← (1 − β) φ̂ + β φ), when φ_ij < φ̂_ij
    g_i is moved toward g_j to reach the target similarity:
        g_i ← g_i + ‖g_i‖ (φ̂ √(1 − φ²) − φ √(1 − φ̂²)) / (‖g_j‖ √(1 − φ̂²)) · g_j,    d = Σ_i g_i.
    Worked out on the Gramian (the weights are coefficients of G's rows). E.g. first step (φ̂ = 0),
    g₁ = (1, 0), g₂ = (−1, 1): φ = −0.707 → g₁ ← g₁ + ½ g₂ = (½, ½), orthogonal to g₂; g₂ ← g₂ + g₁ =
    (0, 1); weights (2, 1.5), d = (½, 1.5)."""

    state_names = ("_phi_t", "_state_key")

    def __init__(self, n_tasks: int, beta: float = 0.5):
        super().__init__(n_tasks)
        self.use(jd.GradVacWeighting(beta=beta))


@register("fairgrad", "FairGrad")
class FairGrad(TorchJDGramian):
    """FairGrad (Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024, Eq. 9; TorchJD):
    α-fair utilities: weights w > 0 solving (GGᵀ w)_t = w_t^{−1/α}, d = Σ_t w_t g_t (α = 1 is
    proportional fairness, Nash-MTL's condition). E.g. α = 1, orthogonal unit g₁, g₂: w = (1, 1)."""

    def __init__(self, n_tasks: int, alpha: float = 1.0):
        super().__init__(n_tasks)
        self.use(jd.FairGradWeighting(alpha=alpha))


class CrossGramian(TorchJD, GramianCombination):
    """MoDo and SDMGrad update their weights on a cross Gramian G₁G₂ᵀ of two independent batches.
    `sampling="single"` (default) uses this batch's GGᵀ, as LibMTL does with one batch a step (the
    papers' convergence guarantee needs the double sampling); `sampling="consecutive"` uses G_k G_{k−1}ᵀ
    with the previous step's batch as the independent one (a fixed set of shared elements is needed)."""

    state_names = ("_state_key",)

    def __init__(self, n_tasks: int, backend, sampling: str):
        super().__init__(n_tasks)
        if sampling not in ("single", "consecutive"):
            raise ValueError(f"sampling must be 'single' or 'consecutive', got {sampling!r}")
        self.sampling = sampling
        self.use(backend)
        self.previous: list[torch.Tensor] | None = None

    def get_extra_state(self):
        return {**super().get_extra_state(), "previous": self.previous}

    def set_extra_state(self, state):
        self.previous = state.pop("previous")
        super().set_extra_state(state)

    def weigh(self, gramian, losses):
        return self.backend(gramian)

    def combine_blocks(self, blocks, losses):
        if self.sampling == "single":
            return super().combine_blocks(blocks, losses)
        if self.previous is not None and [b.shape for b in blocks] != [b.shape for b in self.previous]:
            raise ValueError(
                f"{self.registry_name} with sampling='consecutive' needs the same shared elements every "
                "step; this model declares per-batch ones: use sampling='single'"
            )
        previous = self.previous or blocks
        w = self.backend(sum(b @ p.T for b, p in zip(blocks, previous))).to(blocks[0].dtype)
        self.previous = [b.detach() for b in blocks]
        return [w @ b for b in blocks], w


@register("modo", "MoDo")
class MoDo(CrossGramian):
    """MoDo (Chen, Fernando et al., "Three-Way Trade-Off in Multi-Objective Learning", JMLR 2024, Eq.
    2.9; TorchJD): weights λ on the simplex, one projected step a batch,
        λ ← Π_Δ(λ − γ (G₁G₂ᵀ λ + ρ λ)),   d = Σ_t λ_t g_t.
    E.g. T = 2, λ = (½, ½), GGᵀ = diag(1, 3), γ = 0.1, ρ = 0: λ ← Π_Δ((0.45, 0.35)) = (0.55, 0.45)."""

    state_names = ("_lambda", "_state_key")

    def __init__(self, n_tasks: int, gamma: float = 0.1, rho: float = 0.1, sampling: str = "single"):
        super().__init__(n_tasks, jd.MoDoWeighting(gamma=gamma, rho=rho), sampling)


@register("sdmgrad", "SDMGrad")
class SDMGrad(CrossGramian):
    """SDMGrad (Xiao et al., "Direction-oriented Multi-objective Learning", NeurIPS 2023, Alg. 1;
    TorchJD): weights w on the simplex from `n_iter` projected momentum-SGD steps on
    ½ ‖G(w + λ w̃)‖² (w̃ uniform, Gramian normalized by its mean squared norm), returning
    (w + λ w̃) / (1 + λ): the min-norm direction pulled toward the mean gradient by λ (`lambda_`,
    0.3 as in the authors' experiments). E.g. λ = 0 on orthogonal equal-norm gradients: (½, ½)."""

    state_names = ("_w", "_state_key")

    def __init__(
        self,
        n_tasks: int,
        lambda_: float = 0.3,
        lr: float = 10.0,
        momentum: float = 0.5,
        n_iter: int = 20,
        sampling: str = "single",
    ):
        super().__init__(
            n_tasks, jd.SDMGradWeighting(lr=lr, momentum=momentum, n_iter=n_iter, lambda_=lambda_), sampling
        )


@register("config", "ConFIG")
class ConFIG(TorchJD, GradientCombination):
    """ConFIG (Liu et al., "ConFIG: Towards Conflict-free Training of Physics Informed Neural
    Networks", ICLR 2025, Eq. 2; TorchJD): the direction whose cosine with every unit task gradient
    is equal, d̂ = normalize(U⁺ 1) with U the unit gradients, scaled by the sum of the projections:
        d = (Σ_t g_tᵀ d̂) d̂.
    Not a weighting of G (no weights reported). E.g. g₁ = (1, 0), g₂ = (0, 2): d̂ = (1, 1)/√2,
    d = (3/2, 3/2)."""

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.use(jd.ConFIG())

    def combine(self, grads, losses):
        return self.backend(grads), no_weights(len(grads))


@register("graddrop", "GradDrop")
class GradDrop(TorchJD, GradientCombination):
    """GradDrop (Chen et al., NeurIPS 2020, Eq. 1–3; TorchJD): per shared element, the positive sign
    purity P = ½ (1 + Σ_t g_t / Σ_t |g_t|); with U ~ Uniform(0, 1), keep the positive task gradients
    where P > U and the negative ones elsewhere, d = Σ_t g_t · mask_t. The paper drops at a shared
    activation layer; here it drops on the shared parameters (on the representation with rep_grad).
    Random: no weights reported. E.g. g₁ = (1, 1), g₂ = (1, −1): element 1 has P = 1, kept (2);
    element 2 has P = ½: 1 or −1 with equal chance."""

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.use(jd.GradDrop())

    def combine(self, grads, losses):
        return self.backend(grads), no_weights(len(grads))


@register("excess_mtl", "ExcessMTL")
class ExcessMTL(PerElementState, TorchJD, GradientCombination):
    """ExcessMTL (He et al., "Robust Multi-Task Learning with Excess Risks", ICML 2024, Alg. 1; TorchJD):
    the excess risk of each task estimated by a diagonal second-order step, with h = √(Σ_steps g² + ε)
    per element (AdaGrad's accumulator): r_t = Σ_p g_tp² / h_tp; the weights move by an exponentiated
    step, w ← softmax(log w + η r / r₀) (r₀ the warm-up mean; without warm-up, the first step's r is
    used raw and becomes r₀), d = Σ_t w_t g_t.
    E.g. first step, g₁ = (1, 0), g₂ = (0, 2): h = |g|, r = (1, 2), w = softmax(log ½ + r) = (0.269, 0.731)."""

    state_names = ("_weights", "_sq_grad_sum", "_initial_w", "_warmup_w_sum", "_n_steps", "_state_key")

    def __init__(self, n_tasks: int, robust_step_size: float = 1.0, n_warmup_steps: int = 0):
        super().__init__(n_tasks)
        self.use(jd.ExcessMTLWeighting(robust_step_size=robust_step_size, n_warmup_steps=n_warmup_steps))

    def combine(self, grads, losses):
        self.check_same_elements(grads, self.backend._sq_grad_sum)
        w = self.backend(grads).to(grads.dtype)
        return w @ grads, w
