"""The interface every mtlab model follows, and the registry that builds one by name.

A model tells the fit loop three things (`TaskModel`): a training step's per-task losses
(`training_step`), which of its parameters the tasks *share* (`shared_parameters`, declared by
structure, never guessed by name), and any phase that must run before training
(`preparation`, e.g. the subnet search of Sparse Sharing). Every parameter (or element, see
`SharedPart`) it does not declare shared is reached by at most one task's loss: gradient-combination
strategies combine the shared ones and leave every other parameter its own task's gradient.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..data.sources import StepBatch
from ..data.tabular import Batch, FeatureSpec, distinct_tasks
from ..data.task_kinds import KINDS, task_losses  # noqa: F401  (task_losses re-exported: the models' loss)
from ..sharing import SharedPart, SharedRepresentation, TableRows  # noqa: F401  (re-exported: what shared_parameters returns)

MODELS: dict[str, type[TaskModel]] = {}


@dataclass
class StepOutput:
    """What one training step gives the fit loop and its weighting strategy."""

    losses: torch.Tensor | list  # [T] tensor, or a list of T scalars (each through its own graph)
    shared: list  # nn.Parameter | SharedPart | TableRows: what a strategy combines
    extra: torch.Tensor | None = None  # an auxiliary loss outside the tasks (plain gradient)


@dataclass
class Step:
    """Where a training step stands, for models whose loss depends on it (schedules, per-row state)."""

    rows: torch.Tensor  # indices of the batch's rows in the training split
    n_rows: int  # size of the training split
    epoch: int  # 0-based
    progress: float  # fraction of all planned training steps done, in [0, 1]


class TaskModel(nn.Module):
    """What the fit loop needs of any model: tasks, a training step, the declared sharing."""

    tasks: tuple[str, ...]
    preparation: str | None = None  # a phase the fit loop runs first (mtlab.train.PREPARATIONS)
    row_state = False  # keeps a value per training row (read by row index): in-memory data, one process
    one_representation = False  # one shared representation every task reads (`represent`, `heads`): rep_grad
    vectorizable = False  # has `member_losses`: seeds can train as one batched model (train.vectorized)
    schedule = False  # its loss reads Step.epoch / Step.progress (a schedule): a compiled step specializes on them
    data_kind = "tabular"  # the kind of data it trains on (`data.kind`: "tabular" | "interactions")
    required_tasks: tuple[str, ...] | None = None  # the only tasks it predicts, in order (None: any)
    task_kinds: frozenset[str] = frozenset({"binary"})  # the kinds of task it trains (data.task_kinds)
    kinds: tuple = ()  # each task's TaskKind, where the model has tasks of a kind (): all binary

    def prepared(self) -> bool:
        """Whether the preparation phase has run (models without one: always)."""
        return True

    def shared_parameters(self) -> list:
        """The parameters (or `SharedPart`s) that two or more tasks' losses reach, by structure."""
        raise NotImplementedError(f"{type(self).__name__} must declare which parameters its tasks share")

    def training_step(self, data, batch: StepBatch, step: Step, generator: torch.Generator | None) -> StepOutput:
        """The step's per-task losses, what they share and any auxiliary loss, for one `StepBatch` of
        the training split (whatever its source: data.sources)."""
        raise NotImplementedError

    def draw(self, data, rows: torch.Tensor, generator: torch.Generator | None):
        """What a step reads at random besides its rows (sampled negatives, links), drawn with the run's
        own generator. Seed-vectorized training (`train.vectorized`) draws it for each member outside the
        batched computation, so every member draws exactly what its separate run would. Default: the rows."""
        return rows

    def member_losses(self, data, drawn, step: Step) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The task losses [T] and the auxiliary loss (or None) of one step from what `draw` gave, as
        pure tensor code (run under `torch.func.vmap` over the members)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained seed-vectorized (no member_losses)")

    def config(self) -> dict:
        """The keyword hyperparameters this model was built with."""
        names = list(inspect.signature(type(self).__init__).parameters)[3:]
        return {n: getattr(self, n) for n in names}


