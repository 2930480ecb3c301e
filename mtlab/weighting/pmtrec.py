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
              = T · Σ_t w[r,t] · g[r,t]                               rescale="raw"

All rows at once (tensors [T, rows, dim]), never a loop over users. Dense parameters (the heads) get
the plain sum of the task gradients. With task_focusing=False, balancing=True, a very large τ and
rescale="raw", every w is 1/T and the update is exactly EW's.
"""

from __future__ import annotations

import torch

from .base import Weighting, register


@register("pmtrec")
class PMTRec(Weighting):
    def __init__(self, n_tasks: int, alpha: float = 1.1, tau: float = 1.0, task_focusing: bool = True,
                 balancing: bool = True, rescale: str = "unit", main_task: int = 0):
        super().__init__(n_tasks)
        if rescale not in ("unit", "raw"):
            raise ValueError(f"rescale must be 'unit' or 'raw', got {rescale!r}")
        self.alpha, self.tau, self.task_focusing, self.balancing = alpha, tau, task_focusing, balancing
        self.rescale, self.main_task = rescale, main_task
        self.last_weights: list[torch.Tensor] = []  # per table: [T, rows touched] of the last step

    def row_weights(self, norms: torch.Tensor, epoch: int) -> torch.Tensor:
        """w [T, R] from the gradient norms n [T, R] (columns sum to one)."""
        norms = norms.clone()
        if self.task_focusing:
            norms[self.main_task] *= self.alpha ** epoch
        normalized = norms / norms.mean(0, keepdim=True).clamp_min(1e-20)
        if self.balancing:
            return torch.softmax(normalized / self.tau, dim=0)
        return normalized / normalized.sum(0, keepdim=True).clamp_min(1e-20)

    def combine_rows(self, grads: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """grads [T, R, d] of the touched rows → (combined [R, d], weights [T, R])."""
        norms = grads.norm(dim=2)  # [T, R]
        w = self.row_weights(norms, epoch)
        if self.rescale == "raw":
            return len(grads) * torch.einsum("tr,trd->rd", w, grads), w
        units = grads / norms.clamp_min(1e-20)[..., None]
        return torch.einsum("tr,trd->rd", w, units) * norms.mean(0)[:, None], w

    def backward(self, losses, shared, epoch=0):
        """`shared`: the embedding tables (the 2-D ones are combined per row); every other parameter gets
        the plain sum."""
        tables = [p for p in shared if p.requires_grad and p.dim() == 2]
        per_task = [torch.autograd.grad(losses[t], tables, retain_graph=True, allow_unused=True)
                    for t in range(len(losses))]
        losses.sum().backward()  # dense parameters: the plain sum
        self.last_weights = []
        for k, table in enumerate(tables):
            grads = torch.stack([g[k] if g[k] is not None else torch.zeros_like(table) for g in per_task])
            touched = grads.abs().sum(dim=(0, 2)) > 0
            combined, w = self.combine_rows(grads[:, touched], epoch)
            table.grad = torch.zeros_like(table)
            table.grad[touched] = combined
            self.last_weights.append(w.detach())
        return torch.stack([w.mean(1) for w in self.last_weights]).mean(0) if self.last_weights else losses.new_ones(len(losses))
