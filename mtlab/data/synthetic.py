"""Synthetic multi-task data with a controllable task correlation, after the MMoE paper (Ma et al.,
KDD 2018, Sec. 3.2).

Each task t has a weight vector w_t; the cosine similarity between any two of them is `rho`:
    two tasks:   w_1 = c·u_1,  w_2 = c·(rho·u_1 + sqrt(1 - rho²)·u_2)   (u_1 ⊥ u_2 unit vectors)
    more tasks:  w_t = c·(sqrt(rho)·u_0 + sqrt(1 - rho)·u_t)            (needs rho ≥ 0)
The regression target is  y_t = w_tᵀx + Σ_i sin(α_i·w_tᵀx + β_i) + ε,  x ~ N(0, I), and the binary
label is y_t above its median, so every task has a 50 % positive rate.

Besides the numeric input x, `n_cat` categorical columns are made by binning the first coordinates
of x into quantiles, so the embedding path of the models is exercised as on real data.
"""

from __future__ import annotations

import numpy as np
import torch

from .tabular import DataError, FeatureSpec, MultiTaskData, TabularSplit


def task_weights(n_tasks: int, dim: int, rho: float, scale: float, rng: np.random.Generator):
    """[T, dim] weight vectors with pairwise cosine similarity `rho`."""
    if n_tasks == 2:
        if not -1 <= rho <= 1:
            raise DataError(f"rho must be in [-1, 1], got {rho}")
    elif not 0 <= rho <= 1:
        raise DataError(f"with {n_tasks} tasks rho must be in [0, 1], got {rho}")
    basis, _ = np.linalg.qr(rng.standard_normal((dim, n_tasks + 1)))  # orthonormal columns
    u = basis.T
    if n_tasks == 2:
        w = np.stack([u[0], rho * u[0] + np.sqrt(1 - rho**2) * u[1]])
    else:
        w = np.sqrt(rho) * u[0] + np.sqrt(1 - rho) * u[1:]
    return scale * w


def make_synthetic(
    n_samples: int = 20_000,
    n_tasks: int = 2,
    rho: float = 0.5,
    dim: int = 32,
    n_cat: int = 4,
    n_bins: int = 8,
    n_sin: int = 10,
    scale: float = 1.0,
    noise: float = 0.01,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> MultiTaskData:
    """Generate a MultiTaskData with tasks 't1' … 'tT' whose weight vectors have cosine `rho`."""
    if n_tasks < 1:
        raise DataError(f"n_tasks must be at least 1, got {n_tasks}")
    if not 0 <= n_cat <= dim:
        raise DataError(f"n_cat must be in [0, dim={dim}], got {n_cat}")
    if n_tasks == 1:
        rho = 1.0
    rng = np.random.default_rng(seed)
    w = task_weights(n_tasks, dim, rho, scale, rng)
    alpha, beta = rng.standard_normal(n_sin), rng.standard_normal(n_sin)
    x = rng.standard_normal((n_samples, dim))
    proj = x @ w.T  # [N, T]
    y = proj + np.sin(proj[..., None] * alpha + beta).sum(-1) + noise * rng.standard_normal(proj.shape)
    labels = (y > np.median(y, axis=0)).astype(np.float32)

    edges = np.quantile(x[:, :n_cat], np.linspace(0, 1, n_bins + 1)[1:-1], axis=0)  # [bins-1, C]
    cat = np.stack([np.searchsorted(edges[:, j], x[:, j]) for j in range(n_cat)], axis=1)
    cat = cat.reshape(n_samples, n_cat).astype(np.int64)

    order = rng.permutation(n_samples)
    n_valid, n_test = int(n_samples * valid_fraction), int(n_samples * test_fraction)
    parts = np.split(order, [n_samples - n_valid - n_test, n_samples - n_test])

    def split(idx: np.ndarray) -> TabularSplit:
        idx = np.sort(idx)
        return TabularSplit(
            torch.from_numpy(cat[idx]), torch.from_numpy(x[idx].astype(np.float32)), torch.from_numpy(labels[idx])
        )

    features = FeatureSpec(
        cat_names=tuple(f"bin{j}" for j in range(n_cat)),
        cat_cardinalities=(n_bins,) * n_cat,
        num_names=tuple(f"x{j}" for j in range(dim)),
    )
    return MultiTaskData(
        name=f"synthetic(rho={rho})",
        tasks=tuple(f"t{t + 1}" for t in range(n_tasks)),
        features=features,
        train=split(parts[0]),
        valid=split(parts[1]),
        test=split(parts[2]),
        source=f"mtlab.data.synthetic seed={seed}",
    )
