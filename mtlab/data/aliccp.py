"""Ali-CCP (Alibaba Click and Conversion Prediction, Tianchi dataset 408): its raw files converted once,
streaming, into Parquet shards with vocabularies and a manifest; and the shards read back in shuffled
batches with memory independent of the data's size. Users bring the raw files; nothing downloads them.

Raw layout (one impression a line in the skeleton, joined with the user side on common_feature_index):

    sample_skeleton_{train,test}.csv   sample_id,click,conversion,common_feature_index,num_features,feature_list
    common_features_{train,test}.csv   common_feature_index,num_features,feature_list

A feature list is features joined by \\x01, each `field_id\\x02feature_id\\x03value`; a multi-valued
field repeats its field id. Fields kept (the usual ones): user 101, 121, 122, 124–129; item 205, 206,
207, 210, 216; context 301 (one value each; the first if repeated) and the bags 109_14, 110_14,
127_14, 150_14 (user behaviour) and 508, 509, 702, 853 (cross features), at most `max_bag` ids each.

`prepare(raw, out)` makes three passes, each streaming line by line: (1) count the training ids of
every field and hash the inputs; (2) encode the common features (the user side: one row per
common_feature_index, held encoded in memory, so memory grows with the number of users, never with
the number of impressions); (3) encode the impressions in chunks, join them, and write Parquet shards
(`train` minus a validation slice chosen by a hash of sample_id, `valid`, `test`). A malformed line
(too few fields, a missing separator, a number that is not one, conversion without click, an unknown
common_feature_index) is counted, its first line numbers kept, and skipped: the manifest and the
returned report say how many and where. A rerun on inputs of the same size and modification time,
with the same settings, does nothing.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .download import data_dir, write_atomic
from .tabular import DataError

USER_FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129")
ITEM_FIELDS = ("205", "206", "207", "210", "216")
CONTEXT_FIELDS = ("301",)
SINGLE_FIELDS = USER_FIELDS + ITEM_FIELDS + CONTEXT_FIELDS
USER_BAGS = ("109_14", "110_14", "127_14", "150_14")
CROSS_BAGS = ("508", "509", "702", "853")
BAG_FIELDS = USER_BAGS + CROSS_BAGS
USER_SIDE = set(USER_FIELDS) | set(USER_BAGS)
RAW_FILES = {split: (f"sample_skeleton_{split}.csv", f"common_features_{split}.csv") for split in ("train", "test")}
FORMAT_VERSION = 1
FIRST_BAD_LINES = 5


@dataclass(frozen=True)
class PrepareSettings:
    min_count: int = 5  # ids seen fewer times in training share the unknown bucket 0
    max_bag: int = 50  # ids kept per bag field and impression (the first ones)
    valid_per_mille: int = 100  # training impressions held out for validation (by a hash of sample_id)
    shard_rows: int = 1_000_000
    row_group_rows: int = 65_536
    chunk_lines: int = 100_000


class Malformed:
    """Counts malformed lines per file and reason, keeping the first few line numbers."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.lines: dict[str, list[int]] = {}

    def add(self, file: str, line: int, reason: str) -> None:
        key = f"{file}: {reason}"
        self.counts[key] += 1
        if len(self.lines.setdefault(key, [])) < FIRST_BAD_LINES:
            self.lines[key].append(line)

    def report(self) -> dict:
        return {key: {"lines": self.counts[key], "first_line_numbers": self.lines[key]} for key in sorted(self.counts)}


def parse_features(text: str) -> dict[str, list[str]] | None:
    """field → feature ids of a feature list (None when a feature lacks a separator)."""
    fields: dict[str, list[str]] = {}
    if not text:
        return fields
    for feature in text.split("\x01"):
        field, sep, rest = feature.partition("\x02")
        feature_id, sep2, _ = rest.partition("\x03")
        if not sep or not sep2 or not field or not feature_id:
            return None
        fields.setdefault(field, []).append(feature_id)
    return fields


