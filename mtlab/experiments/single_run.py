"""Train and evaluate one model on one dataset: the unit behind the command line and every table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from ..data import InteractionData, MultiTaskData, check_rec_tasks, load_dataset
from ..models import build_model
from ..train import (
    TrainConfig,
    count_parameters,
    evaluator_for,
    fit,
    flops_per_sample,
    seed_everything,
)
from ..train.distributed import current
from ..train.metrics import labelled_predictions, no_skill, task_metrics
from ..train.saved import save_model
from ..train.vectorized import fit_members, refusal
from .profiles import Profile, get_profile


def train_config(profile: Profile, seed: int, family: str = "tabular", **overrides) -> TrainConfig:
    """The profile's training configuration for a model family ("tabular" or "rec"), with overrides."""
    if family == "rec":
        rec = profile.rec
        base = dict(
            epochs=rec.epochs,
            patience=rec.patience,
            batch_size=rec.batch_size,
            lr=rec.lr,
            seed=seed,
            device=profile.device,
        )
    elif family == "tabular":
        base = dict(
            epochs=profile.epochs,
            patience=profile.patience,
            batch_size=profile.batch_size,
            seed=seed,
            device=profile.device,
        )
    else:
        raise ValueError(f"unknown model family {family!r}; use 'tabular' or 'rec'")
    return TrainConfig(**{**base, **overrides})


def train_one(
    model: str,
    data: MultiTaskData | InteractionData,
    profile: Profile,
    seed: int = 0,
    model_options: dict | None = None,
    checkpoint=None,
    resume: bool = False,
    on_epoch=None,
    tasks: Sequence[str] | None = None,
    **train_overrides,
) -> dict:
    """Build `model` (seeded), fit it, evaluate it. Returns the JSON-shaped result of `mtlab train`
    plus the epoch history (as a DataFrame, under "history") and the preparation log ("preparation").
    `tasks`: a recommender's tasks (default: every one the data support); tabular data carry theirs."""
    return _fit_built(
        model,
        *_build(model, data, profile, seed, model_options, tasks, train_overrides),
        checkpoint=checkpoint,
        resume=resume,
        on_epoch=on_epoch,
    )


def _fit_built(model: str, data, net, config: TrainConfig, checkpoint=None, resume=False, on_epoch=None) -> dict:
    """Fit a built model in the one loop and report it (`train_one` after its build)."""
    identity = {"dataset": data.name, "data_source": data.source, "n_train": len(data.train)}
    if data.version:  # a prepared table or interaction log: prepared again (another split) is other data
        identity["data_version"] = data.version
    result = fit(net, data, config, checkpoint=checkpoint, resume=resume, on_epoch=on_epoch, identity=identity)
    if config.distributed and not current().main:
        return {"model": model, "dataset": data.name, "seed": config.seed, "rank": current().rank}  # process 0 reports
    return _report(model, data, net, config, result)


