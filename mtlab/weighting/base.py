"""The interface every gradient-combination strategy follows (after LibMTL's split of architecture
from weighting): a strategy sees the per-task losses and the shared parameters, and nothing else.

    strategy.backward(losses, shared, epoch) -> weights [T]

`losses` is a tensor [T] or a sequence of T scalar losses. Prefer the sequence where tasks have
their own parts of the graph: the gradient of one element of a stacked tensor flows back through the
stack into every task's graph (as zeros), so T per-task passes would cost T full backward passes.

It fills `.grad` of every parameter that the losses reach. Loss-weighting strategies weight the
losses and call backward once. Gradient-combination strategies run one backward pass per task; hooks
keep each task's gradient of the shared elements (and stop it there), while every other parameter
accumulates its own task's gradient in the same passes (scaled by `private_scale` where the method's
paper trains the task-specific parameters on a weighted loss). The blocks of task gradients are
combined into one (`combine` on G [T, P]; `GramianCombination.weigh` on the T×T Gramian only), which
is added to the shared elements' `.grad`. `shared` is what the model declares
(`TaskModel.shared_parameters`, or a step's `StepOutput.shared`): whole parameters, `SharedPart`s,
`TableRows`, or a `SharedRepresentation` (rep_grad) (mtlab.sharing). `extra`, an auxiliary loss
outside the tasks (an adversarial term), gets its plain gradient everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from ..sharing import SharedPart, SharedRepresentation, TableRows, parameter_of

STRATEGIES: dict[str, type[Weighting]] = {}


class NonFiniteGradients(ArithmeticError):
    """Task gradients of the shared elements hold inf or NaN (or square to inf): training diverged
    before a combination's solver (an SVD, a QP, a Newton step) could fail on them with its own
    error. `tasks`: positions of the tasks whose gradient is not finite; `member`: the member of a
    seed-vectorized run, else None. The fit loops turn it into their one divergence message."""

    def __init__(self, tasks: list[int], member: int | None = None):
        super().__init__(f"the gradient of task(s) {tasks} is not finite")
        self.tasks, self.member = tasks, member


MAX_GRADIENT_NORM = 1e8
"""A task gradient longer than this counts as diverged. mtlab's losses are means, so a trained model's
task gradients are O(1); solvers square Gramian entries (‖g‖⁴), which overflows float32 from ‖g‖ ≈ 1e9."""


def check_blocks(blocks: list[torch.Tensor], member: int | None = None) -> None:
    """Raise NonFiniteGradients if a task's squared gradient norm ‖g_t‖² = Σ_k ‖G_k[t]‖² (the Gramian's
    diagonal, one pass over the blocks [T, n_k]) is not finite or above MAX_GRADIENT_NORM²."""
    norms = torch.stack([(b.float() * b.float()).sum(dim=1) for b in blocks]).sum(dim=0)
    bad = ~(norms <= MAX_GRADIENT_NORM**2)  # NaN compares False: counted as bad
    if bool(bad.any()):
        raise NonFiniteGradients(bad.nonzero().flatten().tolist(), member)


def register(name: str, title: str):
    """Register a strategy class under `name` (its TrainConfig.weighting) with `title`, the name its
    paper gives it (what tables and the explorer show)."""

    def add(cls):
        if name in STRATEGIES:
            raise ValueError(f"weighting name {name!r} registered twice")
        cls.registry_name, cls.title = name, title
        STRATEGIES[name] = cls
        return cls

    return add


def split_losses(losses) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(the T losses one by one, the losses as a tensor [T])."""
    if isinstance(losses, torch.Tensor):
        return list(losses), losses
    return list(losses), torch.stack(list(losses))


def require_positive(strategy: str, losses: torch.Tensor, hint: str = "") -> None:
    """Strategies that take logs of the losses (or scale by them) need every loss above zero."""
    bad = (losses.detach() <= 0).nonzero().flatten().tolist()  # one small device read a step
    if bad:
        values = ", ".join(f"task {t + 1}: {losses[t].item():.4g}" for t in bad)
        raise ValueError(
            f"{strategy} takes the logarithm of (or scales by) every task loss, so the losses must be "
            f"positive; got {values} (of {len(losses)} tasks, in the model's task order). Use it on "
            f"tasks with positive losses (e.g. cross-entropy), {hint}or choose another strategy"
        )


def differentiable(target) -> torch.Tensor:
    """What gradients are taken on: a TableRows' gathered rows, a representation's leaf, else the
    parameter itself."""
    if isinstance(target, TableRows):
        return target.values
    return parameter_of(target)


