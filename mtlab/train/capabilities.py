"""What a run can do, decided in one place from what its parts declare.

    capabilities(model, data, config) -> Capabilities(train, vectorize, distribute, rep_grad)

Each field is None where the run can, else the reason it cannot, in words a user can act on. `fit`,
`fit_members` and `experiments.train_seeds` (through which the command line, the notebooks and every
sweep job train) ask here; none guesses from attributes. The declarations read:

- the model's class: `TaskModel.data_kind`, `row_state` (a value per training row), `preparation` (a
  phase run first), `one_representation` (rep_grad's `represent`/`heads`), `vectorizable`
  (`member_losses`), and what its tasks share (`shared_parameters`, by structure);
- the strategy's class: `Weighting.kind` ("loss", "gradient", "rows", "own"), `per_element_state`;
- the data: `data.kind` ("tabular", "interactions") and `data.streamed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.base import kinds_refused
from ..sharing import SharedPart, SharedRepresentation, TableRows
from ..weighting import STRATEGIES


@dataclass(frozen=True)
class Capabilities:
    train: str | None  # why the model cannot train on these data at all
    vectorize: str | None  # why its seeds cannot train as one batched model (train.vectorized)
    distribute: str | None  # why several processes cannot train it (train.distributed)
    rep_grad: str | None  # why gradients cannot be combined on its shared representation


def capabilities(model, data, config) -> Capabilities:
    """What `model` can do on `data` under `config` (a TrainConfig): see the module docstring."""
    name = type(model).__name__
    kind = STRATEGIES[config.weighting].kind
    train = None
    if model.row_state and data.streamed:
        train = (
            f"{name} keeps a value per training row (read by row index), which streamed data do not give; "
            "load the data in memory or use adversarial=False"
        )
    if model.data_kind != data.kind:
        train = f"{name} trains on {model.data_kind} data; these are {data.kind}"
    elif data.kind == "tabular":
        train = kinds_refused(type(model), data.tasks, [k.kind for k in data.kinds]) or train
    rep_grad = None
    if not model.one_representation:
        rep_grad = (
            f"rep_grad needs a model with one shared representation that every task reads (shared_bottom); "
            f"{name} has none"
        )
    elif kind not in ("loss", "gradient"):
        rep_grad = (
            f"the {config.weighting} strategy weights per row in its own backward, not on a representation; "
            "rep_grad needs one that weights the losses or combines task gradients"
        )
    elif STRATEGIES[config.weighting].per_element_state:
        rep_grad = (
            f"{config.weighting} keeps a running state per shared element, but with rep_grad the shared "
            "elements are each batch's representation; use rep_grad=False or another strategy"
        )
    if train:  # what cannot train cannot train vectorized or in several processes either
        return Capabilities(train, train, train, rep_grad)
    return Capabilities(train, _vectorize(model, data, config, kind), _distribute(model, data, config, kind), rep_grad)


def _vectorize(model, data, config, kind: str) -> str | None:
    if data.streamed:
        return "streamed data are read one batch order at a time"
    if config.distributed:
        return "several processes already split each batch"
    if config.rep_grad:
        return "rep_grad combines gradients of each batch's representation"
    if not model.vectorizable:
        return f"{type(model).__name__} has no member_losses"
    by_rows = kind == "rows" and data.kind == "interactions"  # PMTRec on the recommender
    if kind not in ("loss", "gradient") and not by_rows:
        return f"the {config.weighting} strategy weights inside its own backward"
    if kind == "gradient":
        if data.kind == "interactions":
            return "gradient combination on the recommender combines per embedding row"
        parts = (SharedPart, TableRows, SharedRepresentation)
        if model.preparation or any(isinstance(t, parts) for t in model.shared_parameters()):
            return f"{type(model).__name__} shares parts of tensors, which members would not share alike"
    return None


def _distribute(model, data, config, kind: str) -> str | None:
    name = type(model).__name__
    if data.kind != "tabular":
        return "the recommenders (model mf) sample per user and keep per-user state; train them in one process"
    if model.row_state:
        return (
            f"{name} keeps a value per training row ({name}(adversarial=True)'s task assignment), which the "
            "processes would each update apart; use adversarial=False or one process"
        )
    if model.preparation:
        return f"{name}'s preparation phase ({model.preparation}) runs in one process"
    if config.rep_grad:
        return "rep_grad combines per-row gradients of the representation, which differ between processes"
    if kind not in ("loss", "gradient"):
        return f"the {config.weighting} strategy weights per user or row in its own backward"
    return None


__all__ = ["Capabilities", "capabilities"]
