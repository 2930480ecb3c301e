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
from tqdm import tqdm

from ..models.base import Step, TaskModel
from ..sharing import SharedPart, SharedRepresentation, TableRows
from ..weighting import build_weighting
from ..weighting.base import (
    GradientCombination,
    LossWeighting,
    NonFiniteGradients,
    members_backward,
)
from .device import resolve_device
from .evaluation import evaluator_for
from .trainer import (
    FitResult,
    TrainConfig,
    check_finite,
    check_monitor,
    history_row,
    nonfinite_gradients,
)

# the settings members may differ in; all others must be equal (one batched model, one data order length)
PER_MEMBER = ("seed", "lr", "weighting_options", "quiet")


def refusal(model, data, config: TrainConfig) -> str | None:
    """Why this run cannot be trained seed-vectorized, or None."""
    if hasattr(data.train, "batches"):
        return "streamed data are read one batch order at a time"
    if config.distributed:
        return "several processes already split each batch"
    if config.rep_grad:
        return "rep_grad combines gradients of each batch's representation"
    if type(model).member_losses is TaskModel.member_losses:
        return f"{type(model).__name__} has no member_losses"
    strategy = build_weighting(config.weighting, len(model.tasks), **config.weighting_options)
    by_rows = hasattr(strategy, "combine_table") and not hasattr(data, "features")  # PMTRec on the recommender
    if not isinstance(strategy, (LossWeighting, GradientCombination)) and not by_rows:
        return f"the {config.weighting} strategy weights inside its own backward"
    if isinstance(strategy, GradientCombination):
        if not hasattr(data, "features"):
            return "gradient combination on the recommender combines per embedding row"
        if any(
            isinstance(t, (SharedPart, TableRows, SharedRepresentation)) for t in model.shared_parameters()
        ) or getattr(model, "preparation", None):
            return f"{type(model).__name__} shares parts of tensors, which members would not share alike"
    return None