def selected(target, full: torch.Tensor) -> torch.Tensor:
    """The shared elements of `full` (a tensor shaped like the target's differentiable tensor),
    flattened."""
    if isinstance(target, SharedPart):
        return full[target.mask.expand_as(full)]
    return full.flatten()


def shared_size(target) -> int:
    """How many shared elements a target holds (without gathering them)."""
    if isinstance(target, SharedPart):
        return int(target.mask.expand_as(target.param).sum())
    return differentiable(target).numel()


def active_targets(shared) -> list:
    """The declared shared items that gradients reach and that hold at least one element."""
    keep = []
    for target in shared:
        if isinstance(target, (TableRows, SharedRepresentation)) or parameter_of(target).requires_grad:
            if shared_size(target):
                keep.append(target)
    return keep


def task_gradients(per_task, targets) -> list[torch.Tensor]:
    """Each task's gradient on the shared elements, one autograd pass per task, leaving every `.grad`
    untouched: per target a block [T, its shared elements]."""
    inputs = [differentiable(t) for t in targets]
    rows = []
    for loss in per_task:
        grads = (
            torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
            if loss.requires_grad
            else [None] * len(inputs)
        )  # a frozen task: no gradient
        rows.append(
            [selected(t, g if g is not None else torch.zeros_like(x)) for g, x, t in zip(grads, inputs, targets)]
        )
    return [torch.stack([row[k] for row in rows]) for k in range(len(targets))]


def task_passes(per_task, inputs, targets=None, scale=None, retain_last: bool = True) -> list[list]:
    """The one hook-and-pass implementation of per-task gradients (gradient combination, PMTRec,
    seed-vectorized training): one backward pass per task t of scale_t · L_t. A hook on each input
    tensor keeps the task's gradient of it (adding up where it is reached twice) and stops it there,
    except a `SharedPart` target's private elements, which flow on; so every parameter beyond the
    inputs accumulates Σ_t scale_t ∇L_t in `.grad` during the same passes, with no extra pass.

    inputs: the tensors whose gradients are kept (`differentiable(target)`; with a leading member
    axis [S, …] in seed-vectorized training, where L_t is the sum of the members' losses of task t).
    targets: what each input stands for (default: the inputs). A task without a graph (a frozen head)
    is skipped. Returns kept[t][k], task t's gradient of input k (unscaled only where scale is None;
    None where the task reaches no element of it). retain_last=False frees the graph with the last pass."""
    targets = inputs if targets is None else targets
    kept = [[None] * len(inputs) for _ in per_task]
    last = max((t for t, loss in enumerate(per_task) if loss.requires_grad), default=-1)
    for t, loss in enumerate(per_task):
        if not loss.requires_grad:
            continue
        hooks = [
            x.register_hook(partial(_keep_shared, kept[t], k, target))
            for k, (x, target) in enumerate(zip(inputs, targets))
        ]
        (loss if scale is None else loss * scale[t]).backward(retain_graph=retain_last or t < last)
        for hook in hooks:
            hook.remove()
    return kept


def accumulating_passes(per_task, targets, scale: torch.Tensor | None = None) -> list[torch.Tensor]:
    """`task_passes` over the declared shared targets: every private parameter accumulates
    Σ_t scale_t ∇L_t in `.grad`. Returns the blocks [T, shared elements] of the unscaled task gradients."""
    inputs = [differentiable(t) for t in targets]
    kept = task_passes(per_task, inputs, targets, scale)
    blocks = []
    for k, (x, target) in enumerate(zip(inputs, targets)):
        rows = [selected(target, row[k] if row[k] is not None else torch.zeros_like(x)) for row in kept]
        block = torch.stack(rows)
        blocks.append(block if scale is None else block / scale.to(block.dtype)[:, None])
    return blocks


def private_pass(total: torch.Tensor, targets) -> None:
    """Backward of `total` with the shared elements' gradient stopped (they get a combined one)."""
    store = [None] * len(targets)
    hooks = [
        differentiable(target).register_hook(partial(_keep_shared, store, k, target))
        for k, target in enumerate(targets)
    ]
    total.backward(retain_graph=True)
    for hook in hooks:
        hook.remove()


def _keep_shared(store: list, k: int, target, grad: torch.Tensor) -> torch.Tensor:
    store[k] = grad if store[k] is None else store[k] + grad  # a tensor reached twice adds up
    if isinstance(target, SharedPart):  # the param's other elements are one task's: let them through
        return grad.masked_fill(target.mask.expand_as(grad), 0)
    return torch.zeros_like(grad)


