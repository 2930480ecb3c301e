"""MPT-Rec ablations (Figs. 4 and 5) and the t-SNE picture of shared and task-specific
representations (Fig. 6), with a number that measures their separation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.model_selection import cross_val_score

from ..data import MultiTaskData
from ..train import evaluate
from ..train.new_task_protocols import fine_tune, pretrain, pretrain_seeds
from .artifacts import titled
from .profiles import Profile
from .single_run import train_config
from .store import ResultsStore

# (figure, variant) → how the pre-trained model and the prompt head are built
VARIANTS = {
    ("Fig. 4", "MPT-Rec"): ({}, {}),
    ("Fig. 4", "Share"): ({}, {"use": "shared"}),
    ("Fig. 4", "Specific"): ({}, {"use": "specific"}),
    ("Fig. 4", "-GAN"): ({"adversarial": False}, {}),
    ("Fig. 5", "FW"): ({}, {"prompt_weights": "fixed"}),
    ("Fig. 5", "TES"): ({}, {"prompt_weights": "task"}),
    ("Fig. 5", "MPT-Rec (instance)"): ({}, {"prompt_weights": "instance"}),
}


def prompt_ablations(
    data3: MultiTaskData,
    profile: Profile,
    beta_cls: float = 0.1,
    temperature: float = 150.0,
    model_options: dict | None = None,
    results_path=None,
    **train_overrides,
) -> pd.DataFrame:
    """T3 test AUC of every variant of VARIANTS, per seed. Variants that share a pre-trained model
    reuse it (one adversarial and one non-adversarial pre-training per seed, the seeds' pre-trainings
    seed-vectorized). results_path: a CSV every finished seed's rows are appended to; seeds already
    there are not run again."""
    data2 = data3.select_tasks(data3.tasks[:2])
    new = data3.tasks[-1]
    store = ResultsStore(results_path, ["seed"])
    seeds = store.pending((), profile.seeds)
    configs = [train_config(profile, seed, quiet=True, **train_overrides) for seed in seeds]
    bases = {}  # one adversarial and one non-adversarial pre-training of every seed, seed-vectorized
    for pre_options, _ in VARIANTS.values():
        key = tuple(sorted(pre_options.items()))
        if key not in bases:
            options = {"beta_cls": beta_cls, **(model_options or {}), **pre_options}
            bases[key] = [model for model, _ in pretrain_seeds("mpt_rec", data2, configs, **options)] if seeds else []
    for s, (seed, config) in enumerate(zip(seeds, configs)):
        rows = []
        for (figure, variant), (pre_options, head_options) in VARIANTS.items():
            base = bases[tuple(sorted(pre_options.items()))][s]
            tuned, result = fine_tune(base, data3, config, temperature=temperature, **head_options)
            auc = evaluate(tuned, data3.to(result.device).test, data3.tasks)[new]["auc"]
            rows.append({"figure": figure, "variant": variant, "seed": seed, "t3_auc": auc})
        store.add(rows)
    runs = store.frame(seed=profile.seeds)
    return titled(
        "ablations", runs, "MPT-Rec Figs. 4-5: T3 AUC per variant and seed", keys=("figure", "variant", "seed")
    )


@torch.no_grad()
def representations(model, data: MultiTaskData, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shared and task-specific representations of a fixed random sample of `n` test rows.

    Returns (vectors [(1+T)·n, H], kind labels: "shared" or "specific: <task>")."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(data.test), generator=gen)[:n].to(data.device)
    batch, _ = data.test.rows(rows)
    model.eval()
    shared, specific = model.shared_repr(batch), model.specific_repr(batch)
    vectors = torch.cat([shared[None], specific]).flatten(0, 1).cpu().numpy()
    kinds = np.repeat(["shared", *(f"specific: {t}" for t in data.tasks)], len(rows))
    return vectors, kinds


def separation(vectors: np.ndarray, kinds: np.ndarray, seed: int = 0) -> dict[str, float]:
    """How well the representation types separate: silhouette score of the kinds in the original
    space (−1 … 1) and 5-fold accuracy of a linear probe telling shared from task-specific vectors
    (0.5 = indistinguishable, 1 = linearly separable)."""
    is_shared = (kinds == "shared").astype(int)
    probe = LogisticRegression(max_iter=2000)
    accuracy = cross_val_score(probe, vectors, is_shared, cv=5, scoring="balanced_accuracy").mean()
    return {
        "silhouette": float(silhouette_score(vectors, kinds, random_state=seed)),
        "probe_balanced_accuracy": float(accuracy),
    }


def tsne_study(
    data: MultiTaskData,
    profile: Profile,
    models: Sequence[str] = ("mpt_rec", "ple", "stem"),
    n: int = 1000,
    seed: int = 0,
    model_options: dict | None = None,
    **train_overrides,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train each model (first seed of the profile), embed its shared and specific representations of
    the same `n` test rows with t-SNE, and measure their separation.

    Returns (points: model, kind, x, y; scores: model, silhouette, probe_balanced_accuracy)."""
    points, scores = [], []
    config = train_config(profile, profile.seeds[0], quiet=True, **train_overrides)
    for name in models:
        model, result = pretrain(name, data, config, **(model_options or {}).get(name, {}))
        vectors, kinds = representations(model, data.to(result.device), n, seed)
        xy = TSNE(n_components=2, init="pca", perplexity=30, random_state=seed).fit_transform(vectors)
        points.append(pd.DataFrame({"model": name, "kind": kinds, "x": xy[:, 0], "y": xy[:, 1]}))
        scores.append({"model": name, **separation(vectors, kinds, seed)})
    return (
        pd.concat(points, ignore_index=True),
        titled(
            "tsne_separation",
            pd.DataFrame(scores),
            "Fig. 6: separation of shared and specific representations",
            keys=("model",),
        ),
    )
