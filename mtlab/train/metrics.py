"""Evaluation (each task's metrics of its kind, via scikit-learn: data.task_kinds) and model accounting
(parameters, FLOPs)."""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, roc_auc_score
from torch.utils.flop_counter import FlopCounterMode

from ..data.tabular import Batch, TabularSplit
from ..data.task_kinds import BINARY, all_binary, columns, outputs


@torch.no_grad()
def predict(model, split: TabularSplit, batch_size: int = 65536) -> np.ndarray:
    """Predictions [N, Σ width] as a NumPy array (data.task_kinds.outputs: a binary task's probability,
    a regression task's value in its units, a multi-class task's K class probabilities; [N, T]
    probabilities when every task is binary), computed in chunks on the split's device (a streamed
    split: batch by batch, in its stored order)."""
    was_training = model.training
    model.eval()
    if split.streamed:
        device = next(model.parameters()).device
        logits = torch.cat([model(batch.to(device)) for batch, _ in split.batches(batch_size, shuffle=False)])
    else:
        bags = split.bags
        logits = torch.cat(
            [
                model(
                    Batch(
                        split.cat[i : i + batch_size],
                        split.num[i : i + batch_size],
                        None if bags is None else bags[i : i + batch_size],
                    )
                )
                for i in range(0, len(split), batch_size)
            ]
        )
    model.train(was_training)
    return outputs(logits, model.kinds or None).cpu().numpy()  # float64 where a task is a regression


def task_metrics(labels: np.ndarray, probs: np.ndarray, tasks, kinds=None) -> dict[str, dict[str, float]]:
    """Each task's metrics of its kind on the rows with a label, from labels [N, T] and predictions
    [N, Σ width] (`predict`): binary {"auc", "logloss"} (AUC NaN when a split holds only one class);
    regression {"rmse", "mae", "score"} in the target's units (labels standardized with `kind.mean`,
    `kind.std`); multiclass {"accuracy", "macro_f1", "logloss", "score"}. `score` (higher is better,
    1 perfect: R² on the training variance, accuracy) is what early stopping averages over mixed kinds;
    with binary tasks only (`kinds` None) it is left out and the result is as before kinds existed."""
    kinds = kinds or [BINARY] * len(tasks)
    mixed = not all_binary(kinds)
    out = {}
    for t, (name, kind, cols) in enumerate(zip(tasks, kinds, columns(kinds))):
        known = ~np.isnan(labels[:, t])  # CVR: scored on the impressions with a click only
        y, p = labels[known, t], probs[known, cols]
        if kind.kind == "binary":
            p = p[:, 0].astype(np.float32)  # clipped as float32 (as ever), whatever the array's type
            auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
            loss = float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])) if len(y) else float("nan")
            out[name] = {"auc": auc, "logloss": loss} | ({"score": auc} if mixed else {})
        elif kind.kind == "regression":
            # back to the target's units, in float64: float32 would move RMSE and MAE in the 7th digit
            y, p = y.astype(np.float64) * kind.std + kind.mean, p[:, 0].astype(np.float64)
            mse = float(np.mean((p - y) ** 2)) if len(y) else float("nan")
            out[name] = {
                "rmse": float(np.sqrt(mse)),
                "mae": float(mean_absolute_error(y, p)) if len(y) else float("nan"),
                "score": 1 - mse / kind.std**2,  # R² against the training split's variance
            }
        else:
            k = y.astype(np.int64)
            p = p.astype(np.float32)
            guess = p.argmax(1)
            everything = list(range(kind.width))
            out[name] = {
                "accuracy": float(accuracy_score(k, guess)) if len(y) else float("nan"),
                "macro_f1": float(f1_score(k, guess, labels=everything, average="macro", zero_division=0))
                if len(y)
                else float("nan"),
                "logloss": float(log_loss(k, np.clip(p, 1e-7, 1), labels=everything)) if len(y) else float("nan"),
            }
            out[name]["score"] = out[name]["accuracy"]
    return out


