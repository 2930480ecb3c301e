"""Multi-task models, each registered by name: `build_model("mmoe", features, tasks, **options)`."""

from . import (  # noqa: F401
    csrec,
    funnel,
    mf,
    mmoe,
    mpt_rec,
    ple,
    shared_bottom,
    single_task,
    sparse_sharing,
    stem,
)
from .base import (
    MODELS,
    MultiTaskModel,
    Step,
    StepOutput,
    TaskModel,
    build_model,
    register,
    task_losses,
    trains_on,
)

__all__ = [
    "MODELS",
    "MultiTaskModel",
    "Step",
    "StepOutput",
    "TaskModel",
    "build_model",
    "register",
    "task_losses",
    "trains_on",
]