def fit_members(models, data, configs, on_epoch=None, compile_step: bool = False) -> list[FitResult]:
    """Train `models` (one per member, each built under its own seed) on `data` as one batched model;
    `configs[s]` is member s's TrainConfig (they may differ in PER_MEMBER only). Returns one FitResult per
    member, its model holding its best (or last) weights, as `fit` would.

    on_epoch(row, strategy): called per member with its history row (which names its `seed`); True
        stops that member.
    compile_step: compile the batched step with torch.compile (on CUDA with CUDA graphs,
        mode="reduce-overhead"): fewer kernel launches once compiled, a compile of tens of seconds first.
    """
    _check_members(models, configs)
    config = configs[0]
    for m, c in zip(models, configs):
        why = refusal(m, data, c)
        if why:
            raise ValueError(
                f"these runs cannot be trained seed-vectorized: {why}; train them one after another "
                "(experiments.train_seeds(..., vectorize=False), or --no-vectorize)"
            )
    device = resolve_device(config.device)
    data = data.to(device)
    start = time.perf_counter()
    preparations = [_prepare(m, data, c, device) for m, c in zip(models, configs)]
    n_members, tasks, n = len(models), tuple(models[0].tasks), len(data.train)
    streams = [_MemberStream(c.seed, device) for c in configs]  # each member's copy of the global stream
    if getattr(models[0], "row_state", False):
        for m, stream in zip(models, streams):
            with stream:
                m.start_rows(n, device)  # drawn first, as a separate run's first step does
    strategies = [build_weighting(c.weighting, len(tasks), **c.weighting_options).to(device) for c in configs]
    params, buffers = stack_module_state(models)  # new tensors [S, …]; the models keep their own
    template = copy.deepcopy(models[0]).to("meta")
    optimizer = _optimizer(template, params, strategies, configs)
    lr = torch.tensor([c.lr for c in configs], device=device) / config.lr
    per_member_lr = bool((lr != 1).any())
    names = {id(p): name for name, p in models[0].named_parameters()}
    shared = (
        [params[names[id(p)]] for p in models[0].shared_parameters() if p.requires_grad]
        if not isinstance(strategies[0], LossWeighting)
        else []
    )
    weights = torch.as_tensor(config.task_weights or [1.0] * len(tasks), dtype=torch.float32, device=device)
    evaluator = evaluator_for(data, config.eval_batch_size)
    monitor = f"valid_{config.monitor or evaluator.default_monitor}"

    shuffles = [torch.Generator().manual_seed(c.seed) for c in configs]
    samplers = [torch.Generator(device=device).manual_seed(c.seed) for c in configs]
    losses_of = _batched_losses(template, data, compile_step and device.type)
    live = [True] * n_members
    held = [None] * n_members  # a stopped member's weights, held still while the others train
    state = [
        {"history": [], "best_score": float("-inf"), "best_epoch": 0, "best_state": None, "bad": 0, "epochs": 0}
        for _ in models
    ]
    steps_per_epoch = -(-n // config.batch_size)
    bar = tqdm(
        range(config.epochs),
        disable=all(c.quiet for c in configs),
        unit="epoch",
        desc=f"{type(models[0]).__name__} {config.weighting} ×{n_members}",
    )
    initial = None
    template.train()  # the members are evaluated on their own modules: the template stays in training mode
    for epoch in bar:
        epoch_start = time.perf_counter()
        orders = torch.stack([torch.randperm(n, generator=g) for g in shuffles]).to(device)  # [S, n]
        loss_sum = torch.zeros(n_members, len(tasks), device=device)
        weight_sum = torch.zeros(n_members, len(tasks), device=device)
        steps = 0
        for step_in_epoch, i in enumerate(range(0, n, config.batch_size)):
            rows = orders[:, i : i + config.batch_size]
            drawn = _stack([m.draw(data, r, g) for m, r, g in zip(models, rows, samplers)])
            progress = (epoch * steps_per_epoch + step_in_epoch) / (config.epochs * steps_per_epoch)
            losses, extra = losses_of(params, buffers, drawn, rows, n, epoch, progress)
            weighted = losses * weights
            optimizer.zero_grad(set_to_none=True)
            if initial is None:  # each member's model at initialization (see trainer.EXPLODED)
                initial = losses.detach().tolist()
            try:
                used = members_backward(strategies, weighted, shared, epoch, extra, lambda s: streams[s])
            except NonFiniteGradients as err:
                raise nonfinite_gradients(
                    err, tasks, epoch + 1, configs[err.member], f"of seed {configs[err.member].seed} "
                ) from None
            before = {k: p.detach().clone() for k, p in params.items()} if per_member_lr else None
            optimizer.step()
            with torch.no_grad():
                if before is not None:  # member s's Adam update scaled by its lr (Adam ran at configs[0]'s)
                    for k, p in params.items():
                        p.copy_(before[k] + lr.view(-1, *[1] * (p.dim() - 1)) * (p - before[k]))
                for s, frozen in enumerate(held):
                    if frozen is not None:
                        for k, p in params.items():
                            p[s] = frozen[k]
            loss_sum += losses.detach() * rows.shape[1]
            weight_sum += used.detach().to(device, torch.float32)
            steps += 1
        train_losses = (loss_sum / n).tolist()
        train_seconds = (time.perf_counter() - epoch_start) / n_members
        for s in range(n_members):
            if not live[s]:
                continue
            check_finite(train_losses[s], tasks, epoch + 1, configs[s], f"of seed {configs[s].seed} ", initial[s])
            _load_member(models[s], params, buffers, s)
            row = history_row(
                epoch + 1, train_losses[s], (weight_sum[s] / steps).tolist(), evaluator(models[s], data, "valid"), tasks
            )
            row["train_seconds"] = train_seconds
            row["seconds"] = (time.perf_counter() - start) / n_members
            row["seed"] = configs[s].seed
            check_monitor(row, monitor, configs[s], f"of seed {configs[s].seed} ")
            member = state[s]
            member["history"].append(row)
            member["epochs"] = epoch + 1
            if row[monitor] > member["best_score"]:
                member.update(
                    best_score=row[monitor],
                    best_epoch=epoch + 1,
                    bad=0,
                    best_state=copy.deepcopy(models[s].state_dict()),
                )
            else:
                member["bad"] += 1
            stop = bool(on_epoch and on_epoch(row, strategies[s]))
            if stop or (configs[s].patience and member["bad"] >= configs[s].patience):
                live[s] = False
                held[s] = {k: p[s].detach().clone() for k, p in params.items()}
        bar.set_postfix(running=sum(live))
        if not any(live):
            break
    bar.close()
    seconds = time.perf_counter() - start
    results = []
    for s, (m, member) in enumerate(zip(models, state)):
        if live[s]:
            _load_member(m, params, buffers, s)
        if configs[s].restore_best and member["best_state"] is not None:
            m.load_state_dict(member["best_state"])
        results.append(
            FitResult(
                m,
                pd.DataFrame(member["history"]),
                member["best_epoch"],
                member["epochs"],
                seconds / n_members,
                str(device),
                strategies[s],
                preparations[s],
                monitor,
            )
        )
    return results


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
    if getattr(model, "preparation", None) and not model.prepared():
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
    return torch.compile(batched, mode=mode, dynamic=False)


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


class _MemberStream:
    """One member's copy of the global random stream (what `torch.manual_seed(seed)` starts in a separate
    run: a strategy's draws, MPT-Rec's first assignment), swapped in around that member's draws."""

    def __init__(self, seed: int, device: torch.device):
        self.cuda = device.type == "cuda"
        with torch.random.fork_rng(devices=[device] if self.cuda else []):
            torch.manual_seed(seed)
            self.cpu = torch.get_rng_state()
            self.gpu = torch.cuda.get_rng_state(device) if self.cuda else None
        self.device, self.saved = device, None

    def __enter__(self):
        self.saved = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.cuda else None)
        torch.set_rng_state(self.cpu)
        if self.cuda:
            torch.cuda.set_rng_state(self.gpu, self.device)

    def __exit__(self, *exc):
        self.cpu = torch.get_rng_state()
        torch.set_rng_state(self.saved[0])
        if self.cuda:
            self.gpu = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(self.saved[1], self.device)
        return False


__all__ = ["PER_MEMBER", "fit_members", "refusal"]