def _lines(path: Path, digest=None) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) of a file, read in binary (hashed on the way)."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if digest is not None:
                digest.update(raw)
            yield number, raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _skeleton_fields(line: str):
    """(sample_id, click, conversion, common index, feature text) or a reason it is malformed."""
    parts = line.split(",", 5)
    if len(parts) < 6:
        return f"too few fields ({len(parts)} of 6)"
    sample_id, click, conversion, common, _, features = parts
    if click not in ("0", "1") or conversion not in ("0", "1"):
        return "click or conversion is not 0 or 1"
    if conversion == "1" and click == "0":
        return "conversion without click"
    return sample_id, int(click), int(conversion), common, features


def _check_raw(raw: Path) -> None:
    missing = [name for pair in RAW_FILES.values() for name in pair if not (raw / name).exists()]
    if missing:
        raise DataError(f"{raw} lacks the Ali-CCP file(s) {', '.join(missing)}. Download the dataset from "
                        "https://tianchi.aliyun.com/dataset/408 (sample_train.tar.gz, sample_test.tar.gz), unpack "
                        "both into one folder and pass it as --raw; or make a generated sample with "
                        "`python -m mtlab.data generate ali-ccp --out DIR`")


def _fingerprint(raw: Path, settings: PrepareSettings) -> dict:
    files = {name: {"bytes": (raw / name).stat().st_size, "mtime_ns": (raw / name).stat().st_mtime_ns}
             for pair in RAW_FILES.values() for name in pair}
    return {"format": FORMAT_VERSION, "settings": settings.__dict__, "files": files}


def prepared_dir(out: str | Path | None = None) -> Path:
    return Path(out) if out else data_dir() / "ali-ccp"


def prepare(raw: str | Path, out: str | Path | None = None, settings: PrepareSettings | None = None,
            quiet: bool = False) -> dict:
    """Convert the raw files in `raw` into shards under `out` (default data/ali-ccp or
    $MTLAB_DATA_DIR/ali-ccp); returns the manifest (with `"up_to_date": True` when nothing was done)."""
    raw, out, settings = Path(raw), prepared_dir(out), settings or PrepareSettings()
    _check_raw(raw)
    fingerprint = _fingerprint(raw, settings)
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("fingerprint") == fingerprint and all((out / s).exists() for shards in
                                                               manifest["shards"].values() for s in shards):
            return {**manifest, "up_to_date": True}
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.parquet"):  # a conversion of other inputs or settings: replaced, never mixed
        old.unlink()
    malformed = Malformed()
    counts, digests = _count(raw, malformed, quiet)
    vocab = {field: _vocabulary(counts[field], settings.min_count) for field in SINGLE_FIELDS + BAG_FIELDS}
    index = {f: {fid: i + 1 for i, fid in enumerate(v)} for f, v in vocab.items()}  # id → code, built once
    writer = _ShardWriter(out, settings)
    for split in ("train", "test"):
        skeleton, common = RAW_FILES[split]
        users = _encode_common(raw / common, index, settings, malformed, quiet)
        _encode_skeleton(raw / skeleton, users, index, settings, malformed, writer, split, quiet)
    shards, rows, rates = writer.close()
    manifest = {"dataset": "ali-ccp", "fingerprint": fingerprint, "inputs": {n: {"sha256": d} for n, d in digests.items()},
                "rows": rows, "label_rates": rates, "shards": shards,
                "single_fields": list(SINGLE_FIELDS), "bag_fields": list(BAG_FIELDS),
                "vocab_sizes": {f: len(v) + 1 for f, v in vocab.items()},  # + the unknown bucket 0
                "malformed": malformed.report(), "malformed_lines": sum(malformed.counts.values())}
    write_atomic(out / "vocab.json", json.dumps({f: list(v) for f, v in vocab.items()}).encode())
    write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
    if manifest["malformed_lines"] and not quiet:
        print(f"ali-ccp: {manifest['malformed_lines']} malformed line(s) skipped: "
              + "; ".join(f"{k} ({v['lines']}, first at lines {v['first_line_numbers']})"
                          for k, v in manifest["malformed"].items()))
    return {**manifest, "up_to_date": False}


