"""Training: the fit loop, metrics, parameter and FLOP accounting, checkpoints, devices."""

from .checkpoint import load_checkpoint, save_checkpoint
from .device import resolve_device, seed_everything
from .metrics import count_parameters, evaluate, flops_per_sample, predict, task_metrics
from .trainer import FitResult, TrainConfig, fit

__all__ = [
    "FitResult", "TrainConfig", "count_parameters", "evaluate", "fit", "flops_per_sample",
    "load_checkpoint", "predict", "resolve_device", "save_checkpoint", "seed_everything",
    "task_metrics",
]
