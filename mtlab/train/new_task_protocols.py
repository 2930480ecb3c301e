"""Learning a new task T3 next to existing tasks T1, T2 (MPT-Rec Sec. 4.3): full retraining,
fine-tuning on a frozen pre-trained model (Shared Bottom*, MMoE*, PLE*, MPT-Rec prompt tuning) and
MAML (Finn et al., 2017; `mtlab.models.maml`). Every stage trains in the one fit loop.

Every stage sees the same features: the data are loaded once with all three tasks, so T3's column
is out of the features from pre-training on, and the two-task stages use `data.select_tasks`.
"""

from __future__ import annotations

from dataclasses import replace

from ..data.tabular import MultiTaskData
from ..models import build_model
from ..models.maml import MetaLearner
from ..models.new_task_heads import FrozenBaseNewTask, attach_new_task
from .device import seed_everything
from .trainer import FitResult, TrainConfig, fit
from .vectorized import fit_members, refusal


def pretrain(name: str, data: MultiTaskData, config: TrainConfig, **options):
    """Build (seeded) and fit `name` on all tasks of `data`; returns (model, FitResult)."""
    seed_everything(config.seed)
    model = build_model(name, data.features, data.tasks, **options)
    return model, fit(model, data, config)


def pretrain_seeds(name: str, data: MultiTaskData, configs, **options) -> list:
    """`pretrain` for several configs (seeds) of one model: seed-vectorized (`train.vectorized`) where the
    run allows it, else one after another. Returns [(model, FitResult)] in the configs' order."""
    models = []
    for config in configs:
        seed_everything(config.seed)
        models.append(build_model(name, data.features, data.tasks, **options))
    if len(configs) > 1 and refusal(models[0], data, configs[0]) is None:
        return list(zip(models, fit_members(models, data, list(configs))))
    return [(model, fit(model, data, config)) for model, config in zip(models, configs)]


def fine_tune(base, data3: MultiTaskData, config: TrainConfig, **head_options) -> tuple[FrozenBaseNewTask, FitResult]:
    """Freeze `base` (trained on data3's first tasks) and train a head for data3's last task."""
    if tuple(data3.tasks[:-1]) != tuple(base.tasks):
        raise ValueError(
            f"the base predicts {list(base.tasks)}; data3 must hold those tasks and then the new "
            f"one, got {list(data3.tasks)}"
        )
    seed_everything(config.seed)
    model = attach_new_task(base, data3.tasks[-1], **head_options)
    return model, fit(model, data3, config)


def maml(
    data3: MultiTaskData,
    config: TrainConfig,
    backbone: str = "shared_bottom",
    inner_lr: float = 0.05,
    meta_epochs: int = 3,
    **options,
):
    """MAML for the new task: meta-train a one-output `backbone` on the existing tasks (data3's first
    tasks) for `meta_epochs` (each step: a support and a query half of a batch of 2 × batch_size
    rows), then adapt all of it to the new task with `config`. Both phases run in `fit`.
    Returns (model, FitResult of the adaptation)."""
    existing, new = data3.select_tasks(data3.tasks[:-1]), data3.select_tasks(data3.tasks[-1:])
    seed_everything(config.seed)
    model = build_model(backbone, data3.features, new.tasks, **options)
    meta = MetaLearner(model, existing.tasks, inner_lr)
    fit(
        meta,
        existing,
        replace(
            config, epochs=meta_epochs, batch_size=2 * config.batch_size, patience=0, restore_best=False, quiet=True
        ),
    )
    return model, fit(model, new, config)
