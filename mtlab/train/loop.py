"""The one epoch loop, for one run and for S runs trained together (seeds at once).

    run_epochs(learner, evaluator_monitor, configs, records, on_epoch, save) -> records

A `Learner` owns what differs between one model and S stacked ones: its parameters, optimizer groups,
weighting strategies and random streams, and how one epoch's steps are taken (`train_epoch`). The loop
owns what must not differ: for every member and epoch, in this order,

1. the finiteness and explosion check of the epoch's training losses (`check_finite`),
2. validation of that member's model, its history row (`history_row`) and the monitor check,
3. its early-stopping record (`MemberRecord.observe`: best score, best weights, epochs without progress),
4. `on_epoch(row, strategy)` (True stops that member) and patience;

then the learner's checkpoint (`save`), and, when every member has stopped, the end. Members that
stopped are held still by the learner while the others go on. At the end each member's model holds
its best validation weights (`TrainConfig.restore_best`) or its last.

`train.trainer.fit` is this loop over a `SingleLearner` (S = 1: resume, several processes, streamed
data, diagnostics); `train.vectorized.fit_members` over a `StackedLearner` (S members as one batched
model). A member's record has the names a checkpoint stores, so a checkpoint of either is the same.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Protocol

import torch
from tqdm import tqdm

from .config import check_finite, check_monitor, history_row
from .device import epoch_threads

OnEpoch = Callable[[dict, torch.nn.Module], "bool | None"]


@dataclass
class MemberRecord:
    """One member's progress: what early stopping and an exact resume need (a checkpoint's "state")."""

    epoch: int = 0  # epochs run
    history: list = field(default_factory=list)  # one `history_row` per epoch
    best_score: float = -math.inf  # the monitored validation metric at its best (higher is better)
    best_epoch: int = 0
    best_state: dict | None = None  # the model's state_dict at best_epoch
    bad_epochs: int = 0  # epochs since best_epoch
    seconds: float = 0.0  # this member's share of the training time (preparation included)
    stopped: bool = False  # stopped early (patience or on_epoch): a resumed run stays stopped
    initial_loss: list | None = None  # the tasks' losses on the first training batch (see trainer.EXPLODED)

    def observe(self, row: dict, monitor: str, model: torch.nn.Module) -> None:
        """Record an epoch's history row; a better `row[monitor]` keeps a copy of the model's weights."""
        self.history.append(row)
        self.epoch = row["epoch"]
        if row[monitor] > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = row[monitor], row["epoch"], 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.bad_epochs += 1

    def state(self) -> dict:
        """The fields as a dict, not copied (a checkpoint writes them as they are; `asdict` would
        deep-copy the best weights and the history every epoch)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class EpochStats:
    """What a learner's epoch gives the loop, per member s: train_losses[s] (mean per task, [T]),
    weights[s] (the strategy's mean weight per task over the steps, [T]), first[s] (the tasks' losses
    on the epoch's first batch, [T]; only when asked for)."""

    train_losses: list[list[float]]
    weights: list[list[float]]
    first: list[list[float]] | None = None


class Learner(Protocol):
    """What `run_epochs` needs of one run or of S runs trained together."""

    size: int  # S, the members
    device: torch.device
    tasks: tuple[str, ...]
    configs: list  # one TrainConfig per member
    description: str  # the progress bar's label

    def train_epoch(self, epoch: int, first: bool) -> EpochStats:
        """Take one epoch's training steps for every member still training (`first`: report the first
        batch's losses)."""

    def model(self, s: int) -> torch.nn.Module:
        """Member s's model with its current weights (to evaluate, to keep, to return)."""

    def validate(self, s: int) -> dict:
        """Member s's validation metrics {task: {metric: value}}."""

    def strategy(self, s: int) -> torch.nn.Module:
        """Member s's weighting strategy (handed to on_epoch)."""

    def row_fields(self, s: int) -> tuple[dict, dict]:
        """Columns of member s's history row besides the common ones: (before the timings, after)."""

    def run_name(self, s: int) -> str:
        """Member s in a message ("" for a single run, "of seed 3 " for a member)."""

    def hold(self, s: int) -> None:
        """Member s stopped: keep its weights still while the others train."""

    def save(self, records: list[MemberRecord]) -> None:
        """After every epoch: write a checkpoint (learners that keep one)."""


