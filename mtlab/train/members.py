"""Seed-vectorized backward: S members' losses from one batched graph, each weighted or combined by its
own strategy (`members_backward`), the per-task passes shared with single runs (`weighting.base.task_passes`).
Training-loop code: the strategies themselves stay in `mtlab.weighting`, which sees losses and shared
elements only."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from ..weighting.base import Weighting, check_blocks, private_pass, task_passes


def members_backward(
    strategies: Sequence[Weighting],
    losses: torch.Tensor,
    stacked: Sequence[torch.Tensor],
    epoch: int = 0,
    extra: torch.Tensor | None = None,
    member_random=None,
) -> torch.Tensor:
    """Seed-vectorized training (`mtlab.train.vectorized`): S members' losses [S, T] from one batched
    graph, member s weighted or combined by its own strategy `strategies[s]`; fills every `.grad`.
    Returns the weights [S, T].

    `stacked`: the shared parameters as stacked tensors [S, …] (slice s is member s's). Members share
    no parameter, so one backward of Σ_s (member s's total) gives each its own gradient. Loss
    weighting: one backward. Gradient combination: one pass per task over the S members at once, hooks
    keeping the task's gradient of the stacked shared tensors; then each member's blocks [T, n_k] are
    combined by its strategy (`combine_blocks`, a Python loop over the S members of a few small ops)
    and written into its slice. `member_random(s)`: a context giving member s its own random stream."""
    random = member_random or (lambda s: contextlib.nullcontext())
    first, detached = strategies[0], losses.detach()
    if first.kind == "loss":
        totals, weights = [], []
        for s, strategy in enumerate(strategies):
            with random(s):
                total, w = strategy.loss(losses[s], epoch)
            totals.append(total)
            weights.append(w.detach())
        total = torch.stack(totals).sum()
        (total if extra is None else total + extra.sum()).backward()
        return torch.stack(weights)
    if extra is not None:
        extra.sum().backward(retain_graph=True)
    if first.kind == "rows":
        return _members_by_rows(strategies, losses, stacked, epoch)
    if first.kind != "gradient":
        raise ValueError(f"{first.registry_name} weights in its own backward; train the seeds one after another")
    # each member's losses as its strategy combines them (IMTL: its learned scales), as one run's backward does
    losses = torch.stack([_stacked(strategy.combined_losses(losses[s])) for s, strategy in enumerate(strategies)])
    detached = losses.detach()
    n_tasks = losses.shape[1]
    scales = [
        None if first.private_weighted else strategy.private_scale(detached[s]) for s, strategy in enumerate(strategies)
    ]  # s_t for the private elements; None = 1
    scale = (
        None
        if all(x is None for x in scales)
        else torch.stack(
            [torch.ones(n_tasks, device=losses.device) if x is None else x.to(losses.device) for x in scales]
        ).to(losses.dtype)
    )  # [S, T]
    if not stacked:  # nothing shared: each task its own gradient (scaled as the strategy's private elements)
        (losses if scale is None else scale * losses).sum().backward()
        return torch.ones_like(detached) if scale is None else scale
    kept = _task_passes(losses if scale is None else losses * scale, stacked)  # private elements: scaled sums
    weights, private = [], []
    for s, strategy in enumerate(strategies):
        blocks = [
            torch.stack(
                [
                    (kept[t][k][s] if kept[t][k] is not None else torch.zeros_like(x[s])).flatten()
                    for t in range(n_tasks)
                ]
            )
            for k, x in enumerate(stacked)
        ]
        if scale is not None:
            blocks = [b / scale[s][:, None] for b in blocks]
        check_blocks(blocks, s)
        with random(s):
            combined, w = strategy.combine_blocks(blocks, detached[s])
        for x, part in zip(stacked, combined):
            if x.grad is None:
                x.grad = torch.zeros_like(x)
            x.grad[s] += part.view_as(x[s])
        weights.append(w)
        if first.private_weighted:
            private.append((w.detach().to(losses.dtype) * losses[s]).sum())
    if private:
        private_pass(torch.stack(private).sum(), stacked)
    return torch.stack(weights)


def _stacked(losses) -> torch.Tensor:
    return losses if isinstance(losses, torch.Tensor) else torch.stack(list(losses))


def _task_passes(losses: torch.Tensor, stacked) -> list[list]:
    """One backward per task over every member at once (`weighting.base.task_passes` on the stacked
    shared tensors): kept[t][k] is task t's gradient of stacked tensor k [S, …], None where it reaches none."""
    return task_passes([losses[:, t].sum() for t in range(losses.shape[1])], list(stacked))


def _members_by_rows(strategies, losses: torch.Tensor, tables, epoch: int) -> torch.Tensor:
    """A strategy that weights per embedding row (PMTRec's `combine_table`) on whole stacked tables
    [S, rows, dim], per member and table. A row one task reaches keeps that task's gradient (weight 1,
    its own magnitude), so this equals the separate run's combination on the rows two or more tasks
    read (`TableRows`)."""
    kept = _task_passes(losses, tables)
    weights = []
    for s, strategy in enumerate(strategies):
        strategy.last_weights, strategy.last_rows = [], []
        for k, table in enumerate(tables):
            grads = torch.stack([g[k][s] if g[k] is not None else torch.zeros_like(table[s]) for g in kept])
            if table.grad is None:
                table.grad = torch.zeros_like(table)
            table.grad[s] = strategy.combine_table(grads, epoch)
        weights.append(strategy.mean_weights(losses.shape[1], losses))
    return torch.stack(weights)


__all__ = ["members_backward"]