def _count(raw: Path, malformed: Malformed, quiet: bool) -> tuple[dict[str, Counter], dict[str, str]]:
    """Pass 1: every field's id counts over the training files, and every input's sha256."""
    counts = {field: Counter() for field in SINGLE_FIELDS + BAG_FIELDS}
    digests = {}
    for split in ("train", "test"):
        for name in RAW_FILES[split]:
            digest = hashlib.sha256()
            for number, line in tqdm(_lines(raw / name, digest), disable=quiet, unit=" lines", desc=f"count {name}"):
                if split != "train" or _header(number, line):
                    continue
                text = _feature_text(name, line)
                fields = parse_features(text) if text is not None else None
                if fields is None:
                    continue  # reported by the encoding pass
                for field, ids in fields.items():
                    if field in counts:
                        counts[field].update(ids)
            digests[name] = digest.hexdigest()
    return counts, digests


def _header(number: int, line: str) -> bool:
    """The published files have none; a copy that kept a header line names its first column."""
    return number == 1 and line.split(",", 1)[0].strip().lower() in ("sample_id", "common_feature_index")


def _feature_text(name: str, line: str) -> str | None:
    if name.startswith("common"):
        parts = line.split(",", 2)
        return parts[2] if len(parts) == 3 else None
    parsed = _skeleton_fields(line)
    return parsed[4] if isinstance(parsed, tuple) else None


def _vocabulary(counter: Counter, min_count: int) -> tuple[str, ...]:
    """Ids seen at least `min_count` times, most frequent first (ties by id): index i + 1."""
    kept = [(n, fid) for fid, n in counter.items() if n >= min_count]
    return tuple(fid for _, fid in sorted(kept, key=lambda x: (-x[0], x[1])))


def _encode(fields: dict[str, list[str]], index: dict[str, dict[str, int]], singles, bags, max_bag: int):
    single = [index[f].get(fields[f][0], 0) if f in fields else 0 for f in singles]
    bag = {f: [index[f].get(x, 0) for x in fields.get(f, ())[:max_bag]] for f in bags}
    return single, bag


def _encode_common(path: Path, index, settings: PrepareSettings, malformed: Malformed, quiet: bool) -> dict:
    """Pass 2: the user side, one encoded row per common_feature_index."""
    users = {}
    for number, line in tqdm(_lines(path), disable=quiet, unit=" lines", desc=f"encode {path.name}"):
        if _header(number, line):
            continue
        parts = line.split(",", 2)
        if len(parts) < 3:
            malformed.add(path.name, number, f"too few fields ({len(parts)} of 3)")
            continue
        fields = parse_features(parts[2])
        if fields is None:
            malformed.add(path.name, number, "a feature without its \\x02 or \\x03 separator")
            continue
        users[parts[0]] = _encode(fields, index, USER_FIELDS, USER_BAGS, settings.max_bag)
    return users


