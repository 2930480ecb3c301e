"""`fit`: one run of any model family — the census multi-task models, the MF recommender with auxiliary
tasks, fine-tuning heads and prompt tuning, MAML's meta-training — through the one epoch loop
(`train.loop.run_epochs`) with a `SingleLearner`.

One epoch: the training split's batches in a seeded order (`data.sources`); for each batch the model
gives its per-task losses, what it shares and any auxiliary loss (`TaskModel.training_step`), the
weighting strategy fills the gradients (`Weighting.backward`), Adam steps. Then the evaluator of the
data's task kind scores the validation split (binary tasks: AUC and log loss; ranking: full-ranking
Recall/NDCG), early stopping watches one named metric with the best weights restored, and an atomic
checkpoint holds everything an exact resume needs (weights, optimizer, strategy, every RNG state).
What the run can do (several processes, rep_grad, streamed data) is asked of `train.capabilities`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from ..data.sources import batch_source
from ..models.base import Step, StepOutput
from ..weighting import build_weighting
from ..weighting.base import NonFiniteGradients
from .capabilities import capabilities
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import (
    EXPLODED,
    DivergenceError,
    FitResult,
    TrainConfig,
    check_finite,
    check_monitor,
    diverged,
    fused_on,
    history_row,
    nonfinite_gradients,
    optimizer_for,
)
from .device import resolve_device
from .diagnostics import GradientProbe, measured_steps
from .distributed import Cluster, current, global_losses
from .evaluation import evaluator_for
from .loop import EpochStats, MemberRecord, OnEpoch, RandomStream, run_epochs

ONE_PROCESS = Cluster()


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
    Raises ValueError for a run its parts cannot do (naming why), DivergenceError, CheckpointError.
    """
    config = config or TrainConfig()
    learner = SingleLearner(model, data, config, checkpoint, identity)
    record = MemberRecord()
    generators = None
    if resume and checkpoint and Path(checkpoint).exists():
        record, generators = learner.restore(load_checkpoint(checkpoint), checkpoint)
    elif resume and checkpoint and not config.quiet:
        print(f"no checkpoint at {checkpoint}: starting a fresh run (it will be written there)")
    preparation, start = None, time.perf_counter()
    if prepare and model.preparation and not model.prepared():
        from . import PREPARATIONS  # the phases live in train; models only name theirs

        preparation = PREPARATIONS[model.preparation](model, learner.data, config)
        record.seconds += time.perf_counter() - start
    learner.start(generators)
    (record,) = run_epochs(learner, learner.monitor, [record], on_epoch)
    return FitResult(
        model,
        pd.DataFrame(record.history),
        record.best_epoch,
        record.epoch,
        record.seconds,
        str(learner.device),
        learner.weighting,
        preparation,
        learner.monitor,
    )


