"""Prepared funnel data (Ali-CCP, AliExpress) read back from Parquet shards: by row group, shuffled
within a bounded buffer, shared between processes; or whole, in memory, when it fits.

A prepared folder holds `manifest.json` (row counts, label rates, the fields, sha256 of the inputs),
`vocab.json` and shards `{train,valid,test}-NNNNN.parquet` with the columns click, conversion (int8),
`f<field>` (int32 codes of a single-valued field, 0 = unknown), `bag<field>` (list<int32>: a
multi-valued field) and `n<field>` (float32: a numeric field).
"""

from __future__ import annotations

import copy
import json
import queue
import re
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .download import check_files
from .tabular import DataError

FUNNEL_TASKS = ("ctr", "cvr", "ctcvr")
SMALL_ROW_GROUP = 128  # rows: a warning below this average (each group is one read and a decode)
PREPARE_COMMANDS = {
    "ali-ccp": "python -m mtlab.data prepare ali-ccp --raw DIR",
    "aliexpress": "python -m mtlab.data prepare aliexpress --raw DIR --country NL",
}


@dataclass
class FunnelBatch:
    """Encoded impressions: single-valued field codes [B, F], numeric fields [B, D], per bag field
    (flat codes, offsets) for `nn.EmbeddingBag`; labels [B, 2] = click, conversion."""

    single: torch.Tensor
    numeric: torch.Tensor
    bags: dict[str, tuple[torch.Tensor, torch.Tensor]]
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.single.shape[0]


