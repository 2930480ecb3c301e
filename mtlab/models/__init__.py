"""Multi-task models, each registered by name: `build_model("shared_bottom", features, tasks)`."""

from . import shared_bottom, single_task  # noqa: F401  (registers the models)
from .base import MODELS, MultiTaskModel, build_model, register

__all__ = ["MODELS", "MultiTaskModel", "build_model", "register"]
