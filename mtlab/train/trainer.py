"""The one fit loop, for every model family: the census multi-task models, the MF recommender with
auxiliary tasks, fine-tuning heads and prompt tuning, MAML's meta-training.

One epoch: the training rows in a seeded random order, in batches; for each batch the model gives
its per-task losses, what it shares and any auxiliary loss (`TaskModel.training_step`), the
weighting strategy fills the gradients (`Weighting.backward`), Adam steps. Then the evaluator of the
data's task kind scores the validation split (binary tasks: AUC and log loss; ranking: full-ranking
Recall/NDCG), early stopping watches one named metric with the best weights restored, and an atomic
checkpoint holds everything an exact resume needs (weights, optimizer, strategy, every RNG state).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from ..models.base import Step, StepOutput
from ..weighting import STRATEGIES, build_weighting
from ..weighting.base import (
    MAX_GRADIENT_NORM,
    GradientCombination,
    LossWeighting,
    NonFiniteGradients,
)
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .device import resolve_device
from .diagnostics import GradientProbe, measured_steps
from .distributed import Cluster, StrategyRandom, current, global_losses
from .evaluation import evaluator_for

ONE_PROCESS = Cluster()


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
        if self.rep_grad and getattr(STRATEGIES[self.weighting], "per_element_state", False):
            raise ValueError(
                f"{self.weighting} keeps a running state per shared element, but with rep_grad the shared "
                f"elements are each batch's representation; use rep_grad=False or another strategy"
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


OnEpoch = Callable[[dict, torch.nn.Module], "bool | None"]


def fit(
    model,
    data,
    config: TrainConfig | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    on_epoch: OnEpoch | None = None,
    prepare: bool = True,
    identity: dict | None = None,
) -> FitResult:
    """Train `model` on `data.train`, early-stopping on `config.monitor` over `data.valid`.

    checkpoint: a file written atomically after every epoch; with resume=True training continues
        from it (the same result as an uninterrupted run: RNG and strategy states are saved too). A
        checkpoint of another run (model, its options, tasks, data, seed or training settings) is
        refused, naming the difference; resume=True without a checkpoint file starts fresh (and says so).
    on_epoch(row, strategy): called with each epoch's history row and the weighting strategy;
        returning True stops training (a Stop button).
    prepare: run the model's preparation phase (e.g. Sparse Sharing's subnet search) when it has
        not run yet; the phase itself trains with prepare=False.
    identity: what else identifies the run in a checkpoint (the command line adds the dataset).
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    data = data.to(device)
    model.to(device)
    tasks = tuple(model.tasks)
    if hasattr(data, "features") and tuple(data.tasks) != tasks:
        raise ValueError(
            f"the model predicts tasks {list(tasks)} but the data hold {list(data.tasks)}; "
            "build the model with the data's tasks, in the same order"
        )
    evaluator = evaluator_for(data, config.eval_batch_size)
    monitor = f"valid_{config.monitor or evaluator.default_monitor}"
    weights = torch.as_tensor(config.task_weights or [1.0] * len(tasks), dtype=torch.float32, device=device)
    if weights.numel() != len(tasks):
        raise ValueError(f"task_weights has {weights.numel()} entries for {len(tasks)} tasks {list(tasks)}")
    unit_weights = bool((weights == 1).all())
    strategy = build_weighting(config.weighting, len(tasks), **config.weighting_options).to(device)
    optimizer = optimizer_for(model, config, strategy)
    run_identity = {
        "model": type(model).__name__,
        "model_config": _plain(model.config()),
        "tasks": list(tasks),
        "train": _plain(config.identity()),
        **_plain(identity or {}),
    }
    if getattr(model, "row_state", False) and hasattr(data.train, "batches"):
        raise ValueError(
            f"{type(model).__name__} keeps a value per training row (read by row index), which streamed "
            "data do not give; load the data in memory or use adversarial=False"
        )
    cluster = _cluster(config, model, data, strategy)
    if cluster.active:
        run_identity["processes"] = cluster.world  # resumed only by as many (each keeps its own dropout stream)
        if isinstance(strategy, GradientCombination):
            strategy.reduce_blocks, strategy.adds_combined = cluster.sum_blocks, cluster.main

    state = {
        "epoch": 0,
        "history": [],
        "best_score": float("-inf"),
        "best_epoch": 0,
        "best_state": None,
        "bad_epochs": 0,
        "seconds": 0.0,
        "stopped": False,
        "initial_loss": None,
    }
    generators = None
    if resume and checkpoint and Path(checkpoint).exists():
        state, generators = _restore(load_checkpoint(checkpoint), run_identity, model, optimizer, strategy, checkpoint)
    elif resume and checkpoint and not config.quiet:
        print(f"no checkpoint at {checkpoint}: starting a fresh run (it will be written there)")

    if config.rep_grad and not hasattr(model, "represent"):
        raise ValueError(
            f"rep_grad needs a model with one shared representation that every task reads "
            f"(shared_bottom); {type(model).__name__} has none"
        )
    if hasattr(model, "represent"):
        model.rep_grad = config.rep_grad
    probe = GradientProbe(model, tasks, cluster.sum_blocks if cluster.active else None)

    preparation, start = None, time.perf_counter()
    if prepare and getattr(model, "preparation", None) and not model.prepared():
        from . import PREPARATIONS  # the phases live in train; models only name theirs

        preparation = PREPARATIONS[model.preparation](model, data, config)
        state["seconds"] += time.perf_counter() - start

    shuffle = torch.Generator().manual_seed(config.seed)  # batch order
    sampler = torch.Generator(device=device).manual_seed(config.seed)  # negatives, links (recommenders)
    strategy_random = StrategyRandom(config.seed, device) if cluster.active else None
    if generators is None:
        torch.manual_seed(config.seed + cluster.rank)  # dropout and any other global randomness during training
    else:
        _set_generators(generators, shuffle, sampler, cluster.rank, strategy_random)
    cluster.broadcast_parameters(model)  # every process starts from process 0's weights

    n = len(data.train)
    steps_per_epoch = -(-n // config.batch_size)
    measured = measured_steps(config.diagnostics, steps_per_epoch)
    last = state["epoch"] if state["stopped"] else config.epochs  # an early-stopped run stays stopped
    bar = tqdm(
        range(state["epoch"], last),
        disable=config.quiet,
        unit="epoch",
        initial=state["epoch"],
        total=config.epochs,
        desc=f"{type(model).__name__} {config.weighting}",
    )
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros(len(tasks), device=device)
        weight_sum = torch.zeros(len(tasks), device=device)
        rows_seen = steps = 0
        reading = _reading_core(hasattr(data.train, "batches") and device.type == "cpu")
        for step_in_epoch, rows in enumerate(
            reading(_epoch_batches(data, n, config.batch_size, shuffle, device, cluster))
        ):
            progress = (epoch * steps_per_epoch + step_in_epoch) / (config.epochs * steps_per_epoch)
            probe.record_gates(step_in_epoch in measured)
            step = Step(rows if isinstance(rows, torch.Tensor) else None, n, epoch, progress)
            out: StepOutput = model.training_step(data, rows, step, sampler)
            batch_rows = len(rows) if isinstance(rows, torch.Tensor) else len(rows[0])
            step_losses, extra = out.losses, out.extra
            if cluster.active:  # the global batch's loss values; this process's share of their gradients
                labels = data.train.labels[rows] if isinstance(rows, torch.Tensor) else rows[1]
                step_losses, global_rows = global_losses(
                    cluster, list(out.losses), model.loss_counts(labels), batch_rows
                )
                extra = None if extra is None else extra * (batch_rows / global_rows)
                batch_rows = global_rows
            losses = (
                step_losses
                if unit_weights and not isinstance(step_losses, torch.Tensor)
                else _weighted(step_losses, weights)
            )
            optimizer.zero_grad(set_to_none=True)
            if step_in_epoch in measured:
                probe.measure(losses, out.shared)
            if state.get("initial_loss") is None:  # the model at initialization (see EXPLODED)
                state["initial_loss"] = _stacked(step_losses).detach().tolist()
            try:
                if strategy_random is None:
                    used = strategy.backward(losses, out.shared, epoch, extra)
                else:
                    with strategy_random:
                        used = strategy.backward(losses, out.shared, epoch, extra)
            except NonFiniteGradients as err:
                raise nonfinite_gradients(err, tasks, epoch + 1, config) from None
            if strategy_random is not None:
                cluster.sum_grads(model.parameters())
            optimizer.step()
            loss_sum += _stacked(step_losses).detach() * batch_rows
            weight_sum += used.detach().to(device, torch.float32)
            rows_seen, steps = rows_seen + batch_rows, steps + 1
        train_losses = (loss_sum / max(rows_seen, 1)).tolist()  # .tolist() waits for the device: timing is honest
        check_finite(train_losses, tasks, epoch + 1, config, initial=state.get("initial_loss"))
        train_seconds = time.perf_counter() - start
        valid = _validate(evaluator, model, data, cluster)
        row = history_row(epoch + 1, train_losses, (weight_sum / max(steps, 1)).tolist(), valid, tasks)
        row.update(probe.summary())
        row["train_seconds"] = train_seconds
        state["seconds"] += time.perf_counter() - start
        row["seconds"] = state["seconds"]
        check_monitor(row, monitor, config)
        state["history"].append(row)
        state["epoch"] = epoch + 1
        if row[monitor] > state["best_score"]:
            state.update(
                best_score=row[monitor],
                best_epoch=epoch + 1,
                bad_epochs=0,
                best_state=copy.deepcopy(model.state_dict()),
            )
        else:
            state["bad_epochs"] += 1
        bar.set_postfix(loss=f"{sum(train_losses):.4f}", **{monitor[6:]: f"{row[monitor]:.4f}"})
        stop = bool(on_epoch and on_epoch(row, strategy))
        stop = stop or bool(config.patience and state["bad_epochs"] >= config.patience)
        state["stopped"] = stop
        if checkpoint:
            snapshot = _snapshot(
                state, model, optimizer, strategy, shuffle, sampler, run_identity, cluster, strategy_random
            )
            if cluster.main:  # process 0 alone writes; the others wait so that none runs ahead of the file
                save_checkpoint(snapshot, checkpoint)
            cluster.share(None)
        if stop:
            break
    bar.close()
    if config.restore_best and state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    return FitResult(
        model,
        pd.DataFrame(state["history"]),
        state["best_epoch"],
        state["epoch"],
        state["seconds"],
        str(device),
        strategy,
        preparation,
        monitor,
    )


def _epoch_batches(data, n: int, batch_size: int, shuffle: torch.Generator, device, cluster: Cluster = ONE_PROCESS):
    """One epoch's batches: row indices of a seeded permutation (data in memory), or, for a streamed
    split (`data.train.batches`), (Batch, labels) read in a seeded order and moved to the device.
    With several processes each takes its share of every global batch: in memory every world-th row
    of the same permutation; streamed, its own row groups (`ShardedSplit.batches`)."""
    if hasattr(data.train, "batches"):
        shard = {"rank": cluster.rank, "world": cluster.world} if cluster.active else {}
        for batch, labels in data.train.batches(batch_size, shuffle, **shard):
            yield batch.to(device), labels.to(device)
        return
    order = torch.randperm(n, generator=shuffle).to(device)
    tail = n % batch_size  # a last batch with fewer rows than processes would leave one empty: dropped
    last = n - tail if cluster.active and 0 < tail < cluster.world else n
    for i in range(0, last, batch_size):
        yield cluster.local_rows(order[i : i + batch_size])


def _reading_core(active: bool):
    """Streamed data on CPU: while the epoch's batches are consumed, torch computes on one core fewer,
    leaving one to the thread that reads and decodes the next batches (measured on 2 noisy cores, ESMM
    on 720k generated Ali-CCP rows: 55–75k samples/s, against 56–57k with both cores to torch and the
    reader competing, and 42–46k without the reader thread)."""

    def wrap(batches):
        if not active or torch.get_num_threads() < 2:
            yield from batches
            return
        before = torch.get_num_threads()
        torch.set_num_threads(before - 1)
        try:
            yield from batches
        finally:
            torch.set_num_threads(before)

    return wrap


def _cluster(config: TrainConfig, model, data, strategy) -> Cluster:
    """The processes training together; what cannot be split over them is refused, with the reason."""
    if not config.distributed:
        return ONE_PROCESS
    cluster = current()
    if not cluster.active:
        return cluster
    why = None
    if not hasattr(data, "features"):
        why = "the recommenders (model mf) sample per user and keep per-user state; train them in one process"
    elif getattr(model, "row_state", False):
        why = (
            f"{type(model).__name__} keeps a value per training row ({type(model).__name__}(adversarial=True)'s "
            "task assignment), which the processes would each update apart; use adversarial=False or one process"
        )
    elif getattr(model, "preparation", None):
        why = f"{type(model).__name__}'s preparation phase ({model.preparation}) runs in one process"
    elif config.rep_grad:
        why = "rep_grad combines per-row gradients of the representation, which differ between processes"
    elif not isinstance(strategy, (LossWeighting, GradientCombination)):
        why = f"the {config.weighting} strategy weights per user or row in its own backward"
    if why:
        raise ValueError(f"several processes cannot train this run: {why}")
    return cluster


def _validate(evaluator, model, data, cluster: Cluster) -> dict:
    """The validation metrics, computed by process 0 and shared (every process then stops alike)."""
    if not cluster.active:
        return evaluator(model, data, "valid")
    result = None
    if cluster.main:
        try:
            result = evaluator(model, data, "valid")
        except Exception as err:  # noqa: BLE001 - handed to every process, raised there
            result = err
    result = cluster.share(result)
    if isinstance(result, Exception):
        raise result
    return result


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


def _weighted(losses, weights: torch.Tensor):
    if isinstance(losses, torch.Tensor):
        return weights * losses
    return [w * loss for w, loss in zip(weights, losses)]


def _stacked(losses) -> torch.Tensor:
    return losses if isinstance(losses, torch.Tensor) else torch.stack(list(losses))


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


def _plain(value):
    """A JSON-like copy (tuples as lists) for comparing run identities."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _snapshot(
    state,
    model,
    optimizer,
    strategy,
    shuffle,
    sampler,
    identity: dict,
    cluster: Cluster = ONE_PROCESS,
    strategy_random: StrategyRandom | None = None,
) -> dict:
    generators = {
        "shuffle": shuffle.get_state(),
        "sampler": sampler.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if cluster.active:  # every process's own stream (dropout), and the strategies' shared one
        generators["torch_per_process"] = cluster.gather(torch.get_rng_state())
        generators["strategy"] = strategy_random.state
    return {
        **state,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "strategy": strategy.state_dict(),
        "identity": identity,
        "generators": generators,
    }


def _restore(saved: dict, identity: dict, model, optimizer, strategy, path) -> tuple[dict, dict]:
    theirs = saved.get("identity")
    if theirs != identity:
        raise CheckpointError(
            f"checkpoint {path} belongs to another run ({_differences(theirs or {}, identity)}); "
            "use another --checkpoint path, or the checkpoint's settings, or train without --resume"
        )
    try:
        model.load_state_dict(saved.pop("model"))
        strategy.load_state_dict(saved.pop("strategy"))
        optimizer.load_state_dict(saved.pop("optimizer"))
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {path} does not fit this model ({err}); delete it or train without --resume"
        ) from err
    saved.pop("identity")
    return saved, saved.pop("generators")


def _set_generators(generators: dict, shuffle, sampler, rank: int = 0, strategy_random=None) -> None:
    shuffle.set_state(generators["shuffle"])
    sampler.set_state(generators["sampler"])
    torch.set_rng_state(
        generators["torch_per_process"][rank] if "torch_per_process" in generators else generators["torch"]
    )
    if strategy_random is not None and "strategy" in generators:
        strategy_random.state = generators["strategy"]
    if generators["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(generators["cuda"])


def _differences(theirs: dict, ours: dict, prefix: str = "") -> str:
    """'seed: 0 in the checkpoint, 1 now; …' for the keys that differ."""
    out = []
    for key in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(key, "—"), ours.get(key, "—")
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _differences(a, b, f"{prefix}{key}.")
            out += [inner] if inner else []
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} in the checkpoint, {b!r} now")
    return "; ".join(out)
