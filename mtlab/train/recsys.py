"""Training a multi-task recommender (MF encoder + auxiliary tasks) with a weighting strategy, and
its full-ranking evaluation. Training pairs live on the device; batches are taken by permuted index;
negatives are sampled per batch; early stopping on validation NDCG@K."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm import tqdm

from ..data.interactions import InteractionData
from ..weighting import TableRows, build_weighting
from .device import resolve_device
from .ranking import ranking_metrics
from .trainer import fused_on


@dataclass
class RecConfig:
    epochs: int = 50
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 0.0
    weighting: str = "ew"
    weighting_options: dict | None = None
    patience: int = 5  # epochs without a better validation NDCG@k; 0 = never stop
    k: int = 40  # the K of the early-stopping metric
    gather_rows: bool = True  # strategies see the touched embedding rows (False: the whole tables)
    seed: int = 0
    device: str = "auto"
    quiet: bool = False


def evaluate_recommender(model, data: InteractionData, split: str = "test", ks=(10, 20, 40)) -> dict[str, float]:
    """Recall@K and NDCG@K by full ranking; training items (and validation items, for the test split)
    are excluded from the ranking."""
    exclude = [data.train] + ([data.valid] if split == "test" else [])
    model.eval()
    return ranking_metrics(model.scores, data.n_users, data.n_items, data.split(split), exclude, ks)


def fit_recommender(model, data: InteractionData, config: RecConfig | None = None, on_epoch=None):
    """Train; returns (model with the best validation weights, history DataFrame, strategy)."""
    config = config or RecConfig()
    device = resolve_device(config.device)
    data, model = data.to(device), model.to(device)
    strategy = build_weighting(config.weighting, len(model.tasks), **(config.weighting_options or {})).to(device)
    optimizer = torch.optim.Adam([*model.parameters(), *strategy.parameters()], lr=config.lr,
                                 weight_decay=config.weight_decay, fused=fused_on(model))
    torch.manual_seed(config.seed)
    shuffle = torch.Generator().manual_seed(config.seed)
    sampler = torch.Generator(device=device).manual_seed(config.seed)
    tables = model.embedding_tables()
    gathered = config.gather_rows and hasattr(model, "batch_losses")  # per-task gradients on touched rows
    n, history, best, best_state, bad = len(data.train), [], float("-inf"), None, 0
    for epoch in tqdm(range(config.epochs), disable=config.quiet, unit="epoch", desc=config.weighting):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffle).to(device)
        sums = torch.zeros(len(model.tasks), device=device)
        for i in range(0, n, config.batch_size):
            rows = order[i:i + config.batch_size]
            if gathered:
                losses, touched = model.batch_losses(rows, data, sampler)
                shared = [TableRows(t, index, values) for t, (index, values) in zip(tables, touched)]
            else:
                losses, shared = model.task_losses(rows, data, sampler), tables
            optimizer.zero_grad(set_to_none=True)
            strategy.backward(losses, shared, epoch)
            optimizer.step()
            sums += torch.stack(list(losses)).detach() * len(rows)
        row = {"epoch": epoch + 1, **{f"loss_{t}": v for t, v in zip(model.tasks, (sums / n).tolist())}}
        row["train_seconds"] = time.perf_counter() - start
        row.update({f"valid_{k}": v for k, v in evaluate_recommender(model, data, "valid", (config.k,)).items()})
        history.append(row)
        score = row[f"valid_ndcg@{config.k}"]
        if score > best:
            best, best_state, bad = score, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        stop = bool(on_epoch and on_epoch(row, strategy))
        if stop or (config.patience and bad >= config.patience):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, pd.DataFrame(history), strategy
