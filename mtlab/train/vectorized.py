"""Seed-vectorized training: S runs of one architecture that differ only in their seed (initialization,
data order, sampled negatives, a strategy's random draws), learning rate and weighting options, trained
as one batched model.

Every parameter gets a leading member dimension (`torch.func.stack_module_state`), and one step is the
model's own single-run code (`TaskModel.member_losses`) mapped over the members by `torch.func.vmap`
around `functional_call`: each of the model's kernels then does S members' work (a linear layer of
the experts becomes one larger batched matmul). The alternative — a member dimension in every batched
layer of `models/layers.py` — would have to be written again in each model family (MF's gathers,
Sparse Sharing's masks, MPT-Rec's adversary), where vmap takes each model's own code unchanged: one
path, and a separate run and a member compute the same thing by construction.

Members share no parameter, so one backward of the sum of the members' losses gives each its own
gradient; Adam is elementwise, so one optimizer over the stacked tensors keeps each member's own
moments. What a run draws at random is drawn per member outside the batched computation, each from
that member's own generators, in the order its separate run draws it: the batch order (`shuffle`),
negatives and links (`model.draw` with the sampler), and the strategy's draws (each member's own copy
of the global stream). A member then equals the separate run of its seed up to floating-point
reassociation (tests/test_vectorized.py measures it). Each member keeps its own strategy (state and
all), validation, early stopping and best weights; a stopped member's weights are held still while
the others go on.

Not vectorized (`refusal` says why; `experiments.train_seeds` then trains the seeds one after another):
streamed data, several processes, rep_grad, PMTRec on tabular data, gradient combination on a model that shares parts of tensors or embedding rows (Sparse
Sharing after its search, MF), and checkpoints (a sweep resumes per job instead). Dropout (off in every
profile) draws under vmap from one stream for all members, so it would not repeat a separate run's.
Gradient diagnostics are not measured.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import pandas as pd
import torch
from torch.func import functional_call, stack_module_state, vmap

from ..data.sources import InMemoryRows
from ..models.base import Step
from ..weighting import build_weighting
from ..weighting.base import NonFiniteGradients
from .capabilities import capabilities
from .config import FitResult, TrainConfig, nonfinite_gradients
from .device import resolve_device
from .evaluation import evaluator_for
from .loop import EpochStats, MemberRecord, RandomStream, run_epochs
from .members import members_backward

# the settings members may differ in; all others must be equal (one batched model, one data order length)
PER_MEMBER = ("seed", "lr", "weighting_options", "quiet")


def refusal(model, data, config: TrainConfig) -> str | None:
    """Why this run cannot be trained seed-vectorized, or None (`train.capabilities`)."""
    return capabilities(model, data, config).vectorize


def fit_members(models, data, configs, on_epoch=None, compile_step: bool = False) -> list[FitResult]:
    """Train `models` (one per member, each built under its own seed) on `data` as one batched model
    through the one epoch loop (`train.loop.run_epochs` with a `StackedLearner`); `configs[s]` is member
    s's TrainConfig (they may differ in PER_MEMBER only). Returns one FitResult per member, its model
    holding its best (or last) weights, as `fit` would.

    on_epoch(row, strategy): called per member with its history row (which names its `seed`); True
        stops that member.
    compile_step: compile the batched step with torch.compile (on CUDA with CUDA graphs,
        mode="reduce-overhead"): fewer kernel launches once compiled, a compile of tens of seconds first.
    """
    _check_members(models, configs)
    for m, c in zip(models, configs):
        why = refusal(m, data, c)
        if why:
            raise ValueError(
                f"these runs cannot be trained seed-vectorized: {why}; train them one after another "
                "(experiments.train_seeds(..., vectorize=False), or --no-vectorize)"
            )
    start = time.perf_counter()
    learner = StackedLearner(models, data, configs, compile_step)
    records = [MemberRecord(seconds=(time.perf_counter() - start) / len(models)) for _ in models]
    run_epochs(learner, learner.monitor, records, on_epoch)
    return [
        FitResult(
            m,
            pd.DataFrame(r.history),
            r.best_epoch,
            r.epoch,
            r.seconds,
            str(learner.device),
            learner.strategies[s],
            learner.preparations[s],
            learner.monitor,
        )
        for s, (m, r) in enumerate(zip(models, records))
    ]


class StackedLearner:
    """S members of one architecture for `run_epochs`: parameters stacked along a leading member axis,
    one optimizer over them, each member's own strategy, generators and global random stream."""

    def __init__(self, models, data, configs, compile_step: bool = False):
        config = configs[0]
        self.configs, self.size = list(configs), len(models)
        self.device = device = resolve_device(config.device)
        self.data = data = data.to(device)
        self.models = models
        self.preparations = [_prepare(m, data, c, device) for m, c in zip(models, configs)]
        self.tasks = tasks = tuple(models[0].tasks)
        self.source = InMemoryRows(data.train)
        n = len(self.source)
        self.streams = [RandomStream(c.seed, device) for c in configs]  # each member's copy of the global stream
        if models[0].row_state:
            for m, stream in zip(models, self.streams):
                with stream:
                    m.start_rows(n, device)  # drawn first, as a separate run's first step does
        self.strategies = [build_weighting(c.weighting, len(tasks), **c.weighting_options).to(device) for c in configs]
        self.params, self.buffers = stack_module_state(models)  # new tensors [S, …]; the models keep their own
        template = copy.deepcopy(models[0]).to("meta")
        self.optimizer = _optimizer(template, self.params, self.strategies, configs)
        self.lr = torch.tensor([c.lr for c in configs], device=device) / config.lr
        self.per_member_lr = bool((self.lr != 1).any())
        names = {id(p): name for name, p in models[0].named_parameters()}
        self.shared = (
            [self.params[names[id(p)]] for p in models[0].shared_parameters() if p.requires_grad]
            if self.strategies[0].kind != "loss"
            else []
        )
        self.weights = torch.as_tensor(config.task_weights or [1.0] * len(tasks), dtype=torch.float32, device=device)
        self.evaluator = evaluator_for(data, config.eval_batch_size)
        self.monitor = f"valid_{config.monitor or self.evaluator.default_monitor}"
        self.shuffles = [torch.Generator().manual_seed(c.seed) for c in configs]
        self.samplers = [torch.Generator(device=device).manual_seed(c.seed) for c in configs]
        self.losses_of = _batched_losses(template, data, compile_step and device.type)
        self.held = [None] * self.size  # a stopped member's weights, held still while the others train
        self.description = f"{type(models[0]).__name__} {config.weighting} ×{self.size}"
        template.train()  # the members are evaluated on their own modules: the template stays in training mode

    def train_epoch(self, epoch: int, first: bool) -> EpochStats:
        config, device, n, params = self.configs[0], self.device, len(self.source), self.params
        steps_per_epoch = -(-n // config.batch_size)
        orders = torch.stack([self.source.order(g) for g in self.shuffles]).to(device)  # [S, n]
        loss_sum = torch.zeros(self.size, len(self.tasks), device=device)
        weight_sum = torch.zeros(self.size, len(self.tasks), device=device)
        steps, first_losses = 0, None
        for step_in_epoch, i in enumerate(range(0, n, config.batch_size)):
            rows = orders[:, i : i + config.batch_size]
            drawn = _stack([m.draw(self.data, r, g) for m, r, g in zip(self.models, rows, self.samplers)])
            progress = (epoch * steps_per_epoch + step_in_epoch) / (config.epochs * steps_per_epoch)
            losses, extra = self.losses_of(params, self.buffers, drawn, rows, n, epoch, progress)
            weighted = losses * self.weights
            self.optimizer.zero_grad(set_to_none=True)
            if first and first_losses is None:  # each member's model at initialization (see config.EXPLODED)
                first_losses = losses.detach().tolist()
            try:
                used = members_backward(self.strategies, weighted, self.shared, epoch, extra, lambda s: self.streams[s])
            except NonFiniteGradients as err:
                member = self.configs[err.member]
                raise nonfinite_gradients(err, self.tasks, epoch + 1, member, f"of seed {member.seed} ") from None
            before = {k: p.detach().clone() for k, p in params.items()} if self.per_member_lr else None
            self.optimizer.step()
            with torch.no_grad():
                if before is not None:  # member s's Adam update scaled by its lr (Adam ran at configs[0]'s)
                    for k, p in params.items():
                        p.copy_(before[k] + self.lr.view(-1, *[1] * (p.dim() - 1)) * (p - before[k]))
                for s, frozen in enumerate(self.held):
                    if frozen is not None:
                        for k, p in params.items():
                            p[s] = frozen[k]
            loss_sum += losses.detach() * rows.shape[1]
            weight_sum += used.detach().to(device, torch.float32)
            steps += 1
        return EpochStats((loss_sum / n).tolist(), (weight_sum / steps).tolist(), first_losses)

    def model(self, s: int) -> torch.nn.Module:
        _load_member(self.models[s], self.params, self.buffers, s)
        return self.models[s]

    def validate(self, s: int) -> dict:
        return self.evaluator(self.models[s], self.data, "valid")

    def strategy(self, s: int) -> torch.nn.Module:
        return self.strategies[s]

    def row_fields(self, s: int) -> tuple[dict, dict]:
        return {}, {"seed": self.configs[s].seed}

    def run_name(self, s: int) -> str:
        return f"of seed {self.configs[s].seed} "

    def hold(self, s: int) -> None:
        self.held[s] = {k: p[s].detach().clone() for k, p in self.params.items()}

    def save(self, records) -> None:
        pass  # seed-vectorized runs keep no checkpoint: a sweep resumes per job


def _check_members(models, configs) -> None:
    if not models or len(models) != len(configs):
        raise ValueError(f"fit_members needs one config per model; got {len(models)} models, {len(configs)} configs")
    kinds = {(type(m).__name__, repr(m.config()), tuple(m.tasks)) for m in models}
    if len(kinds) > 1:
        raise ValueError(f"members must be one architecture with the same options and tasks; got {sorted(kinds)}")
    common = lambda c: {k: v for k, v in vars(c).items() if k not in PER_MEMBER}  # noqa: E731
    for c in configs[1:]:
        if common(c) != common(configs[0]):
            diff = sorted(k for k in common(c) if common(c)[k] != common(configs[0])[k])
            raise ValueError(f"members may differ only in {', '.join(PER_MEMBER)}; these differ too: {diff}")
    seeds = [c.seed for c in configs]
    if len(set(seeds)) != len(seeds) and all(
        c.lr == configs[0].lr and c.weighting_options == configs[0].weighting_options for c in configs
    ):
        raise ValueError(f"two members are the same run (seeds {seeds}); give each its own seed")


def _prepare(model, data, config: TrainConfig, device):
    """The model's preparation phase (Sparse Sharing's subnet search), run per member first, as `fit` does."""
    model.to(device)
    if model.preparation and not model.prepared():
        from . import PREPARATIONS

        return PREPARATIONS[model.preparation](model, data, replace(config, quiet=True))
    return None


def _optimizer(template, params: dict, strategies, configs) -> torch.optim.Adam:
    """`optimizer_for`'s groups (L2 on embedding tables apart from the dense parameters) over the
    stacked tensors, and each member's strategy parameters (UW) without decay at its own lr."""
    config = configs[0]
    embedding = {
        f"{prefix}.weight".lstrip(".")
        for prefix, module in template.named_modules()
        if isinstance(module, torch.nn.Embedding)
    }
    trained = {k: p for k, p in params.items() if p.requires_grad}
    groups = [
        {"params": [p for k, p in trained.items() if k in embedding], "weight_decay": config.l2_embedding},
        {"params": [p for k, p in trained.items() if k not in embedding], "weight_decay": config.l2_dense},
        *({"params": list(s.parameters()), "weight_decay": 0.0, "lr": c.lr} for s, c in zip(strategies, configs)),
    ]
    fused = True if next(iter(params.values())).is_cuda else None
    return torch.optim.Adam([g for g in groups if g["params"]], lr=config.lr, fused=fused)


def _batched_losses(template, data, compile_on: str | bool):
    """f(params, buffers, drawn, rows, n, epoch, progress) -> (losses [S, T], extra [S] or None): the
    model's `member_losses` mapped over the members."""
    step = _MemberStep(template)

    def one(p, b, drawn, rows, n, epoch, progress):
        out, extra = functional_call(
            step,
            ({f"model.{k}": v for k, v in p.items()}, {f"model.{k}": v for k, v in b.items()}),
            (data, drawn, Step(rows, n, epoch, progress)),
        )
        return out, (extra if extra is not None else out.new_zeros(()))

    def batched(params, buffers, drawn, rows, n, epoch, progress):
        losses, extra = vmap(one, in_dims=(0, 0, 0, 0, None, None, None), randomness="different")(
            params, buffers, drawn, rows, n, epoch, progress
        )
        return losses, (extra if extra.requires_grad else None)

    if not compile_on:
        return batched
    mode = "reduce-overhead" if compile_on == "cuda" else None  # CUDA graphs on CUDA
    compiled = torch.compile(batched, mode=mode, dynamic=False)

    def compiled_step(params, buffers, drawn, rows, n, epoch, progress):
        # A Python number argument is specialized: a new progress every step was a new compile every step.
        # A model with a schedule reads them as 0-dim tensors (data, not constants: one compile); one
        # without never reads them, so they are constants.
        if template.schedule:
            epoch = torch.tensor(epoch, device=rows.device)
            progress = torch.tensor(progress, dtype=torch.float64, device=rows.device)
            return compiled(params, buffers, drawn, rows, n, epoch, progress)
        return compiled(params, buffers, drawn, rows, n, 0, 0.0)

    return compiled_step


class _MemberStep(torch.nn.Module):
    """functional_call calls `forward`: this one is the model's `member_losses`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, data, drawn, step):
        return self.model.member_losses(data, drawn, step)


def _stack(drawn: list):
    if isinstance(drawn[0], dict):
        return {k: torch.stack([d[k] for d in drawn]) for k in drawn[0]}
    return torch.stack(drawn)


def _load_member(model, params: dict, buffers: dict, s: int) -> None:
    """Copy member s's slice of the stacked tensors into its own module (to evaluate or return it)."""
    with torch.no_grad():
        for own, stacked in ((dict(model.named_parameters()), params), (dict(model.named_buffers()), buffers)):
            for k, tensor in stacked.items():
                own[k].copy_(tensor[s])


__all__ = ["PER_MEMBER", "StackedLearner", "fit_members", "refusal"]
