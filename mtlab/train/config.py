"""What every training path shares: the settings (`TrainConfig`), the result (`FitResult`), the history
row's schema, the divergence checks and their one message, and Adam's parameter groups."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd
import torch

from ..weighting import STRATEGIES
from ..weighting.base import MAX_GRADIENT_NORM, NonFiniteGradients


class DivergenceError(ValueError):
    """Training produced a non-finite loss, gradient or metric, or a loss that exploded; the message
    says where and what to try."""


EXPLODED = 100.0
"""A task's mean training loss in an epoch above EXPLODED × max(1, |its loss on the first training
batch|) stops the run as diverged. The first batch's loss is the model at initialization (about
ln 2 ≈ 0.69 for a binary task): a loss a hundred times that is a model that no longer learns, even
while every number stays finite (e.g. BCE of 4·10⁶ at --lr 1)."""


def diverged(run: str, epoch: int, what: str, config: TrainConfig) -> DivergenceError:
    """The one divergence message of every fit loop and strategy: which run, which epoch, what was seen,
    and a learning rate to try."""
    return DivergenceError(
        f"training {run}diverged in epoch {epoch}: {what}; try a lower learning rate "
        f"(now {config.lr:g}), e.g. --lr {config.lr / 10:g}"
    )


@dataclass
class TrainConfig:
    """Training hyperparameters of every model family (defaults: the MPT-Rec release's
    Census-Income setup; the recommendation profiles set their own, see experiments.profiles)."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    l2_embedding: float = 0.0  # L2 on embedding tables (Adam weight decay)
    l2_dense: float = 0.0  # L2 on every other parameter
    task_weights: Sequence[float] | None = None  # per-task loss weights; None = all 1
    patience: int = 5  # epochs without a better validation `monitor` before stopping; 0 = never stop
    weighting: str = "ew"  # the multi-task strategy of mtlab.weighting
    weighting_options: dict = field(default_factory=dict)
    monitor: str | None = None  # the validation metric early stopping watches; None = the evaluator's default
    restore_best: bool = True  # end with the weights of the best validation epoch (else the last)
    rep_grad: bool = False  # combine task gradients on the shared representation (models with one)
    diagnostics: int = 1  # steps an epoch at which task gradients are measured (train.diagnostics); 0 = off
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 65536
    quiet: bool = False
    distributed: bool = False  # one of the processes torchrun started (mtlab.train.distributed)

    def __post_init__(self):
        if self.weighting is None:  # the old spelling of the plain (weighted) sum
            self.weighting = "ew"
        self.weighting_options = dict(self.weighting_options or {})
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"patience must be an integer of at least 0 (0 = never stop), got {self.patience!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("l2_embedding", "l2_dense"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)!r}")
        if self.weighting not in STRATEGIES:
            raise ValueError(f"unknown weighting {self.weighting!r}; available: {', '.join(STRATEGIES)}")
        if isinstance(self.diagnostics, bool) or not isinstance(self.diagnostics, int) or self.diagnostics < 0:
            raise ValueError(
                f"diagnostics must be an integer of at least 0 (measured steps an epoch; 0 = off), "
                f"got {self.diagnostics!r}"
            )

    def identity(self) -> dict:
        """The settings that change the steps taken: a checkpoint is resumed only under the same ones.
        `epochs` and `patience` may change (train a finished run longer); so may where and how quietly
        it runs. (MPT-Rec's reversal schedule follows the planned epochs: extend it knowingly.)"""
        ignored = ("quiet", "device", "eval_batch_size", "epochs", "patience", "diagnostics", "distributed")
        return {k: v for k, v in asdict(self).items() if k not in ignored}


@dataclass
class FitResult:
    model: torch.nn.Module  # with the best validation weights restored
    history: pd.DataFrame  # one row per epoch (see `history_row`)
    best_epoch: int
    epochs: int  # epochs actually run
    seconds: float  # training time (all sessions, if resumed; preparation included)
    device: str
    strategy: torch.nn.Module | None = None  # the weighting strategy, in its final state
    preparation: pd.DataFrame | None = None  # the log of the model's preparation phase (subnet search)
    monitor: str = ""  # the history column early stopping watched


