"""Training: the one fit loop, evaluators, metrics, parameter and FLOP accounting, checkpoints, devices."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .device import resolve_device, seed_everything
from .evaluation import RankingEvaluator, TabularEvaluator, evaluator_for
from .metrics import count_parameters, evaluate, flops_per_sample, predict, task_metrics
from .pruning import find_task_masks
from .trainer import DivergenceError, FitResult, TrainConfig, fit

# A model's preparation phase by the name it declares (`TaskModel.preparation`): run by `fit` first.
PREPARATIONS = {"subnet_search": find_task_masks}

__all__ = [
    "PREPARATIONS",
    "TabularEvaluator",
    "CheckpointError",
    "DivergenceError",
    "FitResult",
    "RankingEvaluator",
    "TrainConfig",
    "count_parameters",
    "evaluate",
    "evaluator_for",
    "find_task_masks",
    "fit",
    "flops_per_sample",
    "load_checkpoint",
    "predict",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
    "task_metrics",
]
