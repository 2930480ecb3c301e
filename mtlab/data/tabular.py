"""Tensor containers shared by every tabular multi-task dataset.

A dataset is a handful of dense tensors (categorical codes, numeric values, one label column per
task) that live on the training device; batches are taken by indexing them, never by collating
Python rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

import torch

from .task_kinds import BINARY, TaskKind

if TYPE_CHECKING:
    from .encoding import Encoding


class DataError(ValueError):
    """Bad input to a data loader; the message says what to do about it."""


def distinct_tasks(tasks) -> tuple[str, ...]:
    """The task names as a tuple; a name given twice is refused (two heads would train and a result
    keyed by task would keep one)."""
    tasks = tuple(tasks)
    duplicates = sorted({t for t in tasks if tasks.count(t) > 1})
    if duplicates:
        raise DataError(f"task(s) {duplicates} given twice; name each task once")
    return tasks


@dataclass(frozen=True)
class FeatureSpec:
    """What a model needs to know about the data: the inputs' names and sizes and, in `targets`, the
    kind of each task that is not binary (`TaskKind`: head width, loss, prediction); no data."""

    cat_names: tuple[str, ...]
    cat_cardinalities: tuple[int, ...]
    num_names: tuple[str, ...]
    vocab: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    bag_names: tuple[str, ...] = ()  # multi-valued categorical fields (pooled as bags)
    bag_cardinalities: tuple[int, ...] = ()
    targets: dict[str, TaskKind] = field(default_factory=dict, compare=False, repr=False)

    def kinds_of(self, tasks) -> tuple[TaskKind, ...]:
        """The kind of each task (binary where `targets` names none)."""
        return tuple(self.targets.get(t, BINARY) for t in tasks)

    @property
    def n_cat(self) -> int:
        return len(self.cat_names)

    @property
    def n_num(self) -> int:
        return len(self.num_names)

    @property
    def n_bag(self) -> int:
        return len(self.bag_names)

    def without(self, names: set[str]) -> FeatureSpec:
        keep = [i for i, n in enumerate(self.cat_names) if n not in names]
        return FeatureSpec(
            cat_names=tuple(self.cat_names[i] for i in keep),
            cat_cardinalities=tuple(self.cat_cardinalities[i] for i in keep),
            num_names=tuple(n for n in self.num_names if n not in names),
            vocab={k: v for k, v in self.vocab.items() if k not in names},
            bag_names=tuple(n for n in self.bag_names if n not in names),
            bag_cardinalities=tuple(c for n, c in zip(self.bag_names, self.bag_cardinalities) if n not in names),
            targets=self.targets,
        )


@dataclass
class Batch:
    """Model input for a set of rows: categorical codes [B, C] (int64), numeric values [B, D], and
    for data with multi-valued fields the bags [B, F, L] (int64 codes + 1 per field, 0 = padding)."""

    cat: torch.Tensor
    num: torch.Tensor
    bags: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.cat.shape[0]

    def to(self, device) -> Batch:
        return Batch(self.cat.to(device), self.num.to(device), None if self.bags is None else self.bags.to(device))


@dataclass
class TabularSplit:
    """One split (train, valid or test): features and a label column per task."""

    streamed = False  # in memory, read by row index (a StreamedSplit is read batch by batch)

    cat: torch.Tensor  # [N, C] int64
    num: torch.Tensor  # [N, D] float32
    labels: torch.Tensor  # [N, T] float32: 0/1, a standardized target or a class index (task_kinds); NaN: no label
    bags: torch.Tensor | None = None  # [N, F, L] int64, 0 = padding (multi-valued fields)

    def __len__(self) -> int:
        return self.cat.shape[0]

    @property
    def features(self) -> Batch:
        return Batch(self.cat, self.num, self.bags)

    def all_labels(self) -> torch.Tensor:
        """The labels [N, T] (as a StreamedSplit gives them, reading its label columns only)."""
        return self.labels

    def rows(self, index: torch.Tensor) -> tuple[Batch, torch.Tensor]:
        """The batch and labels of the given row indices (a tensor on the same device)."""
        bags = None if self.bags is None else self.bags[index]
        return Batch(self.cat[index], self.num[index], bags), self.labels[index]

    def to(self, device) -> TabularSplit:
        return TabularSplit(
            self.cat.to(device),
            self.num.to(device),
            self.labels.to(device),
            None if self.bags is None else self.bags.to(device),
        )

    def subsample(self, n: int, generator: torch.Generator) -> TabularSplit:
        if n >= len(self):
            return self
        index = torch.randperm(len(self), generator=generator)[:n].sort().values
        return TabularSplit(
            self.cat[index], self.num[index], self.labels[index], None if self.bags is None else self.bags[index]
        )


@dataclass
class MultiTaskData:
    """A multi-task dataset: three splits, the feature spec and the task names, in label order."""

    kind: ClassVar[str] = "tabular"  # rows of features with a label per task (vs "interactions")
    name: str
    tasks: tuple[str, ...]
    features: FeatureSpec
    train: TabularSplit
    valid: TabularSplit
    test: TabularSplit
    source: str = ""
    version: str = ""  # a prepared table's or interaction log's conversion (its manifest stamp's digest)
    # how raw rows become these inputs (data.encoding.Encoding): what a saved model encodes new rows
    # with; None where the loader has no raw columns to give (synthetic data, Ali-CCP's sparse format)
    encoding: Encoding | None = None

    @property
    def streamed(self) -> bool:
        """The training split is read batch by batch (prepared shards), not held in memory."""
        return self.train.streamed

    def to(self, device) -> MultiTaskData:
        device = torch.device(device)
        return replace(
            self,
            train=self.train.to(device),
            valid=self.valid.to(device),
            test=self.test.to(device),
        )

    @property
    def device(self) -> torch.device:
        return self.train.cat.device

    def split(self, name: str) -> TabularSplit:
        if name not in ("train", "valid", "test"):
            raise DataError(f"unknown split {name!r}; use one of 'train', 'valid', 'test'")
        return getattr(self, name)

    def subsample(self, fraction: float | None, seed: int = 0) -> MultiTaskData:
        """Keep a random `fraction` of the rows of every split (for quick profiles)."""
        if fraction is None or fraction >= 1:
            return self
        if not 0 < fraction < 1:
            raise DataError(f"subsample must be a fraction in (0, 1], got {fraction}")
        gen = torch.Generator().manual_seed(seed)
        return replace(
            self,
            train=self.train.subsample(max(1, round(len(self.train) * fraction)), gen),
            valid=self.valid.subsample(max(1, round(len(self.valid) * fraction)), gen),
            test=self.test.subsample(max(1, round(len(self.test) * fraction)), gen),
        )

    @property
    def kinds(self) -> tuple[TaskKind, ...]:
        """The kind of each task, in task order (data.task_kinds)."""
        return self.features.kinds_of(self.tasks)

    def check_labels(self) -> MultiTaskData:
        """Refuse a task that cannot be scored or early-stopped on in some split: a binary task whose
        labels are one class (its AUC would be undefined), a task with no label at all, a regression
        target that is constant in training, a multi-class task with one class in training."""
        for split in ("train", "valid", "test"):
            labels = self.split(split).all_labels()
            known = (~labels.isnan()).sum(0)
            for t, (task, kind) in enumerate(zip(self.tasks, self.kinds)):
                column = labels[:, t][~labels[:, t].isnan()]
                if kind.kind == "binary":
                    positives = int(column.sum())
                    if positives == 0 or positives == known[t]:
                        what = "positive" if positives == 0 else "negative"
                        raise DataError(
                            f"task {task!r} has no {what} label in the {split} split ({len(labels)} rows) of "
                            f"{self.name}: use more rows (a larger subsample) or another task"
                        )
                elif known[t] == 0:
                    raise DataError(
                        f"task {task!r} has no label in the {split} split ({len(labels)} rows) of {self.name}: "
                        "use more rows (a larger subsample) or another task"
                    )
                elif split == "train" and len(column.unique()) < 2:
                    raise DataError(
                        f"task {task!r} ({kind.kind}) has one value only in the training split of {self.name}: "
                        "nothing to learn; use more rows or another task"
                    )
        return self

    def task_from_column(self, column: str, task: str, code: int | None = None) -> MultiTaskData:
        """The data with one more binary task, made from a categorical column: label 1 where the
        column holds `code` (default: its most frequent code in training). The column leaves the
        features of every split, so the label is never also an input. Data in memory only."""
        if self.streamed:
            raise DataError(f"a task from a column needs the data in memory; {self.name} is streamed")
        if column not in self.features.cat_names:
            raise DataError(
                f"{self.name} has no categorical column {column!r}; it has {', '.join(self.features.cat_names)}"
            )
        if task in self.tasks:
            raise DataError(f"{self.name} already has a task {task!r}")
        j = self.features.cat_names.index(column)
        code = int(torch.mode(self.train.cat[:, j]).values) if code is None else code
        keep = [k for k in range(len(self.features.cat_names)) if k != j]

        def derive(s: TabularSplit) -> TabularSplit:
            label = (s.cat[:, j] == code).to(s.labels.dtype)[:, None]
            return TabularSplit(s.cat[:, keep], s.num, torch.cat([s.labels, label], 1), s.bags)

        features = replace(
            self.features,
            cat_names=tuple(self.features.cat_names[k] for k in keep),
            cat_cardinalities=tuple(self.features.cat_cardinalities[k] for k in keep),
        )
        return replace(
            self,
            tasks=(*self.tasks, task),
            features=features,
            encoding=None,  # the inputs no longer hold the column: new rows are not encoded alike
            train=derive(self.train),
            valid=derive(self.valid),
            test=derive(self.test),
        )

    def select_tasks(self, tasks: list[str] | tuple[str, ...]) -> MultiTaskData:
        """The same data with only the given tasks, in the given order."""
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise DataError(f"unknown task(s) {unknown}; this dataset has {list(self.tasks)}")
        cols = [self.tasks.index(t) for t in tasks]

        def pick(s: TabularSplit) -> TabularSplit:
            if s.streamed:
                return s.select_columns(cols)
            return TabularSplit(s.cat, s.num, s.labels[:, cols], s.bags)

        return replace(self, tasks=tuple(tasks), train=pick(self.train), valid=pick(self.valid), test=pick(self.test))