def add_grad(target, part: torch.Tensor) -> None:
    """Add a combined gradient of a target's shared elements to what `.grad` holds (the private
    elements' own gradients, an auxiliary loss's)."""
    if isinstance(target, SharedRepresentation):
        target.output.backward(part.view_as(target.leaf))
        return
    param = parameter_of(target)
    if isinstance(target, TableRows):
        full = torch.zeros_like(param).index_add_(0, target.index, part.view(len(target.index), *param.shape[1:]))
    elif isinstance(target, SharedPart):
        full = torch.zeros_like(param).masked_scatter_(target.mask.expand_as(param), part)
    else:
        full = part.reshape(param.shape)
    param.grad = full.clone() if param.grad is None else param.grad + full


def set_grad(target, grad: torch.Tensor) -> None:
    """Write a combined gradient into the shared elements' `.grad` (replacing what the plain
    backward left there); every other element keeps its own."""
    param = parameter_of(target)
    if param.grad is None:
        param.grad = torch.zeros_like(param)
    if isinstance(target, TableRows):
        param.grad[target.index] = grad.view(len(target.index), *param.shape[1:])
    elif isinstance(target, SharedPart):
        param.grad[target.mask.expand_as(param)] = grad.flatten()
    else:
        param.grad = grad.reshape(param.shape).clone()


def send_down(shared) -> None:
    """After a plain backward: the representations' gradients go down to the layers below them."""
    for target in shared:
        if isinstance(target, SharedRepresentation) and target.leaf.grad is not None:
            target.output.backward(target.leaf.grad)


