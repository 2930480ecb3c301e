"""Train and evaluate one model on one dataset: the unit behind the command line and every table."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ..data import MultiTaskData, load_dataset
from ..models import build_model
from ..train import TrainConfig, count_parameters, evaluate, fit, flops_per_sample, seed_everything
from ..train.pruning import find_task_masks
from .profiles import Profile, get_profile


def train_config(profile: Profile, seed: int, **overrides) -> TrainConfig:
    base = dict(epochs=profile.epochs, patience=profile.patience, batch_size=profile.batch_size,
                seed=seed, device=profile.device)
    return TrainConfig(**{**base, **overrides})


def train_one(
    model: str,
    data: MultiTaskData,
    profile: Profile,
    seed: int = 0,
    model_options: dict | None = None,
    checkpoint=None,
    resume: bool = False,
    on_epoch=None,
    **train_overrides,
) -> dict:
    """Build `model` (seeded), fit it, evaluate it. Returns the JSON-shaped result of `mtlab train`
    plus the epoch history (as a DataFrame, under "history")."""
    seed_everything(seed)
    net = build_model(model, data.features, data.tasks, **(model_options or {}))
    config = train_config(profile, seed, **train_overrides)
    start = time.perf_counter()
    pruning = None
    if hasattr(net, "masked_layers") and not resume:  # Sparse Sharing, CSRec: find the task subnets first
        pruning = find_task_masks(net, data, config)
    prepare_seconds = time.perf_counter() - start
    result = fit(net, data, config, checkpoint=checkpoint, resume=resume, on_epoch=on_epoch)
    device_data = data.to(result.device)
    probe = device_data.train.rows(torch.arange(min(256, len(data.train)), device=result.device))[0]
    return {
        "model": model,
        "dataset": data.name,
        "tasks": list(data.tasks),
        "seed": seed,
        "test": evaluate(net, device_data.test, data.tasks, config.eval_batch_size),
        "valid": evaluate(net, device_data.valid, data.tasks, config.eval_batch_size),
        "trainable_params": count_parameters(net),
        "flops_per_sample": flops_per_sample(net, probe),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "seconds": result.seconds + prepare_seconds,
        "device": result.device,
        "history": result.history,
        "pruning": pruning,
    }


def load_for_profile(dataset: str, tasks: Sequence[str] | None, profile: Profile, seed: int = 0,
                     **options) -> MultiTaskData:
    """Load a dataset with the profile's subsampling."""
    return load_dataset(dataset, tasks=tasks, subsample=profile.subsample, seed=seed, **options)


__all__ = ["get_profile", "load_for_profile", "train_config", "train_one"]
