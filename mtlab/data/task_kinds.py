"""The kinds of task a tabular dataset offers, and what each brings: its head width, its loss, its
prediction and its metrics, in one place.

=========== ===== =========================================== ======================= ==============
kind        width loss on the logits z                        prediction              metrics (↑/↓)
=========== ===== =========================================== ======================= ==============
binary      1     BCE(z, y), y ∈ {0, 1}                       σ(z)                    AUC ↑, log loss ↓
regression  1     (z − ỹ)², ỹ = (y − μ) / σ (training split)  μ + σ·z (target units)  RMSE ↓, MAE ↓
multiclass  K     CE(softmax(z), k), k ∈ {0 … K−1}            softmax(z) [K]          accuracy ↑, macro-F1 ↑, log loss ↓
=========== ===== =========================================== ======================= ==============

Labels are one float column per task (`TabularSplit.labels` [N, T]): the binary label, the
*standardized* regression target, or the class index; NaN means "no label on this row" for every
kind. Early stopping on a mean over tasks needs one scale for all kinds: each task also gets a
`score` (higher is better, 1 is perfect): AUC (binary), R² = 1 − MSE / σ² with σ the training
split's standard deviation (regression) and accuracy (multiclass); mixed-kind data monitor
`score_mean` (docs/data.md, "Task kinds").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

KINDS = ("binary", "regression", "multiclass")
METRICS = {  # each kind's metrics, and whether higher is better (Δm's sign, LibMTL's count_improvement)
    "binary": {"auc": True, "logloss": False},
    "regression": {"rmse": False, "mae": False},
    "multiclass": {"accuracy": True, "macro_f1": True, "logloss": False},
}


@dataclass(frozen=True)
class TaskKind:
    """What one task predicts. `classes`: a multi-class task's class names (label k is classes[k]);
    `mean`, `std`: a regression target's mean and standard deviation on the training split (its labels
    are stored standardized, its predictions and RMSE / MAE given back in the target's units);
    `positive`: what label 1 of a binary task means."""

    kind: str = "binary"
    classes: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0
    positive: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown task kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.kind == "multiclass" and len(self.classes) < 2:
            raise ValueError(f"a multiclass task needs at least two classes, got {list(self.classes)}")
        if not self.std > 0:
            raise ValueError(f"a regression target's std must be positive, got {self.std}")

    @property
    def width(self) -> int:
        """The number of logits the task's head gives: K for a multi-class task, else 1."""
        return len(self.classes) if self.kind == "multiclass" else 1

    @property
    def metrics(self) -> dict[str, bool]:
        return METRICS[self.kind]

    def describe(self) -> str:
        if self.kind == "multiclass":
            return f"multiclass, {len(self.classes)} classes"
        if self.kind == "regression":
            return f"regression, mean {self.mean:.4g}, std {self.std:.4g}"
        return "binary" + (f", 1 = {self.positive}" if self.positive else "")

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "classes": list(self.classes),
            "mean": self.mean,
            "std": self.std,
            "positive": self.positive,
        }

    @classmethod
    def from_json(cls, value: dict) -> TaskKind:
        return cls(
            value["kind"],
            tuple(value.get("classes", ())),
            value.get("mean", 0.0),
            value.get("std", 1.0),
            value.get("positive", ""),
        )


BINARY = TaskKind()
# the metric a summary shows for a task of each kind: the kind's first (AUC, RMSE, accuracy)
MAIN_METRICS = tuple(next(iter(metrics)) for metrics in METRICS.values())


def main_metric_of(available) -> str:
    """The metric shown for a task that has the metrics named in `available`: the first of
    MAIN_METRICS it has (AUC where it has none)."""
    return next((m for m in MAIN_METRICS if m in available), "auc")


def all_binary(kinds) -> bool:
    return all(k.kind == "binary" for k in kinds)


def columns(kinds) -> list[slice]:
    """Each task's columns in the logits [B, Σ width] (one column per binary or regression task)."""
    out, start = [], 0
    for kind in kinds:
        out.append(slice(start, start + kind.width))
        start += kind.width
    return out


def task_losses(logits: torch.Tensor, labels: torch.Tensor, kinds=None) -> torch.Tensor:
    """Mean loss per task: logits [B, Σ width] and labels [B, T] → [T] (BCE, squared error on the
    standardized target, cross-entropy; the table above). A NaN label (no label on that row: CVR on
    an impression without a click) is left out of its task's mean (a batch with none gives 0). With
    binary tasks only (`kinds` None) this is one BCE call over [B, T], the plain mean to the bit."""
    if kinds is None or all_binary(kinds):
        known = ~labels.isnan()
        bce = F.binary_cross_entropy_with_logits(logits, torch.where(known, labels, 0.0), reduction="none")
        return (bce * known).sum(0) / known.sum(0).clamp_min(1)
    losses = []
    for t, (kind, cols) in enumerate(zip(kinds, columns(kinds))):  # a loop over the tasks, never the rows
        y = labels[:, t]
        known = ~y.isnan()
        target = torch.where(known, y, 0.0)
        if kind.kind == "binary":
            loss = F.binary_cross_entropy_with_logits(logits[:, cols.start], target, reduction="none")
        elif kind.kind == "regression":
            loss = (logits[:, cols.start] - target) ** 2
        else:
            loss = F.cross_entropy(logits[:, cols], target.long(), reduction="none")
        losses.append((loss * known).sum() / known.sum().clamp_min(1))
    return torch.stack(losses)


def outputs(logits: torch.Tensor, kinds=None) -> torch.Tensor:
    """What the model predicts from its logits [B, Σ width], same shape: a binary task's probability,
    a regression task's value in the target's units (float64, and so the whole result where there is a
    regression task), a multi-class task's K class probabilities. Each
    task's columns are computed on their own contiguous copy (vectorized kernels round the tail of a
    buffer differently, so a task's predictions would otherwise depend on the tasks beside it)."""
    kinds = kinds or [BINARY] * logits.shape[1]
    parts = []
    for kind, cols in zip(kinds, columns(kinds)):
        z = logits[:, cols].contiguous()
        if kind.kind == "binary":
            parts.append(torch.sigmoid(z))
        elif kind.kind == "regression":  # in float64: a target of 2.5e6 has a float32 step of 0.25
            parts.append(z.double() * kind.std + kind.mean)
        else:
            parts.append(torch.softmax(z, dim=1))
    if any(part.dtype == torch.float64 for part in parts):
        parts = [part.double() for part in parts]  # the probabilities keep their float32 values exactly
    return torch.cat(parts, 1)