def optimizer_for(model: torch.nn.Module, config: TrainConfig, strategy=None) -> torch.optim.Adam:
    """Adam with separate L2 (coupled weight decay) for embedding tables and dense parameters; a
    weighting strategy's own parameters (UW's log-variances) train without decay."""
    emb, dense = [], []
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (emb if isinstance(module, torch.nn.Embedding) else dense).append(p)
    groups = [
        {"params": emb, "weight_decay": config.l2_embedding},
        {"params": dense, "weight_decay": config.l2_dense},
        {"params": list(strategy.parameters()) if strategy is not None else [], "weight_decay": 0.0},
    ]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=config.lr, fused=fused_on(model))


def fused_on(model: torch.nn.Module) -> bool | None:
    """Adam's fused kernel on CUDA (one launch per step instead of several: these models' steps are
    launch-bound on a GPU); None, torch's own choice, elsewhere."""
    return True if next(model.parameters()).is_cuda else None


def history_row(epoch: int, train_losses: list[float], weights: list[float], valid: dict, tasks) -> dict:
    """One schema for every family: epoch, train_loss (sum), train_loss_<task>, weight_<task> (the
    strategy's mean weight over the epoch's steps; NaN where it gives none), valid_<metric>_<task>
    for every metric the evaluator gives, and valid_<metric>_mean over the tasks that have it."""
    row: dict = {"epoch": epoch, "train_loss": sum(train_losses)}
    for name, loss in zip(tasks, train_losses):
        row[f"train_loss_{name}"] = loss
    for name, weight in zip(tasks, weights):
        row[f"weight_{name}"] = weight
    means: dict[str, list[float]] = {}
    for name in tasks:
        for metric, value in valid.get(name, {}).items():
            row[f"valid_{metric}_{name}"] = value
            means.setdefault(metric, []).append(value)
    for metric, values in means.items():
        row[f"valid_{metric}_mean"] = sum(values) / len(values)
    return row


def check_finite(
    train_losses: list[float], tasks, epoch: int, config: TrainConfig, run: str = "", initial: list[float] | None = None
) -> None:
    """Stop a run whose training loss is not finite, or exploded (see EXPLODED; `initial`: the tasks'
    losses on the first training batch), naming the epoch, the tasks and a learning rate to try
    (`run`: which run, where several train together, e.g. "of seed 3 ")."""
    bad = [t for t, v in zip(tasks, train_losses) if not math.isfinite(v)]
    if bad:
        raise diverged(run, epoch, f"the loss of task(s) {', '.join(bad)} is not finite", config)
    if initial is not None:
        big = [
            f"{t} ({v:.3g}, first batch {i:.3g})"
            for t, v, i in zip(tasks, train_losses, initial)
            if v > EXPLODED * max(1.0, abs(i))
        ]
        if big:
            raise diverged(
                run,
                epoch,
                f"the loss of task(s) {', '.join(big)} exploded (over {EXPLODED:g}× the first batch's)",
                config,
            )


def nonfinite_gradients(
    err: NonFiniteGradients, tasks, epoch: int, config: TrainConfig, run: str = ""
) -> DivergenceError:
    """A strategy's NonFiniteGradients as the one divergence message."""
    return diverged(
        run,
        epoch,
        f"the gradient of task(s) {', '.join(tasks[t] for t in err.tasks)} is not finite "
        f"or longer than {MAX_GRADIENT_NORM:g}",
        config,
    )


def check_monitor(row: dict, monitor: str, config: TrainConfig, run: str = "") -> None:
    """The monitored validation metric exists in the history row and is finite."""
    if monitor not in row:
        raise ValueError(
            f"monitor {monitor[6:]!r} is not a validation metric here; "
            f"choose one of {', '.join(k[6:] for k in row if k.startswith('valid_'))}"
        )
    if not math.isfinite(row[monitor]):
        raise DivergenceError(
            f"validation {monitor[6:]} {run}is {row[monitor]} after epoch {row['epoch']}: the model "
            f"diverged or a task's validation labels are all one class; try a lower learning "
            f"rate (now {config.lr:g}) and check the data"
        )
