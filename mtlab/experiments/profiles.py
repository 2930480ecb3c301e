"""Run profiles: `quick` runs every notebook on 2 CPU cores in minutes; `full` is the papers' setup."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..train.device import resolve_device


@dataclass(frozen=True)
class RecSettings:
    """The recommender's training settings in a profile (every interaction is used in both)."""

    epochs: int
    patience: int  # on validation NDCG@40
    batch_size: int = 2048
    lr: float = 5e-3
    dim: int = 64


@dataclass(frozen=True)
class Profile:
    name: str
    subsample: float | None  # fraction of rows of every split; None = all
    epochs: int
    patience: int
    batch_size: int
    seeds: tuple[int, ...]
    synthetic_samples: int  # rows generated for synthetic studies (not subsampled)
    rec: RecSettings = RecSettings(epochs=10, patience=5)
    device: str = "auto"


PROFILES = {
    # quick recommenders: 6 epochs (10 until the gradient lab joined CI; the three PMTRec notebooks then
    # took 13 of CI's 30 minutes)
    "quick": Profile(
        "quick",
        subsample=0.1,
        epochs=4,
        patience=2,
        batch_size=512,
        seeds=(0, 1),
        synthetic_samples=6_000,
        rec=RecSettings(epochs=6, patience=3),
    ),
    # The MPT-Rec release's Census-Income setup: batch 256, up to 30 epochs, patience 5, 5 seeds.
    "full": Profile(
        "full",
        subsample=None,
        epochs=30,
        patience=5,
        batch_size=256,
        seeds=(0, 1, 2, 3, 4),
        synthetic_samples=20_000,
        rec=RecSettings(epochs=100, patience=8),
    ),
}


def get_profile(name: str = "quick", seeds=None, device: str = "auto", subsample=None) -> Profile:
    """The named profile with the notebook's overrides applied; bad values get a clear error."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; allowed values: {', '.join(PROFILES)}")
    profile = PROFILES[name]
    resolve_device(device)  # fails early, naming the allowed values
    if seeds is not None:
        seeds = (seeds,) if isinstance(seeds, int) else tuple(seeds)
        if not seeds or not all(isinstance(s, int) for s in seeds):
            raise ValueError(f"seeds must be an int or a non-empty list of ints, got {seeds!r}")
        profile = replace(profile, seeds=seeds)
    if subsample is not None:
        if not 0 < subsample <= 1:
            raise ValueError(f"subsample must be a fraction in (0, 1] or None, got {subsample!r}")
        profile = replace(profile, subsample=None if subsample == 1 else subsample)
    return replace(profile, device=device)
