"""The fit loop: whole dataset as tensors on the device, batches by permuted index, Adam, per-task
BCE, early stopping on mean validation AUC with best weights restored, atomic resumable checkpoints.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from ..data.tabular import MultiTaskData
from ..models.base import Step
from ..weighting import build_weighting
from .checkpoint import load_checkpoint, save_checkpoint
from .device import resolve_device
from .metrics import evaluate


@dataclass
class TrainConfig:
    """Training hyperparameters (defaults: the MPT-Rec release's Census-Income setup)."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    l2_embedding: float = 0.0  # L2 on embedding tables (Adam weight decay)
    l2_dense: float = 0.0  # L2 on every other parameter
    task_weights: Sequence[float] | None = None  # per-task BCE weights; None = all 1
    patience: int = 5  # epochs without a better mean validation AUC before stopping; 0 = never stop
    weighting: str | None = None  # a gradient-combination strategy of mtlab.weighting; None = weighted sum
    weighting_options: dict | None = None
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 65536
    quiet: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass
class FitResult:
    model: torch.nn.Module  # with the best validation weights restored
    history: pd.DataFrame  # one row per epoch
    best_epoch: int
    epochs: int  # epochs actually run
    seconds: float  # training time (all sessions, if resumed)
    device: str


def optimizer_for(model: torch.nn.Module, config: TrainConfig, strategy=None) -> torch.optim.Adam:
    """Adam with separate L2 (coupled weight decay) for embedding tables and dense parameters; a
    weighting strategy's own parameters (UW's log-variances) train without decay."""
    emb, dense = [], []
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (emb if isinstance(module, torch.nn.Embedding) else dense).append(p)
    groups = [{"params": emb, "weight_decay": config.l2_embedding},
              {"params": dense, "weight_decay": config.l2_dense},
              {"params": list(strategy.parameters()) if strategy is not None else [], "weight_decay": 0.0}]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=config.lr, fused=fused_on(model))


def fused_on(model: torch.nn.Module) -> bool | None:
    """Adam's fused kernel on CUDA (one launch per step instead of several: these models' steps are
    launch-bound on a GPU); None, torch's own choice, elsewhere."""
    return True if next(model.parameters()).is_cuda else None