class _ShardWriter:
    """Buffers encoded rows per split and writes Parquet shards (atomically, each a new file)."""

    def __init__(self, out: Path, settings: PrepareSettings):
        self.out, self.settings = out, settings
        self.buffers = {split: [] for split in ("train", "valid", "test")}
        self.shards = {split: [] for split in self.buffers}
        self.rows = dict.fromkeys(self.buffers, 0)
        self.clicks = dict.fromkeys(self.buffers, 0)
        self.conversions = dict.fromkeys(self.buffers, 0)

    def add(self, split: str, row: tuple) -> None:
        self.buffers[split].append(row)
        self.rows[split] += 1
        self.clicks[split] += row[0]
        self.conversions[split] += row[1]
        if len(self.buffers[split]) >= self.settings.shard_rows:
            self.flush(split)

    def flush(self, split: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self.buffers[split]
        if not rows:
            return
        columns = {"click": pa.array([r[0] for r in rows], pa.int8()),
                   "conversion": pa.array([r[1] for r in rows], pa.int8())}
        single = np.asarray([r[2] for r in rows], dtype=np.int32)
        for k, field in enumerate(SINGLE_FIELDS):
            columns[f"f{field}"] = pa.array(single[:, k])
        for field in BAG_FIELDS:
            columns[f"bag{field}"] = pa.array([r[3][field] for r in rows], pa.list_(pa.int32()))
        name = f"{split}-{len(self.shards[split]):05d}.parquet"
        tmp = self.out / f".{name}.tmp"
        pq.write_table(pa.table(columns), tmp, row_group_size=self.settings.row_group_rows)
        tmp.replace(self.out / name)
        self.shards[split].append(name)
        self.buffers[split] = []

    def close(self):
        for split in self.buffers:
            self.flush(split)
        rates = {split: {"click": self.clicks[split] / max(1, self.rows[split]),
                         "conversion": self.conversions[split] / max(1, self.rows[split]),
                         "conversion_given_click": self.conversions[split] / max(1, self.clicks[split])}
                 for split in self.buffers}
        return self.shards, self.rows, rates


def _encode_skeleton(path: Path, users: dict, index, settings: PrepareSettings, malformed: Malformed,
                     writer: _ShardWriter, split: str, quiet: bool) -> None:
    """Pass 3: each impression encoded, joined with its user side, routed to its split's shards."""
    item_singles = ITEM_FIELDS + CONTEXT_FIELDS
    for number, line in tqdm(_lines(path), disable=quiet, unit=" lines", desc=f"encode {path.name}"):
        if _header(number, line):
            continue
        parsed = _skeleton_fields(line)
        if isinstance(parsed, str):
            malformed.add(path.name, number, parsed)
            continue
        sample_id, click, conversion, common, text = parsed
        fields = parse_features(text)
        if fields is None:
            malformed.add(path.name, number, "a feature without its \\x02 or \\x03 separator")
            continue
        user = users.get(common)
        if user is None:
            malformed.add(path.name, number, "unknown common_feature_index")
            continue
        item_single, cross = _encode(fields, index, item_singles, CROSS_BAGS, settings.max_bag)
        single = user[0] + item_single
        bags = {**user[1], **cross}
        target = split
        if split == "train" and zlib.crc32(sample_id.encode()) % 1000 < settings.valid_per_mille:
            target = "valid"
        writer.add(target, (click, conversion, single, bags))


# --- a generator of raw files in the exact layout --------------------------------------------------

def generate_raw(out: str | Path, n_impressions: int = 20_000, n_users: int = 2_000, n_items: int = 1_000,
                 seed: int = 0, test_fraction: float = 0.2, damaged: int = 0) -> dict:
    """Raw Ali-CCP files with a planted signal: a user's and an item's propensity and the match of
    the user's taste with the item's kind (latent factors behind fields 101 and 205) set the click
    probability; conversion after a click depends on the
    item's price tier (field 216) and the user's age group (field 124). `damaged` lines of each
    skeleton file are broken on purpose (each kind in turn: too few fields, a missing separator,
    an unknown common_feature_index). Returns the planted rates."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    taste, kind = rng.normal(size=(n_users, 4)), rng.normal(size=(n_items, 4))
    user_bias, item_bias = rng.normal(size=n_users), rng.normal(size=n_items)
    age, price = rng.integers(0, 6, n_users), rng.integers(0, 5, n_items)
    behaviour = [rng.choice(n_items, size=rng.integers(1, 12), replace=False) for _ in range(n_users)]
    n_test = int(n_impressions * test_fraction)
    clicks = conversions = 0
    for split, count in (("train", n_impressions - n_test), ("test", n_test)):
        skeleton_name, common_name = RAW_FILES[split]
        user_of_common = rng.permutation(n_users)
        with open(out / common_name, "w", encoding="utf-8", newline="\n") as common:
            for c, u in enumerate(user_of_common):
                feats = [("101", f"u{u}"), ("121", f"g{u % 97}"), ("122", f"s{u % 13}"), ("124", f"a{age[u]}"),
                         ("125", f"b{u % 5}"), ("126", f"c{u % 3}"), ("127", f"d{u % 7}"), ("128", f"e{u % 2}"),
                         ("129", f"h{u % 11}")]
                feats += [("127_14", f"i{i}") for i in behaviour[u]] + [("150_14", f"k{i % 50}") for i in behaviour[u][:3]]
                text = "\x01".join(f"{f}\x02{v}\x03{1.0:g}" for f, v in feats)
                common.write(f"cf{split}{c},{len(feats)},{text}\n")
        commons = rng.integers(0, n_users, count)
        items = rng.integers(0, n_items, count)
        with open(out / skeleton_name, "w", encoding="utf-8", newline="\n") as skeleton:
            for k in range(count):
                u, i = user_of_common[commons[k]], items[k]
                p_click = 1 / (1 + np.exp(-(taste[u] @ kind[i] + user_bias[u] + item_bias[i] - 1.5)))
                click = int(rng.random() < p_click)
                p_conv = 1 / (1 + np.exp(-(1.2 * (price[i] < 2) + 0.6 * (age[u] > 2) - 1.5)))
                conversion = int(click and rng.random() < p_conv)
                clicks, conversions = clicks + click, conversions + conversion
                feats = [("205", f"i{i}"), ("206", f"t{i % 40}"), ("207", f"p{i % 30}"), ("210", f"q{i % 20}"),
                         ("216", f"r{price[i]}"), ("301", f"x{k % 3}"), ("508", f"m{i % 9}"), ("853", f"n{u % 9}")]
                feats += [("509", f"o{i % 4}"), ("509", f"o{(i + 1) % 4}")]  # a multi-valued cross field
                text = "\x01".join(f"{f}\x02{v}\x03{1.0:g}" for f, v in feats)
                line = f"{split}{k},{click},{conversion},cf{split}{commons[k]},{len(feats)},{text}"
                if k < damaged * 3 and k % 3 == 0:
                    line = f"{split}{k},{click},{conversion}"  # too few fields
                elif k < damaged * 3 and k % 3 == 1:
                    line = line.replace("\x02", "", 1)  # a missing separator
                elif k < damaged * 3 and k % 3 == 2:
                    line = line.replace(f"cf{split}{commons[k]},", "cf-missing,", 1)  # unknown common index
                skeleton.write(line + "\n")
    return {"impressions": n_impressions, "click_rate": clicks / n_impressions,
            "conversion_rate": conversions / n_impressions}


# --- reading the shards back -----------------------------------------------------------------------

@dataclass
class FunnelBatch:
    """Encoded impressions: single-valued field ids [B, F] and per bag field (flat ids, offsets) for
    `nn.EmbeddingBag`; labels [B, 2] = click, conversion."""

    single: torch.Tensor
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
        self.files = [self.folder / name for name in manifest["shards"][split]]
        self.n_rows = manifest["rows"][split]
        self.row_groups, self.group_rows = [], []
        for f in self.files:
            meta = pq.ParquetFile(f).metadata
            for g in range(meta.num_row_groups):
                self.row_groups.append((f, g))
                self.group_rows.append(meta.row_group(g).num_rows)
        self.largest_buffer = 0  # the most rows held at once (tests check the bound)

    def __len__(self) -> int:
        return self.n_rows

    def epoch_plan(self, generator: torch.Generator | None = None, shuffle: bool = True) -> tuple[list[int], int]:
        """The epoch's row-group order and the seed of its buffer shuffles, drawn alike on every process."""
        if not shuffle:
            return list(range(len(self.row_groups))), 0
        order = torch.randperm(len(self.row_groups), generator=generator).tolist()
        return order, int(torch.randint(2**62, (1,), generator=generator))

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True,
                rank: int = 0, world: int = 1) -> Iterator[FunnelBatch]:
        yield from self.rank_batches(self.epoch_plan(generator, shuffle), batch_size, shuffle, rank, world)

    def rank_batches(self, plan, batch_size: int, shuffle: bool = True, rank: int = 0,
                     world: int = 1) -> Iterator[FunnelBatch]:
        """Process `rank`'s batches of an epoch plan (all of them when world = 1)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        order, seed = plan
        local_batch = batch_size // world + (rank < batch_size % world)
        steps = self._common_steps(order, batch_size, world) if world > 1 else None
        mixer = torch.Generator().manual_seed(seed + rank)
        groups = order[rank::world]
        buffer, held, done = [], 0, 0
        for position, k in enumerate(groups):
            path, group = self.row_groups[k]
            table = pq.ParquetFile(path).read_row_group(group)
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
                yield _to_batch(rows.take(pa.array(index[start:start + local_batch].numpy())))
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
                raise DataError(f"{self.split}: {len(self.row_groups)} row group(s) and batch size {batch_size} cannot "
                                f"feed {world} processes; prepare with smaller row groups, use fewer processes or a "
                                "larger batch")
            steps.append(-(-rows // local))
        return min(steps)

    def global_batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True,
                       world: int = 1) -> Iterator[FunnelBatch]:
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
    return FunnelBatch(torch.cat([p.single for p in parts]), bags, torch.cat([p.labels for p in parts]))


def _to_batch(table) -> FunnelBatch:
    single = torch.from_numpy(np.stack([table.column(f"f{f}").to_numpy() for f in SINGLE_FIELDS], 1).astype(np.int64))
    bags = {}
    for field in BAG_FIELDS:
        column = table.column(f"bag{field}").combine_chunks()
        offsets = torch.from_numpy(column.offsets.to_numpy().astype(np.int64))
        values = torch.from_numpy(column.values.to_numpy(zero_copy_only=False).astype(np.int64))
        start = int(offsets[0])
        bags[field] = (values[start:int(offsets[-1])], offsets[:-1] - start)
    labels = torch.from_numpy(np.stack([table.column("click").to_numpy(), table.column("conversion").to_numpy()],
                                       1).astype(np.float32))
    return FunnelBatch(single, bags, labels)


def padded_bags(bags: dict[str, tuple[torch.Tensor, torch.Tensor]], n_rows: int) -> torch.Tensor:
    """Per bag field (flat codes, offsets) → [B, F, L] codes + 1 with 0 as padding (L: the longest
    bag of the batch), built without a loop over rows."""
    lengths, shifted = [], []
    for field in BAG_FIELDS:
        values, offsets = bags[field]
        ends = torch.cat([offsets[1:], offsets.new_tensor([len(values)])])
        lengths.append(ends - offsets)
        shifted.append((values, offsets))
    longest = max(1, int(torch.stack(lengths).max()) if n_rows else 1)
    out = torch.zeros(n_rows, len(BAG_FIELDS), longest, dtype=torch.int64)
    for f, ((values, offsets), length) in enumerate(zip(shifted, lengths)):
        row = torch.repeat_interleave(torch.arange(n_rows), length)
        slot = torch.arange(len(values)) - torch.repeat_interleave(offsets, length)
        out[row, f, slot] = values + 1
    return out


FUNNEL_TASKS = ("ctr", "cvr", "ctcvr")


def funnel_labels(click_conversion: torch.Tensor) -> torch.Tensor:
    """[B, 2] click, conversion → [B, 3] for the tasks ctr (click), cvr (conversion, NaN on impressions
    without a click: the conversion label is never used there) and ctcvr (click and conversion)."""
    click, conversion = click_conversion[:, 0], click_conversion[:, 1]
    cvr = torch.where(click > 0, conversion, torch.full_like(conversion, float("nan")))
    return torch.stack([click, cvr, click * conversion], 1)


def to_model_batch(batch: FunnelBatch):
    """A FunnelBatch as the models' input: (Batch(single codes, no numbers, padded bags), labels [B, 3])."""
    from .tabular import Batch

    n = len(batch)
    return Batch(batch.single, torch.zeros(n, 0), padded_bags(batch.bags, n)), funnel_labels(batch.labels)


