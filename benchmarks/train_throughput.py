"""Training throughput on Census-Income: mtlab's trainer against a bare PyTorch loop over in-memory
tensors (the same model) and a DataLoader-of-rows pipeline (per-row dicts, default collate — how the
popular MTL recsys libraries feed their models).

    python benchmarks/train_throughput.py [--models …] [--batch-sizes 1024 4096] [--device auto]

Prints, per model and batch size, samples/s of one training epoch for each pipeline, the ratio of the
bare loop to mtlab (aim: ≤ 1.3), mtlab's speed-up over the DataLoader pipeline, and peak memory
(CUDA: max allocated; CPU: the process's peak resident set size so far).

All three pipelines compute the same loss, the model's own `training_loss` (the adversarial term of
MPT-Rec and the contrastive term of CSRec included). The subnet search of Sparse Sharing and CSRec
happens once before training and is not part of an epoch.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from mtlab.data import load_dataset
from mtlab.models import MODELS, Step, build_model
from mtlab.train import TrainConfig, fit, resolve_device, seed_everything


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mtlab_epoch(name, data, batch_size, device) -> float:
    seed_everything(0)
    model = build_model(name, data.features, data.tasks)
    result = fit(model, data, TrainConfig(epochs=1, batch_size=batch_size, patience=0, device=str(device), quiet=True))
    return len(data.train) / result.history["train_seconds"].iloc[0]


def bare_loop_epoch(name, data, batch_size, device) -> float:
    """The minimum: tensors on the device, a permutation, slicing, forward, BCE, backward, Adam."""
    seed_everything(0)
    model = build_model(name, data.features, data.tasks).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = data.train.to(device)
    sync(device)
    start = time.perf_counter()
    order = torch.randperm(len(train), device=device)
    n_steps = -(-len(train) // batch_size)
    for step, i in enumerate(range(0, len(train), batch_size)):
        rows = order[i : i + batch_size]
        batch, labels = train.rows(rows)
        losses, extra = model.training_loss(batch, labels, Step(rows, len(train), 0, step / n_steps))
        loss = losses.sum() if extra is None else losses.sum() + extra
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return len(train) / (time.perf_counter() - start)


class RowDataset(Dataset):
    """A dict of per-feature values for each row, as torch-rechub-style loaders serve them."""

    def __init__(self, split, features, tasks):
        self.columns = {name: split.cat[:, j].numpy() for j, name in enumerate(features.cat_names)}
        self.columns |= {name: split.num[:, j].numpy() for j, name in enumerate(features.num_names)}
        self.labels = {name: split.labels[:, t].numpy() for t, name in enumerate(tasks)}
        self.cat_names, self.num_names, self.tasks = features.cat_names, features.num_names, tasks

    def __len__(self):
        return len(self.labels[self.tasks[0]])

    def __getitem__(self, i):
        return (
            i,
            {name: values[i] for name, values in self.columns.items()},
            {name: values[i] for name, values in self.labels.items()},
        )


def dataloader_epoch(name, data, batch_size, device, max_batches: int = 30) -> float:
    """Per-row dicts collated by DataLoader; timed over `max_batches` batches (it is slow)."""
    from mtlab.data import Batch

    seed_everything(0)
    model = build_model(name, data.features, data.tasks).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dataset = RowDataset(data.train, data.features, data.tasks)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    rows, start = 0, time.perf_counter()
    for step, (index, x, y) in enumerate(loader):
        if step == max_batches:
            break
        batch = Batch(
            torch.stack([x[n] for n in dataset.cat_names], 1).to(device),
            torch.stack([x[n] for n in dataset.num_names], 1).float().to(device),
        )
        labels = torch.stack([y[t] for t in dataset.tasks], 1).to(device)
        losses, extra = model.training_loss(batch, labels, Step(index.to(device), len(dataset), 0, step / len(loader)))
        loss = losses.sum() if extra is None else losses.sum() + extra
        opt.zero_grad()
        loss.backward()
        opt.step()
        rows += len(labels)
    sync(device)
    return rows / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=sorted(MODELS), choices=sorted(MODELS))
    parser.add_argument("--batch-sizes", nargs="*", type=int, default=[1024, 4096])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-dataloader", action="store_true")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    data = load_dataset("census-income", tasks=["income", "marital"])
    print(
        f"Census-Income: {len(data.train):,} training rows; device {device}; torch {torch.__version__}; "
        f"{torch.get_num_threads()} CPU threads",
        flush=True,
    )
    rows = []
    for name in args.models:
        for bs in args.batch_sizes:
            bare_loop_epoch(name, data, bs, device)  # warm-up (allocator, kernels)
            ours = mtlab_epoch(name, data, bs, device)
            bare = bare_loop_epoch(name, data, bs, device)
            rows_ = None if args.skip_dataloader else dataloader_epoch(name, data, bs, device)
            rows.append(
                {
                    "model": name,
                    "batch": bs,
                    "mtlab samples/s": round(ours),
                    "bare loop samples/s": round(bare),
                    "bare/mtlab": round(bare / ours, 2),
                    "DataLoader-of-rows samples/s": None if rows_ is None else round(rows_),
                    "mtlab/DataLoader": None if rows_ is None else round(ours / rows_, 1),
                    "peak MiB": round(peak_memory_mib(device)),
                }
            )
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    print()
    print(pd.DataFrame(rows).to_markdown(index=False) if _has_tabulate() else pd.DataFrame(rows).to_string(index=False))
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