def run_epochs(
    learner: Learner, monitor: str, records: list[MemberRecord], on_epoch: OnEpoch | None = None
) -> list[MemberRecord]:
    """Train every member of `learner` until its configs' `epochs`, early stopping or `on_epoch`;
    `records` (one per member; a resumed run's from its checkpoint) are updated in place and returned.
    monitor: the history column early stopping watches ("valid_auc_mean", "valid_ndcg@40"; higher is better).
    Raises trainer.DivergenceError when a member's loss or monitored metric is not finite or exploded."""
    config, n = learner.configs[0], learner.size
    start = records[0].epoch
    last = start if all(r.stopped for r in records) else config.epochs  # an early-stopped run stays stopped
    bar = tqdm(
        range(start, last),
        disable=all(c.quiet for c in learner.configs),
        unit="epoch",
        initial=start,
        total=config.epochs,
        desc=learner.description,
    )
    for epoch in bar:
        epoch_start = time.perf_counter()
        with epoch_threads(learner.device):  # the cores free now (device.usable_cores), CPU only
            stats = learner.train_epoch(epoch, first=any(r.initial_loss is None for r in records))
        train_seconds = (time.perf_counter() - epoch_start) / n  # the losses are read: timing is honest
        for s, record in enumerate(records):
            if record.stopped:
                continue
            cfg, run = learner.configs[s], learner.run_name(s)
            if record.initial_loss is None:
                record.initial_loss = stats.first[s]
            check_finite(stats.train_losses[s], learner.tasks, epoch + 1, cfg, run, record.initial_loss)
            model = learner.model(s)
            row = history_row(epoch + 1, stats.train_losses[s], stats.weights[s], learner.validate(s), learner.tasks)
            before, after = learner.row_fields(s)
            row.update(before)
            row["train_seconds"] = train_seconds
            row["seconds"] = record.seconds + (time.perf_counter() - epoch_start) / n
            row.update(after)
            check_monitor(row, monitor, cfg, run)
            record.seconds = row["seconds"]
            record.observe(row, monitor, model)
            if n == 1:
                bar.set_postfix(loss=f"{row['train_loss']:.4f}", **{monitor[6:]: f"{row[monitor]:.4f}"})
            stop = bool(on_epoch and on_epoch(row, learner.strategy(s)))
            record.stopped = stop or bool(cfg.patience and record.bad_epochs >= cfg.patience)
            if record.stopped:
                learner.hold(s)
        if n > 1:
            bar.set_postfix(running=sum(not r.stopped for r in records))
        learner.save(records)
        if all(r.stopped for r in records):
            break
    bar.close()
    for s, record in enumerate(records):
        model = learner.model(s)  # its last weights
        if learner.configs[s].restore_best and record.best_state is not None:
            model.load_state_dict(record.best_state)
    return records


class RandomStream:
    """A copy of the global random stream (what `torch.manual_seed(seed)` starts), swapped in around the
    draws it owns: a strategy's draws shared by every process (train.distributed), or one member's
    global stream in seed-vectorized training (a strategy's draws, MPT-Rec's first assignment).
    `state`: (CPU state, CUDA state or None), saved in checkpoints."""

    def __init__(self, seed: int, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        with torch.random.fork_rng(devices=[device] if self.cuda else []):
            torch.manual_seed(seed)
            self.state = self._get()
        self._own = None

    def _get(self):
        return (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.cuda else None)

    def _set(self, state) -> None:
        torch.set_rng_state(state[0])
        if self.cuda:
            torch.cuda.set_rng_state(state[1], self.device)

    def __enter__(self):
        self._own = self._get()
        self._set(self.state)

    def __exit__(self, *exc):
        self.state = self._get()
        self._set(self._own)
        return False


__all__ = ["EpochStats", "Learner", "MemberRecord", "OnEpoch", "RandomStream", "run_epochs"]