class StreamedSplit:
    """A split the fit loop reads batch by batch (`batches`), never whole: Ali-CCP's shards through
    a ShardedSplit. `labels` (for checks and scoring) reads the label columns only."""

    def __init__(self, shards: ShardedSplit, columns: list[int] | None = None, as_processes: int = 1):
        self.shards, self.columns, self.as_processes = shards, columns, as_processes

    def __len__(self) -> int:
        return len(self.shards)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True,
                rank: int = 0, world: int = 1):
        """(Batch, labels) of process `rank` of `world`; with `as_processes` = W in one process, the
        global batches W processes would train on together (`ShardedSplit.global_batches`)."""
        if self.as_processes > 1:
            stream = self.shards.global_batches(batch_size, generator, shuffle, self.as_processes)
        else:
            stream = self.shards.batches(batch_size, generator, shuffle, rank, world)
        for funnel in stream:
            batch, labels = to_model_batch(funnel)
            yield batch, labels if self.columns is None else labels[:, self.columns]

    @property
    def labels(self) -> torch.Tensor:
        import pyarrow.parquet as pq

        parts = [pq.read_table(f, columns=["click", "conversion"]) for f in self.shards.files]
        pairs = torch.from_numpy(np.concatenate([np.stack([t.column("click").to_numpy(), t.column("conversion").to_numpy()],
                                                          1) for t in parts]).astype(np.float32))
        labels = funnel_labels(pairs)
        return labels if self.columns is None else labels[:, self.columns]

    def all_labels(self) -> torch.Tensor:
        return self.labels

    def select_columns(self, cols: list[int]) -> StreamedSplit:
        return StreamedSplit(self.shards, [self.columns[c] for c in cols] if self.columns else list(cols),
                             self.as_processes)

    def to(self, device) -> StreamedSplit:
        return self  # batches move to the device as they are read