class ShardedSplit:
    """One split of prepared shards, read by Parquet row group: `batches(batch_size, generator)`
    visits the row groups in a seeded order, shuffles rows within a buffer of `buffer_rows`, and
    yields FunnelBatches; memory is that of the buffer, whatever the split's size.

    Several processes (rank of world) share an epoch's row groups: each reads every world-th group of
    the same seeded order and makes batches of its share of the global batch size; all of them take
    the same number of steps (the fewest any can fill; the rows left over on the others wait for a
    later epoch's order), so none waits on a collective another never calls."""

    def __init__(self, folder: str | Path, split: str, buffer_rows: int = 262_144):
        import pyarrow.parquet as pq

        self.folder, self.split, self.buffer_rows = Path(folder), split, buffer_rows
        manifest = load_manifest(self.folder)
        self.fields = (manifest["single_fields"], manifest.get("numeric_fields", []), manifest["bag_fields"])
        self.files = [self.folder / name for name in manifest["shards"][split]]
        self.n_rows = manifest["rows"][split]
        self.row_groups, self.group_rows = [], []
        for f in self.files:
            try:
                meta = pq.ParquetFile(f).metadata
            except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
                raise DataError(
                    f"{f} is damaged ({str(err).splitlines()[0][:200]}); prepare again (python -m mtlab.data prepare …)"
                ) from err
            for g in range(meta.num_row_groups):
                self.row_groups.append((f, g))
                self.group_rows.append(meta.row_group(g).num_rows)
        if sum(self.group_rows) != self.n_rows:
            raise DataError(
                f"{self.folder}: the {split} shards hold {sum(self.group_rows):,} rows and the manifest says "
                f"{self.n_rows:,}: a shard of another preparation? Prepare again (python -m mtlab.data prepare …)"
            )
        self.identity = _identity(self.folder)  # the preparation this split reads (see `_same_preparation`)
        self.largest_buffer = 0  # the most rows held at once (tests check the bound)
        self.opened = 0  # Parquet files opened for reading row groups (once per file and epoch)
        if len(self.row_groups) > 64 and self.n_rows / len(self.row_groups) < SMALL_ROW_GROUP:  # many tiny groups
            warnings.warn(
                f"{self.folder} ({split}): {len(self.row_groups):,} row groups of {self.n_rows / len(self.row_groups):.0f} "
                f"rows on average; reading is slow with row groups under {SMALL_ROW_GROUP:,} rows: prepare again "
                "with a larger --row-group-rows",
                stacklevel=2,
            )

    def subsample(self, n: int, generator: torch.Generator) -> ShardedSplit:
        """A seeded share of the row groups holding at least `n` rows (whole groups: a streamed split
        is read by row group), kept in their stored order."""
        if n >= self.n_rows:
            return self
        order = torch.randperm(len(self.row_groups), generator=generator).tolist()
        kept, rows = [], 0
        for k in order:
            if rows >= n:
                break
            kept.append(k)
            rows += self.group_rows[k]
        kept.sort()
        if rows > 1.5 * n:
            warnings.warn(
                f"{self.folder} ({self.split}): a subsample of {n:,} of {self.n_rows:,} rows keeps {rows:,} (a "
                f"streamed split is subsampled by whole row groups, here {len(self.row_groups)} row group(s) of "
                f"{self.n_rows / len(self.row_groups):,.0f} rows on average); for a finer subsample prepare again "
                "with a smaller --row-group-rows, or train without --stream",
                stacklevel=2,
            )
        part = copy.copy(self)
        part.row_groups = [self.row_groups[k] for k in kept]
        part.group_rows = [self.group_rows[k] for k in kept]
        part.n_rows = rows
        return part

    def __len__(self) -> int:
        return self.n_rows

    def epoch_plan(self, generator: torch.Generator | None = None, shuffle: bool = True) -> tuple[list[int], int]:
        """The epoch's row-group order and the seed of its buffer shuffles, drawn alike on every process."""
        if not shuffle:
            return list(range(len(self.row_groups))), 0
        order = torch.randperm(len(self.row_groups), generator=generator).tolist()
        return order, int(torch.randint(2**62, (1,), generator=generator))

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
    ) -> Iterator[FunnelBatch]:
        yield from self.rank_batches(self.epoch_plan(generator, shuffle), batch_size, shuffle, rank, world)

    def rank_batches(
        self, plan, batch_size: int, shuffle: bool = True, rank: int = 0, world: int = 1
    ) -> Iterator[FunnelBatch]:
        """Process `rank`'s batches of an epoch plan (all of them when world = 1)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        order, seed = plan
        local_batch = batch_size // world + (rank < batch_size % world)
        steps = self._common_steps(order, batch_size, world) if world > 1 else None
        mixer = torch.Generator().manual_seed(seed + rank)
        groups = order[rank::world]
        buffer, held, done = [], 0, 0
        files = {}  # each shard opened once an epoch (its footer parsed once, not once per row group)
        for position, k in enumerate(groups):
            path, group = self.row_groups[k]
            if path not in files:
                _same_preparation(self)
                files[path] = pq.ParquetFile(path, page_checksum_verification=True)
                self.opened += 1
            table = read_group(path, files[path], group)
            buffer.append(table)
            held += table.num_rows
            last = position == len(groups) - 1
            if held < self.buffer_rows and not last:
                continue
            self.largest_buffer = max(self.largest_buffer, held)
            rows = pa.concat_tables(buffer)
            index = torch.randperm(rows.num_rows, generator=mixer) if shuffle else torch.arange(rows.num_rows)
            cut = rows.num_rows if last else rows.num_rows - rows.num_rows % local_batch
            for start in range(0, cut, local_batch):
                if steps is not None and done == steps:
                    return
                yield _to_batch(self.fields, rows.take(pa.array(index[start : start + local_batch].numpy())))
                done += 1
            buffer = [rows.take(pa.array(index[cut:].numpy()))] if cut < rows.num_rows else []
            held = rows.num_rows - cut

    def _common_steps(self, order: list[int], batch_size: int, world: int) -> int:
        """The steps every process can take: the fewest batches any process's row groups fill."""
        steps = []
        for r in range(world):
            rows = sum(self.group_rows[k] for k in order[r::world])
            local = batch_size // world + (r < batch_size % world)
            if rows == 0 or local == 0:
                raise DataError(
                    f"{self.split}: {len(self.row_groups)} row group(s) and batch size {batch_size} cannot "
                    f"feed {world} processes; prepare with smaller row groups, use fewer processes or a "
                    "larger batch"
                )
            steps.append(-(-rows // local))
        return min(steps)

    def global_batches(
        self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True, world: int = 1
    ) -> Iterator[FunnelBatch]:
        """What `world` processes train on together, step by step, in one process: their batches of
        the same epoch plan joined in rank order (reproduces a distributed run on one machine)."""
        plan = self.epoch_plan(generator, shuffle)
        streams = [self.rank_batches(plan, batch_size, shuffle, r, world) for r in range(world)]
        for parts in zip(*streams):
            yield concat_batches(list(parts))


def concat_batches(parts: list[FunnelBatch]) -> FunnelBatch:
    """FunnelBatches joined row-wise (bag offsets shifted)."""
    bags = {}
    for field in parts[0].bags:
        values = [p.bags[field][0] for p in parts]
        starts = torch.tensor([0, *[len(v) for v in values[:-1]]]).cumsum(0)
        bags[field] = (torch.cat(values), torch.cat([p.bags[field][1] + s for p, s in zip(parts, starts.tolist())]))
    return FunnelBatch(
        torch.cat([p.single for p in parts]),
        torch.cat([p.numeric for p in parts]),
        bags,
        torch.cat([p.labels for p in parts]),
    )


def _to_batch(fields, table) -> FunnelBatch:
    singles, numerics, bag_fields = fields
    n = table.num_rows
    single = torch.from_numpy(
        np.stack([table.column(f"f{f}").to_numpy() for f in singles], 1).astype(np.int64)
        if singles
        else np.zeros((n, 0), np.int64)
    )
    numeric = torch.from_numpy(
        np.stack([table.column(f"n{f}").to_numpy() for f in numerics], 1).astype(np.float32)
        if numerics
        else np.zeros((n, 0), np.float32)
    )
    bags = {}
    for field in bag_fields:
        column = table.column(f"bag{field}").combine_chunks()
        offsets = torch.from_numpy(column.offsets.to_numpy().astype(np.int64))
        values = torch.from_numpy(column.values.to_numpy(zero_copy_only=False).astype(np.int64))
        start = int(offsets[0])
        bags[field] = (values[start : int(offsets[-1])], offsets[:-1] - start)
    labels = torch.from_numpy(
        np.stack([table.column("click").to_numpy(), table.column("conversion").to_numpy()], 1).astype(np.float32)
    )
    return FunnelBatch(single, numeric, bags, labels)


def padded_bags(bags: dict[str, tuple[torch.Tensor, torch.Tensor]], n_rows: int) -> torch.Tensor:
    """Per bag field (flat codes, offsets) → [B, F, L] codes + 1 with 0 as padding (L: the longest
    bag of the batch), built without a loop over rows."""
    lengths, shifted = [], []
    for values, offsets in bags.values():
        ends = torch.cat([offsets[1:], offsets.new_tensor([len(values)])])
        lengths.append(ends - offsets)
        shifted.append((values, offsets))
    longest = max(1, int(torch.stack(lengths).max()) if n_rows else 1)
    out = torch.zeros(n_rows, len(bags), longest, dtype=torch.int64)
    for f, ((values, offsets), length) in enumerate(zip(shifted, lengths)):
        row = torch.repeat_interleave(torch.arange(n_rows), length)
        slot = torch.arange(len(values)) - torch.repeat_interleave(offsets, length)
        out[row, f, slot] = values + 1
    return out


def funnel_labels(click_conversion: torch.Tensor) -> torch.Tensor:
    """[B, 2] click, conversion → [B, 3] for the tasks ctr (click), cvr (conversion, NaN on impressions
    without a click: the conversion label is never used there) and ctcvr (click and conversion)."""
    click, conversion = click_conversion[:, 0], click_conversion[:, 1]
    cvr = torch.where(click > 0, conversion, torch.full_like(conversion, float("nan")))
    return torch.stack([click, cvr, click * conversion], 1)


def to_model_batch(batch: FunnelBatch):
    """A FunnelBatch as the models' input: (Batch(codes, numbers, padded bags or None), labels [B, 3])."""
    from .tabular import Batch

    bags = padded_bags(batch.bags, len(batch)) if batch.bags else None
    return Batch(batch.single, batch.numeric, bags), funnel_labels(batch.labels)


class StreamedSplit:
    """A split the fit loop reads batch by batch (`batches`), never whole: Ali-CCP's shards through
    a ShardedSplit. `labels` (for checks and scoring) reads the label columns only."""

    streamed = True

    def __init__(self, shards: ShardedSplit, columns: list[int] | None = None, as_processes: int = 1):
        self.shards, self.columns, self.as_processes = shards, columns, as_processes

    def __len__(self) -> int:
        return len(self.shards)

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
        prefetch: int = 2,
    ):
        """(Batch, labels) of process `rank` of `world`; with `as_processes` = W in one process, the
        global batches W processes would train on together (`ShardedSplit.global_batches`). The next
        `prefetch` batches are read and decoded on a thread while the caller trains on this one."""
        if self.as_processes > 1:
            stream = self.shards.global_batches(batch_size, generator, shuffle, self.as_processes)
        else:
            stream = self.shards.batches(batch_size, generator, shuffle, rank, world)
        decoded = (self._model_batch(funnel) for funnel in stream)
        yield from (prefetched(decoded, prefetch) if prefetch else decoded)

    def _model_batch(self, funnel: FunnelBatch):
        batch, labels = to_model_batch(funnel)
        return batch, labels if self.columns is None else labels[:, self.columns]

    @property
    def labels(self) -> torch.Tensor:
        import pyarrow.parquet as pq

        _same_preparation(self.shards)
        files = {
            f: pq.ParquetFile(f, page_checksum_verification=True)
            for f in dict.fromkeys(path for path, _ in self.shards.row_groups)
        }
        parts = [read_group(f, files[f], g, ["click", "conversion"]) for f, g in self.shards.row_groups]
        pairs = torch.from_numpy(
            np.concatenate(
                [np.stack([t.column("click").to_numpy(), t.column("conversion").to_numpy()], 1) for t in parts]
            ).astype(np.float32)
        )
        labels = funnel_labels(pairs)
        return labels if self.columns is None else labels[:, self.columns]

    def all_labels(self) -> torch.Tensor:
        return self.labels

    def subsample(self, n: int, generator: torch.Generator) -> StreamedSplit:
        """Whole row groups, seeded, holding at least `n` rows (`ShardedSplit.subsample`)."""
        return StreamedSplit(self.shards.subsample(n, generator), self.columns, self.as_processes)

    def select_columns(self, cols: list[int]) -> StreamedSplit:
        return StreamedSplit(
            self.shards, [self.columns[c] for c in cols] if self.columns else list(cols), self.as_processes
        )

    def to(self, device) -> StreamedSplit:
        return self  # batches move to the device as they are read


_DONE = object()


def prefetched(items: Iterable, depth: int = 2) -> Iterator:
    """The items of `items`, produced on a background thread at most `depth` ahead (pyarrow's reads and
    torch's kernels release the GIL, so reading overlaps training). Order is kept; an error in the
    producer is raised here; leaving early stops the producer."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(_DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            box.put(err)

    worker = threading.Thread(target=produce, daemon=True, name="mtlab-prefetch")
    worker.start()
    try:
        while True:
            item = box.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def load_funnel(folder: str | Path, tasks=None, in_memory: bool | None = None, max_memory_rows: int = 2_000_000):
    """Prepared funnel shards as MultiTaskData with the tasks ctr, cvr, ctcvr: in memory (tensors, as
    the other tabular data) when they hold at most `max_memory_rows` rows or `in_memory=True`, else
    streamed (`StreamedSplit`)."""
    from .tabular import FeatureSpec, MultiTaskData, TabularSplit

    folder = Path(folder)
    manifest = load_manifest(folder)
    sizes, singles, bags = manifest["vocab_sizes"], manifest["single_fields"], manifest["bag_fields"]
    numerics = manifest.get("numeric_fields", [])
    features = FeatureSpec(
        cat_names=tuple(f"f{f}" for f in singles),
        cat_cardinalities=tuple(sizes[f] for f in singles),
        num_names=tuple(f"n{f}" for f in numerics),
        bag_names=tuple(f"bag{f}" for f in bags),
        bag_cardinalities=tuple(sizes[f] for f in bags),
    )
    in_memory = sum(manifest["rows"].values()) <= max_memory_rows if in_memory is None else in_memory
    splits = {}
    for split in ("train", "valid", "test"):
        shards = ShardedSplit(folder, split)
        if in_memory:
            batch, labels = to_model_batch(_whole(shards))
            splits[split] = TabularSplit(batch.cat, batch.num, labels, batch.bags)
        else:
            splits[split] = StreamedSplit(shards)
    name = manifest.get("name", manifest["dataset"])
    encoding = _raw_encoding(folder, manifest)
    data = MultiTaskData(
        name=name, tasks=FUNNEL_TASKS, features=features, source=str(folder), encoding=encoding, **splits
    )
    return data.select_tasks(tasks) if tasks else data


def _raw_encoding(folder: Path, manifest: dict):
    """How AliExpress's CSV columns become the shards' inputs (the converter's vocabularies, raw
    numbers), for new rows in the published layout; None for Ali-CCP, whose raw rows are sparse
    feature lists joined across two files, not a table's rows."""
    from .encoding import Categorical, Encoding, Numeric, Target

    if manifest.get("dataset") != "aliexpress" or manifest.get("bag_fields"):
        return None
    try:
        vocab = json.loads((folder / "vocab.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return Encoding(
        {f"f{f}": Categorical(f, tuple(vocab[f]), "text") for f in manifest["single_fields"]},
        {f"n{f}": Numeric(f) for f in manifest.get("numeric_fields", [])},
        {"ctr": Target("click"), "cvr": Target("conversion"), "ctcvr": Target("conversion")},
    )


def _whole(shards: ShardedSplit) -> FunnelBatch:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {f: pq.ParquetFile(f, page_checksum_verification=True) for f in shards.files}
    groups = [read_group(f, file, g) for f, file in files.items() for g in range(file.metadata.num_row_groups)]
    return _to_batch(shards.fields, pa.concat_tables(groups))


def _identity(folder: Path) -> tuple:
    """What names one preparation of `folder`: its manifest's inode and modification time (a new
    preparation is swapped in whole, with a new manifest.json)."""
    info = (Path(folder) / "manifest.json").stat()
    return info.st_ino, info.st_mtime_ns


def _same_preparation(split) -> None:
    """Stop a reader whose folder was prepared again while it read (its vocabularies and row counts
    would no longer fit the shards it opens next)."""
    try:
        now = _identity(split.folder)
    except OSError:
        now = None
    if now != split.identity:
        raise DataError(
            f"{split.folder} was prepared again while this run read it (the shards no longer fit what it "
            "loaded); run again once the preparation is done, or prepare into another --out"
        )


def read_group(path, file, group: int, columns=None):
    """Row group `group` of the open ParquetFile `file` (of the shard `path`), its pages' CRC checked (the converter writes
    them): bytes damaged on disk since the shard was checked (bit rot keeps a file's size and time)
    are a DataError naming the shard, not a traceback or wrong numbers."""
    try:
        return file.read_row_group(group, columns=columns)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid / IOError
        raise DataError(
            f"{path} is damaged ({str(err).splitlines()[0][:200]}); prepare again (python -m mtlab.data prepare …)"
        ) from err


def load_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "manifest.json"
    hint = " or ".join(f"`{c}`" for c in PREPARE_COMMANDS.values())
    if not path.exists():
        raise DataError(f"no prepared data at {folder} (manifest.json missing); prepare your raw files with {hint}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is damaged ({err}); prepare again with {hint}") from err
    problem = _manifest_problem(manifest)
    if problem:
        raise DataError(f"{path} is not a whole preparation ({problem}); prepare again with {hint}")
    missing = [
        name for shards in manifest.get("shards", {}).values() for name in shards if not (Path(folder) / name).exists()
    ]
    repair = f"prepare again with {PREPARE_COMMANDS.get(manifest.get('dataset'), hint)}"
    if missing:
        raise DataError(f"{folder} lacks the shard(s) {', '.join(missing[:3])} its manifest lists; {repair}")
    check_files(Path(folder), manifest["shard_sha256"], repair)
    return manifest


SHARD_NAME = re.compile(r"^(train|valid|test)-\d{5}\.parquet$")


def _manifest_problem(manifest) -> str | None:
    """What is wrong with a manifest as a whole, or None: its shape, every field's type, shard names that
    are not the converter's (a name such as ../x.parquet or an absolute path would read outside the
    folder), a checksum for every shard."""
    if not isinstance(manifest, dict):
        return f"it holds a {type(manifest).__name__}, not a manifest"
    missing = [k for k in ("rows", "shards", "single_fields", "bag_fields", "vocab_sizes") if k not in manifest]
    if missing:
        return f"it lacks {', '.join(missing)}"

    def count(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    shards, rows = manifest["shards"], manifest["rows"]
    if not isinstance(shards, dict) or not isinstance(rows, dict):
        return "`shards` and `rows` must map each split to its shards and its row count"
    for split in ("train", "valid", "test"):
        if not isinstance(shards.get(split), list) or not count(rows.get(split)):
            return f"it lists no {split} shards or row count"
        strange = [str(n) for n in shards[split] if not isinstance(n, str) or not SHARD_NAME.match(n)]
        if strange:
            return f"shard name(s) {strange[:2]} are not the converter's ({split}-NNNNN.parquet, inside the folder)"
    lists = {k: manifest.get(k, []) for k in ("single_fields", "bag_fields", "numeric_fields")}
    for key, value in lists.items():
        if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
            return f"`{key}` must be a list of field names"
    sizes = manifest["vocab_sizes"]
    if not isinstance(sizes, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes.values()
    ):
        return "`vocab_sizes` must map each field to a positive whole number"
    if any(f not in sizes for f in [*lists["single_fields"], *lists["bag_fields"]]):
        return "a field has no vocabulary size"
    sums = manifest.get("shard_sha256")
    if sums is None:
        return "it lists no checksums of its shards (prepared by an older mtlab)"
    listed = [n for names in shards.values() for n in names]
    if not isinstance(sums, dict) or any(not isinstance(sums.get(n), str) or len(sums[n]) != 64 for n in listed):
        return "`shard_sha256` must give every shard's sha256"
    return None


# --- the built-in funnel datasets, once prepared (their converters: mtlab.data.converters) -------------

COUNTRIES = ("NL", "ES", "FR", "US", "RU")  # AliExpress's country datasets


def check_country(country: str) -> str:
    code = str(country).upper()
    if code not in COUNTRIES:
        raise DataError(f"country {country!r}: AliExpress has {', '.join(COUNTRIES)}")
    return code


def aliccp_dir(out: str | Path | None = None) -> Path:
    """Where the prepared Ali-CCP shards are (default data/ali-ccp)."""
    from .download import data_dir

    return Path(out) if out else data_dir() / "ali-ccp"


def aliexpress_dir(country: str, out: str | Path | None = None) -> Path:
    """Where a country's prepared AliExpress shards are (default data/aliexpress-<cc>)."""
    from .download import data_dir

    return Path(out) if out else data_dir() / f"aliexpress-{check_country(country).lower()}"


def load_aliccp(
    folder: str | Path | None = None, tasks=None, in_memory: bool | None = None, max_memory_rows: int = 2_000_000
):
    """The prepared Ali-CCP shards (default data/ali-ccp) as MultiTaskData (`load_funnel`)."""
    return load_funnel(aliccp_dir(folder), tasks, in_memory, max_memory_rows)


def load_aliexpress(
    country: str = "NL",
    folder: str | Path | None = None,
    tasks=None,
    in_memory: bool | None = None,
    max_memory_rows: int = 2_000_000,
):
    """A country's prepared shards (default data/aliexpress-<cc>) as MultiTaskData (`load_funnel`)."""
    return load_funnel(aliexpress_dir(country, folder), tasks, in_memory, max_memory_rows)
