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
from .funnel_shards import FUNNEL_TASKS, ShardedSplit, StreamedSplit, funnel_labels, load_funnel, load_manifest
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


def load_aliccp(folder: str | Path | None = None, tasks=None, in_memory: bool | None = None,
                max_memory_rows: int = 2_000_000):
    """The prepared Ali-CCP shards (default data/ali-ccp) as MultiTaskData (`load_funnel`)."""
    return load_funnel(prepared_dir(folder), tasks, in_memory, max_memory_rows)


__all__ = ["FUNNEL_TASKS", "PrepareSettings", "ShardedSplit", "StreamedSplit", "funnel_labels", "generate_raw",
           "load_aliccp", "load_manifest", "parse_features", "prepare"]