def no_skill(labels: np.ndarray, probs: np.ndarray, tasks, base_rates=None, kinds=None) -> list[str]:
    """Warnings for the binary tasks on which the predictions show no skill: a log loss no better than
    predicting the constant base rate p̄ (the training split's where `base_rates` [T] is given, else the
    split's own), whose log loss is −p̄ ln p̄ − (1 − p̄) ln(1 − p̄); or an AUC within two standard errors
    of 0.5, the standard error of a chance AUC being √((n₁ + n₀ + 1) / (12 n₁ n₀)) for n₁ positives and
    n₀ negatives (the Mann–Whitney statistic's null variance; Hanley & McNeil, Radiology 1982).
    E.g. a CTR task with 5.8 % clicks: constant log loss 0.221; model log loss 0.530 → a warning."""
    warnings = []
    kinds = kinds or [BINARY] * len(tasks)
    for t, (name, kind, cols) in enumerate(zip(tasks, kinds, columns(kinds))):
        if kind.kind != "binary":
            continue  # a regression or multi-class task's skill shows in its score (R², accuracy)
        known = ~np.isnan(labels[:, t])
        y, p = labels[known, t], probs[known, cols.start]
        n1, n0 = int(y.sum()), int(len(y) - y.sum())
        if n1 == 0 or n0 == 0:
            continue
        rate = float(np.clip(base_rates[t] if base_rates is not None else y.mean(), 1e-7, 1 - 1e-7))
        constant = float(log_loss(y, np.full(len(y), rate), labels=[0, 1]))
        loss = float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
        auc = float(roc_auc_score(y, p))
        chance = 2 * np.sqrt((n1 + n0 + 1) / (12 * n1 * n0))
        seen = []
        if loss >= constant:
            seen.append(f"log loss {loss:.4f} is no better than predicting the base rate {rate:.4f} ({constant:.4f})")
        if abs(auc - 0.5) < chance:
            seen.append(f"AUC {auc:.4f} is within noise of 0.5 (±{chance:.4f} on {n1 + n0} rows)")
        if seen:
            warnings.append(
                f"task {name}: {' and '.join(seen)}: the model learned nothing useful for it; "
                "try more epochs or rows, another learning rate, or check the labels"
            )
    return warnings


def labelled_predictions(model, split: TabularSplit, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N, T], predictions [N, Σ width]: `predict`) of a split, as NumPy arrays."""
    labels = split.all_labels()
    return labels.cpu().numpy(), predict(model, split, batch_size)


def evaluate(model, split: TabularSplit, tasks, batch_size: int = 65536) -> dict[str, dict[str, float]]:
    return task_metrics(*labelled_predictions(model, split, batch_size), tasks, model.kinds or None)


def count_parameters(model, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flops_per_sample(model, batch: Batch, training: bool = False) -> float:
    """FLOPs per row of one forward pass, or of a training step (the model's own training loss,
    forward and backward; run on a copy, so no state of `model` moves), counted by
    torch.utils.flop_counter. Embedding lookups count as zero FLOPs; frozen parts of a model count in
    the forward pass of a training step (they run) but not in its backward pass."""
    counter = FlopCounterMode(display=False)
    if training:
        from ..models.base import Step  # train imports models; models never import train

        clone = copy.deepcopy(model).train()
        labels = torch.zeros(len(batch), len(clone.tasks), device=batch.cat.device)
        rows = torch.arange(len(batch), device=batch.cat.device)
        with counter:
            losses, extra = clone.training_loss(batch, labels, Step(rows, len(batch), 0, 0.5))
            (losses.sum() if extra is None else losses.sum() + extra).backward()
    else:
        was_training = model.training
        model.eval()
        with counter, torch.no_grad():
            model(batch)
        model.train(was_training)
    return counter.get_total_flops() / len(batch)