def at_least(minimum: int, **values) -> None:
    """Refuse an integer hyperparameter below `minimum`, naming the allowed range."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")


def layer_sizes(**values) -> None:
    """Refuse hidden-layer lists holding anything but positive integers."""
    for name, sizes in values.items():
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise ValueError(f"{name} must be a list of positive integers (layer widths), got {list(sizes)!r}")


def in_unit_interval(**values) -> None:
    for name, value in values.items():
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def parameters_of(*modules: nn.Module | None) -> list[nn.Parameter]:
    return [p for m in modules if m is not None for p in m.parameters()]


class MultiTaskModel(TaskModel):
    """Maps a Batch to the logits of every task: `forward(batch) -> [B, Σ widths]`, task t's `widths[t]`
    columns in `self.tasks` order (one per binary or regression task, K per K-class task: [B, T] when
    every task is binary). `kinds`: each task's TaskKind (data.task_kinds), from the feature spec.

    Constructors take the feature spec, the task names and keyword hyperparameters only (no data),
    store the hyperparameters under their own names, and build every layer from them.
    """

    def __init__(self, features: FeatureSpec, tasks: Sequence[str]):
        super().__init__()
        if not tasks:
            raise ValueError("a model needs at least one task")
        self.features, self.tasks = features, tuple(tasks)
        self.kinds = features.kinds_of(self.tasks)  # each task's TaskKind (binary unless the data say otherwise)
        self.widths = tuple(k.width for k in self.kinds)  # logits per task: forward gives [B, Σ widths]

    vectorizable = True

    def forward(self, batch: Batch):  # pragma: no cover - abstract
        raise NotImplementedError

    def training_step(self, data, batch, step, generator=None) -> StepOutput:
        losses, extra = self.training_loss(batch.inputs, batch.labels, step)
        return StepOutput(losses, self.shared_parameters(), extra)

    def member_losses(self, data, drawn, step):
        losses, extra = self.training_loss(*data.train.rows(drawn), step)
        return (losses if isinstance(losses, torch.Tensor) else torch.stack(list(losses))), extra

    def representation_step(self, batch: Batch, labels: torch.Tensor) -> StepOutput:
        """rep_grad: the towers read a detached copy of the shared representation, which is what the
        strategy combines; the combined gradient then goes down through the shared layers once. For
        models with one representation every task reads: `represent(batch)` and `heads(h)`."""
        rep = SharedRepresentation.split(self.represent(batch))
        return StepOutput(task_losses(self.heads(rep.leaf), labels, self.kinds), [rep])

    def loss_counts(self, labels: torch.Tensor) -> torch.Tensor:
        """How many of the batch's rows each task's loss averages over [T]: the rows with a label (the
        default, as `task_losses`). Several processes weight their losses by it (train.distributed)."""
        return (~labels.isnan()).sum(0)

    def training_loss(self, batch: Batch, labels: torch.Tensor, step: Step):
        """Per-task losses [T] (weighted and summed by the trainer) and an extra scalar loss or None.

        Models with auxiliary objectives (adversarial, contrastive) override this; the default is
        each task's loss of its kind on `forward` (data.task_kinds.task_losses: BCE when binary).
        """
        return task_losses(self(batch), labels, self.kinds), None


def trains_on(cls: type[TaskModel], kind: str, tasks, task_kinds=None) -> str | None:
    """Why the model class cannot train on data of `kind` offering `tasks` (None: it can), from its
    declarations (`data_kind`, `required_tasks`, `task_kinds`): what the command line, the explorer, the
    tables and `capabilities` ask. `task_kinds`: each task's kind name (default: all binary)."""
    name = getattr(cls, "registry_name", cls.__name__)  # a model class need not be registered
    if cls.data_kind != kind:
        return f"model {name!r} trains on {cls.data_kind} data, not {kind}"
    refused = kinds_refused(cls, tasks, task_kinds or ())
    if refused:
        return refused
    if cls.required_tasks and tuple(tasks) != tuple(cls.required_tasks):
        return (
            f"model {name!r} predicts the tasks {', '.join(cls.required_tasks)}, in that order (the funnel datasets')"
        )
    return None


def kinds_refused(cls: type[TaskModel], tasks, task_kinds) -> str | None:
    """Why the model class cannot train tasks of these kinds (None: it can), from its `task_kinds`."""
    other = [f"{t} ({k})" for t, k in zip(tasks, task_kinds) if k not in cls.task_kinds]
    if not other:
        return None
    name = getattr(cls, "registry_name", cls.__name__)
    able = sorted(n for n, c in MODELS.items() if set(KINDS) <= c.task_kinds)
    return (
        f"model {name!r} trains {' and '.join(sorted(cls.task_kinds))} tasks only, not {', '.join(other)}"
        + (" (its losses are the click → conversion funnel's probabilities)" if cls.required_tasks else "")
        + f"; models for every task kind: {', '.join(able)}"
    )


def register(name: str):
    def add(cls):
        if name in MODELS:
            raise ValueError(f"model name {name!r} registered twice")
        cls.registry_name = name
        MODELS[name] = cls
        return cls

    return add


def build_model(name: str, features, tasks: Sequence[str], **config) -> TaskModel:
    """Build a registered model from its input spec (a FeatureSpec for the tabular models, an
    InteractionSpec for `mf`), task names and hyperparameters."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}")
    cls = MODELS[name]
    allowed = list(inspect.signature(cls.__init__).parameters)[3:]
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"model {name!r} has no option(s) {unknown}; its options: {', '.join(allowed)}")
    return cls(features, distinct_tasks(tasks), **config)