def load_aliccp(folder: str | Path | None = None, tasks=None, in_memory: bool | None = None,
                max_memory_rows: int = 2_000_000):
    """The prepared Ali-CCP shards as MultiTaskData with the tasks ctr, cvr, ctcvr: in memory
    (tensors, as the other tabular data) when it holds at most `max_memory_rows` rows or
    `in_memory=True`, else streamed (`StreamedSplit`)."""
    from .tabular import FeatureSpec, MultiTaskData, TabularSplit

    folder = prepared_dir(folder)
    manifest = load_manifest(folder)
    sizes = manifest["vocab_sizes"]
    features = FeatureSpec(cat_names=tuple(f"f{f}" for f in SINGLE_FIELDS),
                           cat_cardinalities=tuple(sizes[f] for f in SINGLE_FIELDS), num_names=(),
                           bag_names=tuple(f"bag{f}" for f in BAG_FIELDS),
                           bag_cardinalities=tuple(sizes[f] for f in BAG_FIELDS))
    in_memory = sum(manifest["rows"].values()) <= max_memory_rows if in_memory is None else in_memory
    splits = {}
    for split in ("train", "valid", "test"):
        shards = ShardedSplit(folder, split)
        if in_memory:
            batch, labels = to_model_batch(_whole(shards))
            splits[split] = TabularSplit(batch.cat, batch.num, labels, batch.bags)
        else:
            splits[split] = StreamedSplit(shards)
    data = MultiTaskData(name="ali-ccp", tasks=FUNNEL_TASKS, features=features, source=str(folder), **splits)
    return data.select_tasks(tasks) if tasks else data


def _whole(shards: ShardedSplit) -> FunnelBatch:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return _to_batch(pa.concat_tables([pq.read_table(f) for f in shards.files]))


def load_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.exists():
        raise DataError(f"no prepared Ali-CCP data at {folder} (manifest.json missing); prepare it with "
                        "`python -m mtlab.data prepare ali-ccp --raw DIR`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is damaged ({err}); prepare again with `python -m mtlab.data prepare ali-ccp "
                        "--raw DIR`") from err