class Weighting(nn.Module):
    """Base class; a strategy may own parameters (e.g. UW's log-variances): the trainer optimizes them."""

    kind: str = "own"
    """How the strategy acts, read by `train.capabilities`: "loss" weights the losses (one backward),
    "gradient" combines per-task gradients of the shared elements, "rows" weights per embedding row
    (PMTRec on a recommender), "own" does something else inside its own backward."""
    per_element_state = False  # keeps a running state per shared element (needs the same ones every step)
    per_task_state = False  # keeps a state per task (needs every task's gradient every step)

    def __init__(self, n_tasks: int):
        super().__init__()
        self.n_tasks = n_tasks

    def backward(
        self,
        losses: torch.Tensor,
        shared: Sequence[nn.Parameter | SharedPart | TableRows],
        epoch: int = 0,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError


class LossWeighting(Weighting):
    kind = "loss"

    def weights(self, losses: torch.Tensor, epoch: int) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, losses: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights(losses, epoch)
        return (w * losses).sum(), w

    def backward(self, losses, shared, epoch=0, extra=None):
        total, w = self.loss(split_losses(losses)[1], epoch)
        (total if extra is None else total + extra).backward()
        send_down(shared)
        return w.detach()


class GradientCombination(Weighting):
    """Per-task gradients on the shared elements G [T, P] → one combined gradient [P].

    Every other element gets Σ_t s_t ∇L_t, s_t = `private_scale(losses)` (default 1: the plain sum),
    accumulated during the same per-task passes. Strategies whose paper trains the task-specific
    parameters on Σ_t α_t L_t with α from the combination itself (`private_weighted`, Nash-MTL) take
    the task gradients first and one more weighted pass after.
    """

    kind = "gradient"

    private_weighted = False
    # Set by the fit loop when several processes train together (mtlab.train.distributed): the task
    # gradients are summed over the processes before they are combined, and one process adds the
    # combination to `.grad` (the fit loop then sums every `.grad` over the processes once).
    reduce_blocks = None
    adds_combined = True

    def private_scale(self, losses: torch.Tensor) -> torch.Tensor | None:
        """s_t for the private elements, known before the passes; None = 1."""
        return None

    def combined_losses(self, losses):
        """The losses whose gradients are combined, from the task losses [T] (a tensor or a list of
        scalars): the losses themselves, unless the paper transforms them first (IMTL's learned
        scales). Every path calls it — one run's `backward`, seed-vectorized members
        (train.members), several processes — so a strategy that overrides it is combined alike in all."""
        return losses

    def combine(self, grads: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """G [T, P] and the detached losses [T] → (combined gradient [P], the task weights it
        amounts to [T], or NaNs where it is no weighting of G)."""
        raise NotImplementedError

    def combine_blocks(self, blocks: list[torch.Tensor], losses: torch.Tensor):
        """Per target a block [T, n_k] → (per target its combined part [n_k], weights [T])."""
        combined, weights = self.combine(torch.cat(blocks, dim=1), losses)
        return list(combined.split([b.shape[1] for b in blocks])), weights

    def backward(self, losses, shared, epoch=0, extra=None):
        per_task, losses = split_losses(self.combined_losses(losses))
        if extra is not None:
            extra.backward(retain_graph=True)
        targets = active_targets(shared)
        detached = losses.detach()
        live = [t for t, loss in enumerate(per_task) if loss.requires_grad]
        if not targets or not live:  # nothing shared (Single Task, a one-task model): each task its own gradient
            scale = None if self.private_weighted else self.private_scale(detached)
            total = losses.sum() if scale is None else (scale.to(losses.dtype) * losses).sum()
            if total.requires_grad:
                total.backward()
            return torch.ones_like(detached) if scale is None else scale
        if self.private_weighted:
            blocks = self._reduced(task_gradients(per_task, targets))
            combined, weights = self._combine_live(blocks, detached, live)
            private_pass((weights.detach().to(losses.dtype) * losses).sum(), targets)
        else:
            blocks = self._reduced(accumulating_passes(per_task, targets, self.private_scale(detached)))
            combined, weights = self._combine_live(blocks, detached, live)
        if self.adds_combined:
            for target, part in zip(targets, combined):
                add_grad(target, part)
        return weights

    def _reduced(self, blocks: list[torch.Tensor]) -> list[torch.Tensor]:
        return blocks if self.reduce_blocks is None else self.reduce_blocks(blocks)

    def _combine_live(self, blocks, losses, live: list[int]):
        """Combine the tasks whose loss has a gradient; a task without one (a loss kept for the record,
        such as ESMM's CVR log loss, or a frozen task) takes no part: weight 0, no row of zeros that
        would pull a min-norm method to a zero step."""
        check_blocks(blocks)
        if len(live) == len(losses):
            return self.combine_blocks(blocks, losses)
        if self.per_task_state:
            raise ValueError(
                f"{self.registry_name} keeps a state per task and needs every task's loss to have a "
                f"gradient, but task(s) {[t + 1 for t in range(len(losses)) if t not in live]} have none "
                "(a loss kept for the record, as ESMM's and AITM's cvr); choose another strategy"
            )
        index = torch.tensor(live, device=blocks[0].device)
        combined, weights = self.combine_blocks([b[index] for b in blocks], losses[index.to(losses.device)])
        full = torch.zeros(len(losses), dtype=weights.dtype, device=weights.device)
        full[index.to(weights.device)] = weights
        return combined, full


class GramianCombination(GradientCombination):
    """A strategy that needs only the T×T Gramian GGᵀ of the task gradients: weights w = f(GGᵀ),
    combined gradient wᵀG. The Gramian is summed block by block (Σ_k G_k G_kᵀ over the shared
    tensors) and the combination written block by block: the [T, P] matrix is never concatenated."""

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def combine(self, grads, losses):
        w = self.weigh(grads @ grads.T, losses).to(grads.dtype)
        return w @ grads, w

    def combine_blocks(self, blocks, losses):
        gramian = sum(b @ b.T for b in blocks)
        w = self.weigh(gramian, losses).to(blocks[0].dtype)
        return [w @ b for b in blocks], w


class OwnAdam:
    """A vector a strategy trains with its own Adam, apart from the trainer's optimizer (FAMO's
    logits, Auto-λ's weights): the strategy computes its gradient, not the training loss. Not a
    registered parameter (the trainer's Adam must not step it); the strategy keeps `state_dict()`
    in its extra state, so a checkpoint holds it."""

    def __init__(self, init: torch.Tensor, lr: float, weight_decay: float = 0.0):
        self.lr, self.weight_decay = lr, weight_decay
        self.value = nn.Parameter(init.detach().clone())
        self.adam = torch.optim.Adam([self.value], lr=lr, weight_decay=weight_decay)

    def on(self, device: torch.device) -> OwnAdam:
        if self.value.device != device:
            state = self.state_dict()
            self.value = nn.Parameter(self.value.detach().to(device))
            self.adam = torch.optim.Adam([self.value], lr=self.lr, weight_decay=self.weight_decay)
            self.adam.load_state_dict(state["adam"])  # Adam moves its moments to the parameter's device
        return self

    def step(self, grad: torch.Tensor) -> None:
        self.value.grad = grad.detach().to(self.value)
        self.adam.step()
        self.value.grad = None

    def state_dict(self) -> dict:
        return {"value": self.value.detach().clone(), "adam": self.adam.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.value = nn.Parameter(state["value"].clone())
        self.adam = torch.optim.Adam([self.value], lr=self.lr, weight_decay=self.weight_decay)
        self.adam.load_state_dict(state["adam"])
