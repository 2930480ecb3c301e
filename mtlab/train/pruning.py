"""Task masks by iterative magnitude pruning, for Sparse Sharing and CSRec (Sun et al., AAAI 2020;
as in the MPT-Rec authors' CSRec code: rounds of `rate` pruning, rewinding to the jointly warmed-up
weights after each round, keeping the mask with the best validation AUC among those with at least
`min_sparsity` of the weights pruned; a regression or multi-class task: its validation score, R² or
accuracy, data.task_kinds)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pandas as pd
import torch

from ..data.tabular import MultiTaskData
from .metrics import evaluate
from .trainer import TrainConfig, fit


@torch.no_grad()
def prune_by_magnitude(weight: torch.Tensor, mask: torch.Tensor, rate: float) -> torch.Tensor:
    """A new mask with the `rate` fraction of the still-unpruned weights of smallest |w| removed."""
    alive = mask.bool()
    n_prune = int(round(rate * int(alive.sum())))
    if n_prune == 0:
        return mask.clone()
    scores = weight.abs().masked_fill(~alive, float("inf")).flatten()
    new = mask.clone().flatten()
    new[torch.topk(scores, n_prune, largest=False).indices] = 0
    return new.view_as(mask)


def find_task_masks(model, data: MultiTaskData, config: TrainConfig) -> pd.DataFrame:
    """Set `model`'s per-task masks by iterative magnitude pruning and rewind it to the warmed-up
    weights; return the search log (task, round, sparsity, valid AUC or score, chosen)."""
    layers = model.masked_layers()
    quiet = replace(config, patience=0, quiet=True)
    if model.prune_warmup_epochs:
        fit(model, data, replace(quiet, epochs=model.prune_warmup_epochs), prepare=False)
    start = copy.deepcopy(model.state_dict())
    masks_of = lambda t: [layer.mask[t].clone() for layer in layers]  # noqa: E731
    chosen, log = [], []
    for t, task in enumerate(data.tasks):
        current, candidates = [torch.ones_like(layer.weight) for layer in layers], []
        for round_ in range(model.prune_rounds + 1):
            model.load_state_dict(start)
            for layer, mask in zip(layers, current):
                layer.mask[t] = mask
            one_task = [1.0 if i == t else 0.0 for i in range(len(data.tasks))]
            fit(model, data, replace(quiet, epochs=model.prune_epochs, task_weights=one_task), prepare=False)
            key = "auc" if data.kinds[t].kind == "binary" else "score"  # higher is better either way
            value = evaluate(model, data.valid.to(next(model.parameters()).device), data.tasks)[task][key]
            sparsity = float(model.sparsity()[t])
            candidates.append((value, sparsity, masks_of(t)))
            log.append({"task": task, "round": round_, "sparsity": sparsity, f"valid_{key}": value})
            current = [prune_by_magnitude(layer.weight, layer.mask[t], model.prune_rate) for layer in layers]
        eligible = [c for c in candidates if c[1] >= model.prune_min_sparsity] or [candidates[-1]]
        best = max(eligible, key=lambda c: c[0])
        chosen.append(best[2])
        for row in log[-len(candidates) :]:
            row["chosen"] = row["sparsity"] == best[1]
    model.load_state_dict(start)
    for t, masks in enumerate(chosen):
        for layer, mask in zip(layers, masks):
            layer.mask[t] = mask
    model.zero_pruned_weights()
    model.subnets_found.fill_(True)
    return pd.DataFrame(log)