def fit(
    model: torch.nn.Module,
    data: MultiTaskData,
    config: TrainConfig | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    on_epoch: Callable[[dict], bool | None] | None = None,
) -> FitResult:
    """Train `model` on `data.train`, early-stopping on the mean AUC over `data.valid`.

    checkpoint: a file written atomically after every epoch; with resume=True training continues
        from it (same result as an uninterrupted run: RNG states are saved too).
    on_epoch: called with each epoch's history row; returning True stops training (a Stop button).
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    data = data.to(device)
    model.to(device)
    tasks = data.tasks
    weights = torch.as_tensor(config.task_weights or [1.0] * len(tasks), dtype=torch.float32, device=device)
    if weights.numel() != len(tasks):
        raise ValueError(f"task_weights has {weights.numel()} entries for {len(tasks)} tasks {list(tasks)}")
    strategy = (build_weighting(config.weighting, len(tasks), **(config.weighting_options or {})).to(device)
                if config.weighting else None)
    shared = model.shared_parameters() if strategy is not None else []
    optimizer = optimizer_for(model, config, strategy)
    shuffle = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # dropout and any other global randomness during training

    state = {"epoch": 0, "history": [], "best_score": float("-inf"), "best_epoch": 0,
             "best_state": None, "bad_epochs": 0, "seconds": 0.0, "stopped": False}
    if resume and checkpoint and Path(checkpoint).exists():
        state = _restore(load_checkpoint(checkpoint), model, optimizer, shuffle, strategy)

    n = len(data.train)
    steps_per_epoch = -(-n // config.batch_size)
    last = state["epoch"] if state["stopped"] else config.epochs  # an early-stopped run stays stopped
    bar = tqdm(range(state["epoch"], last), disable=config.quiet, unit="epoch",
               desc=f"{type(model).__name__}", initial=state["epoch"], total=config.epochs)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        loss_sum = torch.zeros(len(tasks), device=device)
        for step_in_epoch, i in enumerate(range(0, n, config.batch_size)):
            rows = order[i:i + config.batch_size]
            batch, labels = data.train.rows(rows)
            progress = (epoch * steps_per_epoch + step_in_epoch) / (config.epochs * steps_per_epoch)
            losses, extra = model.training_loss(batch, labels, Step(rows, n, epoch, progress))
            optimizer.zero_grad(set_to_none=True)
            if strategy is None:
                (weights @ losses if extra is None else weights @ losses + extra).backward()
            else:  # auxiliary terms keep their plain gradient; the strategy combines the tasks'
                if extra is not None:
                    extra.backward(retain_graph=True)
                strategy.backward(weights * losses, shared, epoch)
            optimizer.step()
            loss_sum += losses.detach() * len(labels)
        train_losses = (loss_sum / n).tolist()  # .tolist() waits for the device: timing is honest
        train_seconds = time.perf_counter() - start
        valid = evaluate(model, data.valid, tasks, config.eval_batch_size)
        row = _history_row(epoch + 1, train_losses, valid, tasks)
        row["train_seconds"] = train_seconds
        state["seconds"] += time.perf_counter() - start
        row["seconds"] = state["seconds"]
        state["history"].append(row)
        state["epoch"] = epoch + 1
        if row["valid_auc_mean"] > state["best_score"]:
            state.update(best_score=row["valid_auc_mean"], best_epoch=epoch + 1, bad_epochs=0,
                         best_state=copy.deepcopy(model.state_dict()))
        else:
            state["bad_epochs"] += 1
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", auc=f"{row['valid_auc_mean']:.4f}")
        stop = bool(on_epoch and on_epoch(row))
        stop = stop or bool(config.patience and state["bad_epochs"] >= config.patience)
        state["stopped"] = stop
        if checkpoint:
            save_checkpoint(_snapshot(state, model, optimizer, shuffle, config, strategy), checkpoint)
        if stop:
            break
    bar.close()
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    return FitResult(model, pd.DataFrame(state["history"]), state["best_epoch"], state["epoch"],
                     state["seconds"], str(device))


def _history_row(epoch: int, train_losses: list[float], valid: dict, tasks) -> dict:
    row: dict = {"epoch": epoch, "train_loss": sum(train_losses)}
    for name, loss in zip(tasks, train_losses):
        row[f"train_loss_{name}"] = loss
    for name in tasks:
        row[f"valid_auc_{name}"] = valid[name]["auc"]
        row[f"valid_logloss_{name}"] = valid[name]["logloss"]
    row["valid_auc_mean"] = sum(valid[t]["auc"] for t in tasks) / len(tasks)
    return row


def _snapshot(state: dict, model, optimizer, shuffle: torch.Generator, config: TrainConfig, strategy) -> dict:
    return {**state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "strategy": strategy.state_dict() if strategy is not None else None,
            "shuffle_rng": shuffle.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "config": asdict(config), "model_class": type(model).__name__}


def _restore(saved: dict, model, optimizer, shuffle: torch.Generator, strategy) -> dict:
    if saved.get("model_class") != type(model).__name__:
        raise ValueError(f"checkpoint holds a {saved.get('model_class')}, not a {type(model).__name__}; "
                         "use another checkpoint path or resume=False")
    model.load_state_dict(saved.pop("model"))
    strategy_state = saved.pop("strategy", None)
    if strategy is not None and strategy_state is not None:
        strategy.load_state_dict(strategy_state)
    optimizer.load_state_dict(saved.pop("optimizer"))
    shuffle.set_state(saved.pop("shuffle_rng"))
    torch.set_rng_state(saved.pop("torch_rng"))
    cuda_rng = saved.pop("cuda_rng")
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_rng)
    saved.pop("config"), saved.pop("model_class")
    return saved
