"""One protocol for a training split, whatever holds it: rows of a table in memory, streamed shards, or
(user, item) interaction pairs. Each yields the same step batch.

    source = batch_source(data)
    for batch in source.epoch(batch_size, shuffle, device, rank=0, world=1):  # StepBatch
        ...

An epoch visits the split in an order drawn from `shuffle` (a torch.Generator the run owns): in memory
a permutation of the rows (`order`), streamed the shards' row groups in a seeded order with a buffer
shuffle. With several processes (rank of world) each takes its share of every global batch: in memory
every world-th row of the same permutation; streamed, its own row groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .tabular import Batch


@dataclass
class StepBatch:
    """The rows of one training step. `rows`: their indices in the training split (None when the
    split is streamed: rows are read, not indexed); `inputs`, `labels` [B, T]: their features and
    labels (tabular data; None for interaction pairs, whose models read the pairs by `rows`)."""

    rows: torch.Tensor | None
    inputs: Batch | None = None
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.labels)


class InMemoryRows:
    """A split held in memory and read by row index: a TabularSplit (features gathered per batch) or an
    [N, 2] tensor of interaction pairs (models read the pairs themselves)."""

    streamed = False

    def __init__(self, split):
        self.split = split
        self.gather = None if isinstance(split, torch.Tensor) else split.rows  # pairs vs a TabularSplit

    def __len__(self) -> int:
        return len(self.split)

    def order(self, shuffle: torch.Generator) -> torch.Tensor:
        """One epoch's permutation of the rows, drawn from `shuffle` (on the CPU)."""
        return torch.randperm(len(self.split), generator=shuffle)

    def step(self, rows: torch.Tensor) -> StepBatch:
        if self.gather is None:
            return StepBatch(rows)
        inputs, labels = self.gather(rows)
        return StepBatch(rows, inputs, labels)

    def epoch(
        self, batch_size: int, shuffle: torch.Generator, device, rank: int = 0, world: int = 1
    ) -> Iterator[StepBatch]:
        n = len(self.split)
        order = self.order(shuffle).to(device)
        tail = n % batch_size  # a last batch with fewer rows than processes would leave one empty: dropped
        last = n - tail if world > 1 and 0 < tail < world else n
        for i in range(0, last, batch_size):
            yield self.step(order[i : i + batch_size][rank::world])


class StreamedRows:
    """A split read batch by batch from prepared shards (`StreamedSplit.batches`), moved to the device."""

    streamed = True

    def __init__(self, split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def epoch(
        self, batch_size: int, shuffle: torch.Generator, device, rank: int = 0, world: int = 1
    ) -> Iterator[StepBatch]:
        shard = {"rank": rank, "world": world} if world > 1 else {}
        for inputs, labels in self.split.batches(batch_size, shuffle, **shard):
            yield StepBatch(None, inputs.to(device), labels.to(device))


def batch_source(data) -> InMemoryRows | StreamedRows:
    """The training split of `data` (MultiTaskData or InteractionData) as a batch source."""
    return StreamedRows(data.train) if data.streamed else InMemoryRows(data.train)


__all__ = ["InMemoryRows", "StepBatch", "StreamedRows", "batch_source"]