class SingleLearner:
    """One model (S = 1) for `run_epochs`: in memory or streamed, in one process or several (each
    computing its share of every global batch), with gradient diagnostics and checkpoints."""

    size = 1

    def __init__(self, model, data, config: TrainConfig, checkpoint=None, identity: dict | None = None):
        self.device = device = resolve_device(config.device)
        self.data = data = data.to(device)
        self._model = model.to(device)
        self.configs, self.config = [config], config
        self.tasks = tasks = tuple(model.tasks)
        can = capabilities(model, data, config)
        if can.train:  # first: a model for other data would otherwise be told its tasks are wrong
            raise ValueError(can.train)
        if data.kind == "tabular" and tuple(data.tasks) != tasks:
            raise ValueError(
                f"the model predicts tasks {list(tasks)} but the data hold {list(data.tasks)}; "
                "build the model with the data's tasks, in the same order"
            )
        self.evaluator = evaluator_for(data, config.eval_batch_size)
        self.monitor = f"valid_{config.monitor or self.evaluator.default_monitor}"
        self.weights = torch.as_tensor(config.task_weights or [1.0] * len(tasks), dtype=torch.float32, device=device)
        if self.weights.numel() != len(tasks):
            raise ValueError(f"task_weights has {self.weights.numel()} entries for {len(tasks)} tasks {list(tasks)}")
        self.unit_weights = bool((self.weights == 1).all())
        self.weighting = build_weighting(config.weighting, len(tasks), **config.weighting_options).to(device)
        self.optimizer = optimizer_for(model, config, self.weighting)
        self.identity = {
            "model": type(model).__name__,
            "model_config": _plain(model.config()),
            "tasks": list(tasks),
            "train": _plain(config.identity()),
            **_plain(identity or {}),
        }
        if config.rep_grad and can.rep_grad:
            raise ValueError(can.rep_grad)
        self.cluster = cluster = _cluster(config, can.distribute)
        if cluster.active:
            self.identity["processes"] = cluster.world  # resumed only by as many (each keeps its own dropout stream)
            if self.weighting.kind == "gradient":
                self.weighting.reduce_blocks, self.weighting.adds_combined = cluster.sum_blocks, cluster.main
        self.probe = GradientProbe(model, tasks, cluster.sum_blocks if cluster.active else None)
        self.source = batch_source(data)
        self.checkpoint = checkpoint
        self.description = f"{type(model).__name__} {config.weighting}"
        self.shuffle = torch.Generator().manual_seed(config.seed)  # batch order
        self.sampler = torch.Generator(device=device).manual_seed(config.seed)  # negatives, links (recommenders)
        self.strategy_random = RandomStream(config.seed, device) if cluster.active else None

    def restore(self, saved: dict, path) -> tuple[MemberRecord, dict]:
        """The record and random states of a checkpoint of this run (else CheckpointError)."""
        state, generators = _restore(saved, self.identity, self._model, self.optimizer, self.weighting, path)
        return MemberRecord(**state), generators

    def start(self, generators: dict | None) -> None:
        """Seed the run's global stream (dropout) or restore a checkpoint's; process 0's weights everywhere."""
        if generators is None:
            torch.manual_seed(self.config.seed + self.cluster.rank)  # dropout and any other global randomness
        else:
            _set_generators(generators, self.shuffle, self.sampler, self.cluster.rank, self.strategy_random)
        self.cluster.broadcast_parameters(self._model)  # every process starts from process 0's weights

    def train_epoch(self, epoch: int, first: bool) -> EpochStats:
        config, model, cluster, device = self.config, self._model, self.cluster, self.device
        n = len(self.source)
        steps_per_epoch = -(-n // config.batch_size)
        measured = measured_steps(config.diagnostics, steps_per_epoch)
        model.train()
        loss_sum = torch.zeros(len(self.tasks), device=device)
        weight_sum = torch.zeros(len(self.tasks), device=device)
        rows_seen = steps = 0
        first_losses = None
        reading = _reading_core(self.source.streamed and device.type == "cpu")
        batches = self.source.epoch(config.batch_size, self.shuffle, device, cluster.rank, cluster.world)
        for step_in_epoch, batch in enumerate(reading(batches)):
            progress = (epoch * steps_per_epoch + step_in_epoch) / (config.epochs * steps_per_epoch)
            self.probe.record_gates(step_in_epoch in measured)
            if config.rep_grad:
                out: StepOutput = model.representation_step(batch.inputs, batch.labels)
            else:
                out = model.training_step(self.data, batch, Step(batch.rows, n, epoch, progress), self.sampler)
            batch_rows = len(batch)
            step_losses, extra = out.losses, out.extra
            if cluster.active:  # the global batch's loss values; this process's share of their gradients
                step_losses, global_rows = global_losses(
                    cluster, list(out.losses), model.loss_counts(batch.labels), batch_rows
                )
                extra = None if extra is None else extra * (batch_rows / global_rows)
                batch_rows = global_rows
            losses = (
                step_losses
                if self.unit_weights and not isinstance(step_losses, torch.Tensor)
                else _weighted(step_losses, self.weights)
            )
            self.optimizer.zero_grad(set_to_none=True)
            if step_in_epoch in measured:
                self.probe.measure(losses, out.shared)
            if first and first_losses is None:  # the model at initialization (see EXPLODED)
                first_losses = _stacked(step_losses).detach().tolist()
            try:
                if self.strategy_random is None:
                    used = self.weighting.backward(losses, out.shared, epoch, extra)
                else:
                    with self.strategy_random:
                        used = self.weighting.backward(losses, out.shared, epoch, extra)
            except NonFiniteGradients as err:
                raise nonfinite_gradients(err, self.tasks, epoch + 1, config) from None
            if self.strategy_random is not None:
                cluster.sum_grads(model.parameters())
            self.optimizer.step()
            loss_sum += _stacked(step_losses).detach() * batch_rows
            weight_sum += used.detach().to(device, torch.float32)
            rows_seen, steps = rows_seen + batch_rows, steps + 1
        train_losses = (loss_sum / max(rows_seen, 1)).tolist()  # .tolist() waits for the device
        weights = (weight_sum / max(steps, 1)).tolist()
        return EpochStats([train_losses], [weights], [first_losses] if first else None)

    def model(self, s: int) -> torch.nn.Module:
        return self._model

    def validate(self, s: int) -> dict:
        return _validate(self.evaluator, self._model, self.data, self.cluster)

    def strategy(self, s: int) -> torch.nn.Module:
        return self.weighting

    def row_fields(self, s: int) -> tuple[dict, dict]:
        return self.probe.summary(), {}

    def run_name(self, s: int) -> str:
        return ""

    def hold(self, s: int) -> None:
        pass  # the loop ends with the only member

    def save(self, records: list[MemberRecord]) -> None:
        if not self.checkpoint:
            return
        snapshot = _snapshot(
            records[0].state(),
            self._model,
            self.optimizer,
            self.weighting,
            self.shuffle,
            self.sampler,
            self.identity,
            self.cluster,
            self.strategy_random,
        )
        if self.cluster.main:  # process 0 alone writes; the others wait so that none runs ahead of the file
            save_checkpoint(snapshot, self.checkpoint)
        self.cluster.share(None)


def _cluster(config: TrainConfig, refusal: str | None) -> Cluster:
    """The processes training together; a run that cannot be split over them is refused, with the reason."""
    if not config.distributed:
        return ONE_PROCESS
    cluster = current()
    if cluster.active and refusal:
        raise ValueError(f"several processes cannot train this run: {refusal}")
    return cluster


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


def _weighted(losses, weights: torch.Tensor):
    if isinstance(losses, torch.Tensor):
        return weights * losses
    return [w * loss for w, loss in zip(weights, losses)]


def _stacked(losses) -> torch.Tensor:
    return losses if isinstance(losses, torch.Tensor) else torch.stack(list(losses))


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
    strategy_random: RandomStream | None = None,
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


__all__ = [
    "EXPLODED",
    "DivergenceError",
    "FitResult",
    "SingleLearner",
    "TrainConfig",
    "check_finite",
    "check_monitor",
    "diverged",
    "fit",
    "fused_on",
    "history_row",
    "nonfinite_gradients",
    "optimizer_for",
]
