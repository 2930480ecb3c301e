"""PMTRec (arXiv 2407.21364): task weights per user and per item from gradient norms, with Task
Focusing and Gradient Magnitude Balancing; the unknowns of the paper are options (defaults named),
as `shared/papers/method-notes.md` lays out:

    g[r,t] = ∂L_t/∂E[r]   for every row r of every embedding table (one autograd pass per task)
    n[r,t] = ‖g[r,t]‖₂;   n[r,rec] ← n[r,rec] · α^s                 Task Focusing (epoch s; off: α = 1)
    n̂[r,t] = n[r,t] / mean_t n[r,t]                                  normalization
    w[r,:] = softmax_t(n̂[r,:] / τ)                                   Gradient Magnitude Balancing
           = n̂[r,:] / Σ_t n̂[r,t]                                     (without GMB: proportional)
    E.grad[r] = Σ_t w[r,t] · g[r,t] / n[r,t] · n̄[r]                   rescale="unit" (default): unit
                                                                      directions at the mean magnitude n̄
              = T_r · Σ_t w[r,t] · g[r,t]                             rescale="raw"

where t runs over the T_r tasks whose gradient reaches row r (n[r,t] > 0): a task that never touches
a table (item categories on a user's row) takes no share of that row's weight.

All rows at once (tensors [T, rows, dim]), never a loop over users. Dense parameters (the heads) get
the plain sum of the task gradients. Given `TableRows` (the rows a batch touched, gathered once) and
the losses as a list, there is one backward pass per task, each through that task's own part of the
graph; the dense parameters accumulate their sum during those passes. With task_focusing=False,
balancing=True, a very large τ and rescale="raw", every w is 1/T_r and the update is exactly EW's.
"""

from __future__ import annotations

import torch

from ..sharing import TableRows
from .base import Weighting, register, set_grad, task_passes


@register("pmtrec", "PMTRec")
class PMTRec(Weighting):
    kind = "rows"  # on a recommender: per embedding row (`combine_table`); on tabular data, in its own backward

    def __init__(
        self,
        n_tasks: int,
        alpha: float = 1.1,
        tau: float = 1.0,
        task_focusing: bool = True,
        balancing: bool = True,
        rescale: str = "unit",
        main_task: int = 0,
    ):
        super().__init__(n_tasks)
        if rescale not in ("unit", "raw"):
            raise ValueError(f"rescale must be 'unit' or 'raw', got {rescale!r}")
        self.alpha, self.tau, self.task_focusing, self.balancing = alpha, tau, task_focusing, balancing
        self.rescale, self.main_task = rescale, main_task
        self.last_weights: list[torch.Tensor] = []  # per table: [T, rows touched] of the last step
        self.last_rows: list[torch.Tensor] = []  # per table: the ids of those rows

    def row_weights(self, norms: torch.Tensor, epoch: int) -> torch.Tensor:
        """w [T, R] from the gradient norms n [T, R]. Only the tasks whose gradient reaches a row take
        part in its weights (an item-only task gets no share of a user's row); each column sums to one
        over those tasks."""
        norms = norms.clone()
        if self.task_focusing:
            norms[self.main_task] *= self.alpha**epoch
        reaches = norms > 0
        count = reaches.sum(0, keepdim=True).clamp_min(1)
        normalized = norms / (norms.sum(0, keepdim=True) / count).clamp_min(1e-20)  # n / mean over reaching tasks
        if self.balancing:
            w = torch.softmax((normalized / self.tau).masked_fill(~reaches, float("-inf")), dim=0)
            return torch.nan_to_num(w)  # a row no task reaches: no weight at all
        return normalized / normalized.sum(0, keepdim=True).clamp_min(1e-20)

    def combine_rows(self, grads: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """grads [T, R, d] of the touched rows → (combined [R, d], weights [T, R])."""
        norms = grads.norm(dim=2)  # [T, R]
        w = self.row_weights(norms, epoch)
        count = (norms > 0).sum(0).clamp_min(1)  # tasks reaching each row
        if self.rescale == "raw":
            return torch.einsum("tr,trd->rd", w * count, grads), w
        # Σ_t w·g/n · n̄ (n̄: mean norm of the reaching tasks), without materializing unit directions
        scale = w / norms.clamp_min(1e-20) * (norms.sum(0) / count)
        return torch.einsum("tr,trd->rd", scale, grads), w

    def backward(self, losses, shared, epoch=0, extra=None):
        """`shared`: embedding tables, as `TableRows` or as whole 2-D parameters, combined per row;
        every other parameter gets the plain sum of the task gradients."""
        per_task = list(losses)
        if extra is not None:
            extra.backward(retain_graph=True)
        blocks = [s for s in shared if isinstance(s, TableRows)]
        blocks += [s for s in shared if not isinstance(s, TableRows) and s.requires_grad and s.dim() == 2]
        inputs = [b.values if isinstance(b, TableRows) else b for b in blocks]
        # One backward per task, each through that task's own graph only: the hooks keep the task's gradient
        # of every table's rows and stop it there (the combined one is written below), while the dense
        # parameters accumulate the plain sum over tasks, with no extra backward pass.
        kept = task_passes(per_task, inputs, retain_last=False)
        self.last_weights, self.last_rows = [], []
        for k, block in enumerate(blocks):
            task_grads = torch.stack([g[k] if g[k] is not None else torch.zeros_like(inputs[k]) for g in kept])
            if isinstance(block, TableRows):
                combined, w = self.combine_rows(task_grads, epoch)
                set_grad(block, combined)
                self.last_rows.append(block.index)
                self.last_weights.append(w.detach())
            else:  # a whole table: only the rows some task touched
                block.grad = self.combine_table(task_grads, epoch)
        return self.mean_weights(len(per_task), per_task[0])

    def combine_table(self, grads: torch.Tensor, epoch: int) -> torch.Tensor:
        """grads [T, rows, d] of a whole table → its combined gradient [rows, d]: the rows some task's
        gradient reached are combined (`combine_rows`), the others get zero. Records the rows and
        their weights (`last_rows`, `last_weights`)."""
        touched = grads.abs().sum(dim=(0, 2)) > 0
        combined, w = self.combine_rows(grads[:, touched], epoch)
        full = torch.zeros_like(grads[0])
        full[touched] = combined
        self.last_rows.append(touched.nonzero().squeeze(1))
        self.last_weights.append(w.detach())
        return full

    def mean_weights(self, n_tasks: int, like: torch.Tensor) -> torch.Tensor:
        """The step's weights [T]: the mean over the rows two or more tasks reach, where weighting happens
        (a row one task reaches keeps that task's gradient, weight 1), so a separate run (the batch's
        `TableRows`) and a seed-vectorized one (whole tables) report the same mean; ones when no row is."""
        weights = torch.cat([w for w in self.last_weights if w.shape[1]] or [like.new_zeros(n_tasks, 0)], 1)
        shared = weights[:, (weights > 0).sum(0) >= 2]
        return shared.mean(1) if shared.shape[1] else like.new_ones(n_tasks)
