"""What the tasks do to each other, measured during training: at a few steps an epoch (default one),
each task's gradient on what the model shares (the same elements a strategy combines), from the
step's own graph, before the strategy's backward, so the measurement changes nothing the training
does (no extra forward, no random draw). Per epoch, into the history row:

    cos_<a>|<b>        mean cosine of tasks a's and b's gradients over the measured steps
    conflict_<a>|<b>   fraction of the measured steps where that cosine is below 0
    cos_mean, conflict_mean, conflict_any   over all pairs: the mean cosine; the mean conflict
                       fraction; the fraction of steps with a conflict in any pair
    grad_norm_<t>, norm_ratio   mean gradient norm per task; mean of max/min norm over the tasks
    gate_<gate>_<g>_e<k>, gate_entropy_<gate>_<g>   for mixture-of-experts models: the mean weight a
                       gate gives expert k (g: the task it serves, or its index) and the mean entropy
                       of its weights (log E: uniform; 0: one expert)

The weights the strategy gave are the history's weight_<t> columns. Cost: T backward passes at each
measured step (the step's own pass is the strategy's).
"""

from __future__ import annotations

import torch

from ..models.layers import Gate
from ..weighting.base import active_targets, split_losses, task_gradients


def measured_steps(per_epoch: int, steps_per_epoch: int) -> set[int]:
    """`per_epoch` step indices spread evenly over an epoch (the first always among them)."""
    if per_epoch <= 0:
        return set()
    count = min(per_epoch, steps_per_epoch)
    return {k * steps_per_epoch // count for k in range(count)}


class GradientProbe:
    def __init__(self, model: torch.nn.Module, tasks, reduce_blocks=None):
        self.tasks = tuple(tasks)
        self.reduce_blocks = reduce_blocks  # several processes: sum their shares of the task gradients
        self.gates = [(path, module) for path, module in model.named_modules() if isinstance(module, Gate)]
        self.reset()

    def reset(self) -> None:
        self.cosines, self.norms = [], []
        self.gate_means = {path: [] for path, _ in self.gates}  # per gate: per measured step [G, E]
        self.gate_entropies = {path: [] for path, _ in self.gates}  # per gate: per measured step [G]

    def record_gates(self, on: bool) -> None:
        for _, gate in self.gates:
            gate.record, gate.last = on, None

    def measure(self, losses, shared) -> None:
        """One measured step: call after the forward, before the strategy's backward."""
        per_task, _ = split_losses(losses)
        targets = active_targets(shared)
        if targets and len(per_task) >= 2:
            blocks = task_gradients(per_task, targets)
            blocks = blocks if self.reduce_blocks is None else self.reduce_blocks(blocks)
            gramian = sum(b @ b.T for b in blocks).double()
            norms = gramian.diagonal().clamp_min(0).sqrt()
            self.cosines.append(gramian / torch.outer(norms, norms).clamp_min(1e-30))
            self.norms.append(norms)
        for path, gate in self.gates:
            if gate.last is not None:
                w = gate.last.double()
                self.gate_means[path].append(w.mean(1))
                self.gate_entropies[path].append(-(w * w.clamp_min(1e-30).log()).sum(-1).mean(1))
        self.record_gates(False)

    def summary(self) -> dict:
        """The epoch's columns (see the module docstring); {} when nothing was measured."""
        row: dict = {}
        if self.cosines:
            cos, norms = torch.stack(self.cosines).cpu(), torch.stack(self.norms).cpu()  # [S, T, T], [S, T]
            pairs = [(i, j) for i in range(len(self.tasks)) for j in range(i + 1, len(self.tasks))]
            for i, j in pairs:
                name = f"{self.tasks[i]}|{self.tasks[j]}"
                row[f"cos_{name}"] = cos[:, i, j].mean().item()
                row[f"conflict_{name}"] = (cos[:, i, j] < 0).double().mean().item()
            upper = torch.stack([cos[:, i, j] for i, j in pairs], 1)  # [S, pairs]
            row["cos_mean"] = upper.mean().item()
            row["conflict_mean"] = (upper < 0).double().mean().item()
            row["conflict_any"] = (upper < 0).any(1).double().mean().item()
            for t, task in enumerate(self.tasks):
                row[f"grad_norm_{task}"] = norms[:, t].mean().item()
            reached = norms.clamp_min(1e-30)
            row["norm_ratio"] = (reached.max(1).values / reached.min(1).values).mean().item()
        for path, measured in self.gate_means.items():
            if measured:
                means = torch.stack(measured).mean(0).cpu()  # [G, E]
                entropy = torch.stack(self.gate_entropies[path]).mean(0).cpu()  # [G]
                labels = self.tasks if len(means) == len(self.tasks) else [str(i) for i in range(len(means))]
                for label, weights, h in zip(labels, means, entropy):
                    for e, value in enumerate(weights.tolist()):
                        row[f"gate_{path}_{label}_e{e}"] = value
                    row[f"gate_entropy_{path}_{label}"] = h.item()
        self.reset()
        return row