def train_seeds(
    model: str,
    data: MultiTaskData | InteractionData,
    profile: Profile,
    seeds: Sequence[int] | None = None,
    model_options: dict | None = None,
    on_epoch=None,
    tasks: Sequence[str] | None = None,
    vectorize: bool = True,
    compile_step: bool = False,
    **train_overrides,
) -> list[dict]:
    """`train_one` for each seed (default: the profile's), in one process: seed-vectorized as one batched
    model (`train.vectorized`) where the run allows it, else one after another (the reason printed
    unless quiet). Returns one result per seed, in the order given, each in `train_one`'s shape with
    "vectorized": how many members trained together (its "seconds" is its share of their time).
    compile_step: compile the batched step (torch.compile; CUDA graphs on CUDA); vectorized only."""
    seeds = list(profile.seeds if seeds is None else seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be distinct integers, got {seeds!r}")
    build = lambda seed: _build(model, data, profile, seed, model_options, tasks, train_overrides)  # noqa: E731
    first = build(seeds[0])
    why = "asked (vectorize=False)" if not vectorize else refusal(first[1], first[0], first[2])
    if why and compile_step:
        raise ValueError(f"compile_step compiles the seed-vectorized step, and these runs are not vectorized: {why}")
    if why:
        if not first[2].quiet and len(seeds) > 1 and vectorize:
            print(f"{model}: training seeds {seeds} one after another ({why})")
        # each seed built just before its fit, as train_one does (the first one already is)
        return [
            _vectorized(_fit_built(model, *(first if i == 0 else build(seed)), on_epoch=on_epoch), 1)
            for i, seed in enumerate(seeds)
        ]
    built = [first, *(build(seed) for seed in seeds[1:])]
    data = first[0]
    results = fit_members(
        [b[1] for b in built], data, [b[2] for b in built], on_epoch=on_epoch, compile_step=compile_step
    )
    return [
        _vectorized(_report(model, data, net, config, result), len(seeds))
        for (_, net, config), result in zip(built, results)
    ]


def _vectorized(result: dict, members: int) -> dict:
    """The result with "vectorized": how many members trained together."""
    result["vectorized"] = members
    return result


def _build(model, data, profile, seed, model_options, tasks, train_overrides):
    """(the data with the run's tasks, the model built under its seed, its TrainConfig)."""
    seed_everything(seed)
    rec = data.kind == "interactions"
    if rec:
        tasks = check_rec_tasks(data, tasks)
        options = {"dim": profile.rec.dim, **(model_options or {})}
        net = build_model(model, data.spec, tasks, **options)
    else:
        if tasks is not None and tuple(tasks) != tuple(data.tasks):
            data = data.select_tasks(tasks)
        net = build_model(model, data.features, data.tasks, **(model_options or {}))
    return data, net, train_config(profile, seed, "rec" if rec else "tabular", **train_overrides)


class RunResult(dict):
    """A run's JSON-shaped result (a dict: `mtlab train --json` writes it) that also holds the trained
    model, with the reported (best-epoch) weights: `result.model` (and its data, `result.data`), and
    `result.save(FILE)` writes it as
    a self-contained model file (`mtlab.load_model`, `python -m mtlab predict`). Pickled (a sweep's
    worker processes), it is the plain dict."""

    def __init__(self, values: dict, model, data, config: TrainConfig):
        super().__init__(values)
        self.model, self.data, self._config = model, data, config

    def save(self, path) -> Path:
        """Write the model, its data's encoding and this run's settings and metrics into `path` (one
        safetensors file, written atomically). Returns the path."""
        training = {
            k: v for k, v in asdict(self._config).items() if isinstance(v, (int, float, str, bool, type(None)))
        } | {"weighting_options": self._config.weighting_options or {}}
        return save_model(path, self.model, self.data, self, training)

    def __reduce__(self):
        return (dict, (dict(self),))


def _report(model: str, data, net, config: TrainConfig, result) -> RunResult:
    """The JSON-shaped result of `mtlab train` (plus the history and preparation log) of a fitted model."""
    rec = data.kind == "interactions"
    device_data = data.to(result.device)
    evaluator = evaluator_for(device_data, config.eval_batch_size)
    last = result.history.iloc[-1] if len(result.history) else {}
    out = {
        "model": model,
        "dataset": data.name,
        "tasks": list(net.tasks),
        "seed": config.seed,
        "test": evaluator(net, device_data, "test") if rec else None,
        "valid": evaluator(net, device_data, "valid"),
        "trainable_params": count_parameters(net),
        "weights": {t: _number(last.get(f"weight_{t}")) for t in net.tasks},  # None: the strategy gives none
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "seconds": result.seconds,
        "device": result.device,
        "history": result.history,
        "preparation": result.preparation,
        "rows": {split: len(data.split(split)) for split in ("train", "valid", "test")},  # after any subsample
    }
    if rec:
        out["warnings"] = rating_warnings(out["test"])
    if not rec:
        out["test"], out["warnings"] = _test_and_warnings(net, device_data, config)
        if data.streamed:  # the first stored batch
            probe = next(iter(data.train.batches(256, shuffle=False)))[0].to(result.device)
        else:
            probe = device_data.train.rows(torch.arange(min(256, len(data.train)), device=result.device))[0]
        out["flops_per_sample"] = flops_per_sample(net, probe)
    return RunResult(out, net, data, config)


def _test_and_warnings(net, data, config: TrainConfig) -> tuple[dict, list[str]]:
    """A tabular model's test metrics and its no-skill warnings (mtlab.train.metrics.no_skill, against
    the training base rates), from one prediction of the test split."""
    labels, probs = labelled_predictions(net, data.test, config.eval_batch_size)
    train = data.train.all_labels()
    rates = torch.nanmean(train.float(), dim=0).cpu().numpy()
    kinds = net.kinds or None
    return task_metrics(labels, probs, net.tasks, kinds), no_skill(labels, probs, net.tasks, rates, kinds)


def rating_warnings(test: dict) -> list[str]:
    """A warning where the rating head predicts the test ratings no better than the training mean does."""
    rating = test.get("rating", {})
    if rating and rating["rmse"] >= rating["rmse_of_training_mean"]:
        return [
            f"task rating: RMSE {rating['rmse']:.4f} is no better than predicting the training mean "
            f"({rating['rmse_of_training_mean']:.4f}): the model learned nothing useful for it; try more epochs "
            "or another learning rate"
        ]
    return []


def _number(value) -> float | None:
    return None if value is None or value != value else float(value)


def load_for_profile(
    dataset: str, tasks: Sequence[str] | None, profile: Profile, seed: int = 0, **options
) -> MultiTaskData | InteractionData:
    """Load a dataset with the profile's subsampling (recommendation data: every interaction)."""
    return load_dataset(dataset, tasks=tasks, subsample=profile.subsample, seed=seed, **options)


__all__ = ["RunResult", "get_profile", "load_for_profile", "train_config", "train_one", "train_seeds"]
