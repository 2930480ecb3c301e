"""Ali-CCP (Alibaba Click and Conversion Prediction, Tianchi dataset 408): its raw files converted once,
streaming, into Parquet shards with vocabularies and a manifest (read back by mtlab.data.funnel_shards).
Users bring the raw files; nothing downloads them.

Raw layout (one impression a line in the skeleton, joined with the user side on common_feature_index):

    sample_skeleton_{train,test}.csv   sample_id,click,conversion,common_feature_index,num_features,feature_list
    common_features_{train,test}.csv   common_feature_index,num_features,feature_list

A feature list is features joined by \\x01, each `field_id\\x02feature_id\\x03value`; a multi-valued
field repeats its field id. Fields kept (the usual ones): user 101, 121, 122, 124–129; item 205, 206,
207, 210, 216; context 301 (one value each; the first if repeated) and the bags 109_14, 110_14,
127_14, 150_14 (user behaviour) and 508, 509, 702, 853 (cross features), at most `max_bag` ids each.

`prepare(raw, out)` reads every file in blocks with pyarrow's CSV reader and parses the feature lists
column-wise (split, regular-expression extraction, `index_in` against the vocabularies: no Python
loop over lines), in three passes: (1) count the training ids of every field; (2) encode the common
features (the user side: one row per common_feature_index, held encoded in memory, so memory grows
with the number of users, never with the number of impressions); (3) encode the impressions block by
block, join them with their user row, and stream them into Parquet shards (`train` minus a
validation slice chosen by a hash of sample_id, `valid`, `test`). A malformed line (a wrong number of
fields, a feature without its separators, a label that is not 0 or 1, conversion without click, an
unknown common_feature_index) is counted, its first line numbers kept, and skipped: the manifest and
the returned report say how many and where. A rerun on inputs of the same size and modification
time, with the same settings, does nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..download import sha256_of
from ..funnel_shards import aliccp_dir
from ..tabular import DataError
from .columnar import (
    CsvBlocks,
    Malformed,
    ParquetShards,
    bools,
    conversion,
    fingerprint,
    finish_conversion,
    first_faults,
    holdout,
    in_parallel,
    label_faults,
    numbered,
    report_rows,
    value_counts,
    vocabulary,
)

USER_FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129")
ITEM_FIELDS = ("205", "206", "207", "210", "216")
CONTEXT_FIELDS = ("301",)
SINGLE_FIELDS = USER_FIELDS + ITEM_FIELDS + CONTEXT_FIELDS
USER_BAGS = ("109_14", "110_14", "127_14", "150_14")
CROSS_BAGS = ("508", "509", "702", "853")
BAG_FIELDS = USER_BAGS + CROSS_BAGS
USER_SIDE = set(USER_FIELDS) | set(USER_BAGS)
ALL_FIELDS = SINGLE_FIELDS + BAG_FIELDS
RAW_FILES = {split: (f"sample_skeleton_{split}.csv", f"common_features_{split}.csv") for split in ("train", "test")}
SKELETON = ["sample_id", "click", "conversion", "common_feature_index", "num_features", "feature_list"]
COMMON = ["common_feature_index", "num_features", "feature_list"]
FEATURE = "^(?P<field>[^\x02]+)\x02(?P<id>[^\x03]+)\x03"  # field_id \x02 feature_id \x03 value
GENERATE_CHUNK = 1 << 20  # impressions generated at once
FORMAT_VERSION = 2  # 2: vectorized conversion, validation chosen by a SipHash of sample_id


@dataclass(frozen=True)
class PrepareSettings:
    min_count: int = 5  # ids seen fewer times in training share the unknown bucket 0
    max_bag: int = 50  # ids kept per bag field and impression (the first ones)
    valid_per_mille: int = 100  # training impressions held out for validation (by a hash of sample_id)
    shard_rows: int = 4_000_000
    row_group_rows: int = 65_536
    block_bytes: int = 16 << 20  # CSV bytes parsed at once


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


def _check_raw(raw: Path) -> None:
    missing = [name for pair in RAW_FILES.values() for name in pair if not (raw / name).exists()]
    if missing:
        raise DataError(
            f"{raw} lacks the Ali-CCP file(s) {', '.join(missing)}. Download the dataset from "
            "https://tianchi.aliyun.com/dataset/408 (sample_train.tar.gz, sample_test.tar.gz), unpack "
            "both into one folder and pass it as --raw; or make a generated sample with "
            "`python -m mtlab.data generate ali-ccp --out DIR`"
        )


def prepared_dir(out: str | Path | None = None) -> Path:
    return aliccp_dir(out)


def prepare(
    raw: str | Path, out: str | Path | None = None, settings: PrepareSettings | None = None, quiet: bool = False
) -> dict:
    """Convert the raw files in `raw` into shards under `out` (default data/ali-ccp or
    $MTLAB_DATA_DIR/ali-ccp); returns the manifest (with `"up_to_date": True` when nothing was done)."""
    raw, out, settings = Path(raw), prepared_dir(out), settings or PrepareSettings()
    _check_raw(raw)
    names = [name for pair in RAW_FILES.values() for name in pair]
    stamp = fingerprint({name: raw / name for name in names}, settings, FORMAT_VERSION)
    with conversion(out, stamp, "prepare ali-ccp") as (done, work):
        if done:
            return done
        digests = {name: sha256_of(raw / name) for name in names}
        vocab = _vocabularies(raw, settings, quiet)
        codes = _Codes(vocab)
        malformed = Malformed()
        writer = ParquetShards(work, settings.shard_rows, settings.row_group_rows)
        for split in ("train", "test"):
            skeleton, common = RAW_FILES[split]
            users = _encode_common(raw / common, codes, settings, malformed, quiet)
            _encode_skeleton(raw / skeleton, users, codes, settings, malformed, writer, split, quiet)
        shards, rows, rates = writer.close()
        manifest = {
            "dataset": "ali-ccp",
            "fingerprint": stamp,
            "inputs": {n: {"sha256": d} for n, d in digests.items()},
            "rows": rows,
            "label_rates": rates,
            "shards": shards,
            "single_fields": list(SINGLE_FIELDS),
            "bag_fields": list(BAG_FIELDS),
            "vocab_sizes": {f: len(v) + 1 for f, v in vocab.items()},
        }  # + the unknown bucket 0
        return finish_conversion(out, work, manifest, vocab, malformed, "ali-ccp", quiet)


def _blocks(path: Path, names: list[str], settings: PrepareSettings) -> CsvBlocks:
    """The published files have no header; a copy that kept one names its first column."""
    with open(path, "rb") as handle:
        first = handle.readline().split(b",", 1)[0].strip().lower()
    return CsvBlocks(path, names, header=first == names[0].encode(), block_bytes=settings.block_bytes)


@dataclass
class ParsedFeatures:
    """A block's feature lists, one entry per kept feature: its row, its field (position in
    ALL_FIELDS) and its key `field\\x02id`; `bad` marks rows with a feature lacking a separator."""

    rows: np.ndarray
    fields: np.ndarray
    keys: object  # pyarrow string array
    bad: np.ndarray


def parse_feature_column(features, n: int) -> ParsedFeatures:
    """The vectorized `parse_features` of a column of feature lists (an empty list is no feature)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = pc.split_pattern(features, "\x01")
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy()
    parts = pc.extract_regex(flat, FEATURE)
    matched = bools(pc.is_valid(parts))
    bad = np.zeros(n, bool)
    bad[parents[~matched & ~bools(pc.equal(flat, ""))]] = True
    field = pc.index_in(parts.field("field"), value_set=_all_fields())
    kept = matched & bools(pc.is_valid(field))
    keep = pa.array(kept)
    keys = pc.binary_join_element_wise(parts.field("field").filter(keep), parts.field("id").filter(keep), "\x02")
    return ParsedFeatures(parents[kept], field.filter(keep).to_numpy(), keys, bad)


def _all_fields():
    import pyarrow as pa

    return pa.array(ALL_FIELDS)


def _vocabularies(raw: Path, settings: PrepareSettings, quiet: bool) -> dict[str, tuple[str, ...]]:
    """Pass 1: every field's id counts over the training files (rows that parse), then the ids kept."""

    def count(batch, names):
        good = ~_parse_faults(batch, names)
        parsed = parse_feature_column(batch.column("feature_list"), batch.num_rows)
        return batch.num_rows, value_counts(parsed.keys.filter(good[parsed.rows] & ~parsed.bad[parsed.rows]))

    counts: Counter = Counter()
    for name, names in ((RAW_FILES["train"][0], SKELETON), (RAW_FILES["train"][1], COMMON)):
        with tqdm(disable=quiet, unit=" lines", desc=f"count {name}") as bar:
            for rows, block_counts in in_parallel(partial(count, names=names), _blocks(raw / name, names, settings)):
                counts.update(block_counts)
                bar.update(rows)
    per_field: dict[str, Counter] = {f: Counter() for f in ALL_FIELDS}
    for key, n in counts.items():
        field, _, feature_id = key.partition("\x02")
        per_field[field][feature_id] = n
    return {f: vocabulary(per_field[f], settings.min_count) for f in ALL_FIELDS}


def _parse_faults(batch, names) -> np.ndarray:
    """Rows of a skeleton block whose labels are faulty (the common file has none)."""
    if names is COMMON:
        return np.zeros(batch.num_rows, bool)
    return first_faults(label_faults(batch.column("click"), batch.column("conversion")), batch.num_rows)[1]


class _Codes:
    """Every kept `field\\x02id` key in one value set, with its code within its field (i + 1)."""

    def __init__(self, vocab: dict[str, tuple[str, ...]]):
        import pyarrow as pa

        keys = [f"{f}\x02{fid}" for f in ALL_FIELDS for fid in vocab[f]]
        self.value_set = pa.array(keys, pa.string())
        self.code = np.concatenate([np.arange(1, len(vocab[f]) + 1) for f in ALL_FIELDS] + [[0]]).astype(np.int32)

    def of(self, keys) -> np.ndarray:
        import pyarrow.compute as pc

        index = pc.index_in(keys, value_set=self.value_set).fill_null(-1).to_numpy(zero_copy_only=False)
        return self.code[index]  # -1: the trailing 0, the unknown code


def _encode_fields(parsed: ParsedFeatures, codes: np.ndarray, n: int, singles, bags, max_bag: int):
    """[n, len(singles)] int32 codes (a field's first value; 0 when absent or unknown) and per bag field
    a list<int32> array (its first `max_bag` codes, in order)."""
    import pyarrow as pa

    column = np.full(len(ALL_FIELDS), -1)
    column[[ALL_FIELDS.index(f) for f in singles]] = np.arange(len(singles))
    slot = column[parsed.fields]
    is_single = slot >= 0
    rows, slots, values = parsed.rows[is_single], slot[is_single], codes[is_single]
    _, first = np.unique(rows * len(singles) + slots, return_index=True)
    single = np.zeros((n, len(singles)), np.int32)
    single[rows[first], slots[first]] = values[first]
    lists = {}
    for field in bags:
        mine = parsed.fields == ALL_FIELDS.index(field)
        rows, values = parsed.rows[mine], codes[mine]  # rows ascend: a list's features stay in order
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        kept = rank < max_bag
        offsets = np.concatenate([[0], np.cumsum(np.bincount(rows[kept], minlength=n))]).astype(np.int32)
        lists[field] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[kept], pa.int32()))
    return single, lists


@dataclass
class _Users:
    keys: object  # pyarrow string array: common_feature_index
    single: np.ndarray  # [U, len(USER_FIELDS)]
    bags: dict  # field → list<int32> array [U]


def _encode_common(path: Path, codes: _Codes, settings: PrepareSettings, malformed: Malformed, quiet: bool) -> _Users:
    """Pass 2: the user side, one encoded row per common_feature_index (the first, if repeated)."""
    import pyarrow as pa

    blocks, seen = _blocks(path, COMMON, settings), 0
    keys, singles, bags = [], [], {f: [] for f in USER_BAGS}
    with tqdm(disable=quiet, unit=" lines", desc=f"encode {path.name}") as bar:
        for batch in blocks:
            n = batch.num_rows
            parsed = parse_feature_column(batch.column("feature_list"), n)
            report_rows(malformed, blocks, "a feature without its \\x02 or \\x03 separator", parsed.bad, seen)
            single, lists = _encode_fields(parsed, codes.of(parsed.keys), n, USER_FIELDS, USER_BAGS, settings.max_bag)
            good = pa.array(~parsed.bad)
            keys.append(batch.column("common_feature_index").filter(good))
            singles.append(single[~parsed.bad])
            for f in USER_BAGS:
                bags[f].append(lists[f].filter(good))
            seen += n
            bar.update(n)
    blocks.report_skipped(malformed, f"wrong number of fields (of {len(COMMON)})")
    return _Users(
        pa.concat_arrays(keys) if keys else pa.array([], pa.string()),
        np.concatenate(singles) if singles else np.zeros((0, len(USER_FIELDS)), np.int32),
        {f: pa.concat_arrays(v) if v else pa.array([], pa.list_(pa.int32())) for f, v in bags.items()},
    )


def _encode_skeleton(
    path: Path,
    users: _Users,
    codes: _Codes,
    settings: PrepareSettings,
    malformed: Malformed,
    writer: ParquetShards,
    split: str,
    quiet: bool,
) -> None:
    """Pass 3: each block of impressions encoded, joined with its user rows, routed to its split."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def encode(numbered_batch):
        batch, first_row = numbered_batch
        n = batch.num_rows
        parsed = parse_feature_column(batch.column("feature_list"), n)
        user = pc.index_in(batch.column("common_feature_index"), value_set=users.keys)
        faults, bad = first_faults(
            label_faults(batch.column("click"), batch.column("conversion"))
            + [
                ("a feature without its \\x02 or \\x03 separator", parsed.bad),
                ("unknown common_feature_index", ~bools(pc.is_valid(user))),
            ],
            n,
        )
        item_single, cross = _encode_fields(
            parsed, codes.of(parsed.keys), n, item_singles, CROSS_BAGS, settings.max_bag
        )
        good = pa.array(~bad)
        who = user.filter(good)
        columns = {
            "click": pc.cast(batch.column("click").filter(good), pa.int8()),
            "conversion": pc.cast(batch.column("conversion").filter(good), pa.int8()),
        }
        user_single, item_single = users.single[who.to_numpy(zero_copy_only=False)], item_single[~bad]
        for k, field in enumerate(USER_FIELDS):
            columns[f"f{field}"] = pa.array(user_single[:, k])
        for k, field in enumerate(item_singles):
            columns[f"f{field}"] = pa.array(item_single[:, k])
        for field in USER_BAGS:
            columns[f"bag{field}"] = users.bags[field].take(who)
        for field in CROSS_BAGS:
            columns[f"bag{field}"] = cross[field].filter(good)
        held_out = (
            holdout(batch.column("sample_id").filter(good), settings.valid_per_mille) if split == "train" else None
        )
        return pa.table(columns), held_out, faults, first_row, n

    item_singles = ITEM_FIELDS + CONTEXT_FIELDS
    blocks = _blocks(path, SKELETON, settings)
    with tqdm(disable=quiet, unit=" lines", desc=f"encode {path.name}") as bar:
        for table, held_out, faults, first_row, n in in_parallel(encode, numbered(blocks)):
            for reason, rows in faults:
                report_rows(malformed, blocks, reason, rows, first_row)
            if held_out is None:
                writer.add("test", table)
            else:
                writer.add("valid", table.filter(pa.array(held_out)))
                writer.add("train", table.filter(pa.array(~held_out)))
            bar.update(n)
    blocks.report_skipped(malformed, f"wrong number of fields (of {len(SKELETON)})")


# --- a generator of raw files in the exact layout --------------------------------------------------


def _join(parts: list, separator: str):
    """Element-wise string join of columns (numpy arrays, pyarrow string arrays) and constants."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = [
        pa.scalar(str(p))
        if isinstance(p, (str, int))
        else p
        if isinstance(p, pa.Array)
        else pa.array(p).cast(pa.string())
        for p in parts
    ]
    return pc.binary_join_element_wise(*columns, separator)


def generate_raw(
    out: str | Path,
    n_impressions: int = 20_000,
    n_users: int = 2_000,
    n_items: int = 1_000,
    seed: int = 0,
    test_fraction: float = 0.2,
    damaged: int = 0,
) -> dict:
    """Raw Ali-CCP files with a planted signal: a user's and an item's propensity and the match of
    the user's taste with the item's kind (latent factors behind fields 101 and 205) set the click
    probability; conversion after a click depends on the
    item's price tier (field 216) and the user's age group (field 124). `damaged` lines of each
    skeleton file are broken on purpose (each kind in turn: too few fields, a missing separator,
    an unknown common_feature_index). Returns the planted rates."""
    if n_impressions < 10 or n_users < 1 or n_items < 1 or not 0 < test_fraction < 1 or damaged < 0:
        raise DataError(
            "generate: --impressions must be at least 10, users and items at least 1, the test fraction in "
            f"(0, 1) and damaged lines not negative; got {n_impressions}, {n_users}, {n_items}, {test_fraction}, "
            f"{damaged}"
        )
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
                feats = [
                    ("101", f"u{u}"),
                    ("121", f"g{u % 97}"),
                    ("122", f"s{u % 13}"),
                    ("124", f"a{age[u]}"),
                    ("125", f"b{u % 5}"),
                    ("126", f"c{u % 3}"),
                    ("127", f"d{u % 7}"),
                    ("128", f"e{u % 2}"),
                    ("129", f"h{u % 11}"),
                ]
                feats += [("127_14", f"i{i}") for i in behaviour[u]] + [
                    ("150_14", f"k{i % 50}") for i in behaviour[u][:3]
                ]
                text = "\x01".join(f"{f}\x02{v}\x03{1.0:g}" for f, v in feats)
                common.write(f"cf{split}{c},{len(feats)},{text}\n")
        with open(out / skeleton_name, "w", encoding="utf-8", newline="\n") as skeleton:
            for start in range(0, count, GENERATE_CHUNK):  # memory bounded by a chunk, whatever the count
                k = np.arange(start, min(count, start + GENERATE_CHUNK))
                commons, items = rng.integers(0, n_users, len(k)), rng.integers(0, n_items, len(k))
                users = user_of_common[commons]
                p_click = 1 / (
                    1 + np.exp(-((taste[users] * kind[items]).sum(1) + user_bias[users] + item_bias[items] - 1.5))
                )
                click = (rng.random(len(k)) < p_click).astype(np.int64)
                p_conv = 1 / (1 + np.exp(-(1.2 * (price[items] < 2) + 0.6 * (age[users] > 2) - 1.5)))
                conversion = click * (rng.random(len(k)) < p_conv)
                clicks, conversions = clicks + int(click.sum()), conversions + int(conversion.sum())
                feats = [
                    ("205", "i", items),
                    ("206", "t", items % 40),
                    ("207", "p", items % 30),
                    ("210", "q", items % 20),
                    ("216", "r", price[items]),
                    ("301", "x", k % 3),
                    ("508", "m", items % 9),
                    ("853", "n", users % 9),
                    ("509", "o", items % 4),
                    ("509", "o", (items + 1) % 4),
                ]  # 509: a multi-valued cross field
                text = _join([_join([f"{f}\x02{prefix}", ids, "\x031"], "") for f, prefix, ids in feats], "\x01")
                lines = _join(
                    [_join([split, k], ""), click, conversion, _join([f"cf{split}", commons], ""), len(feats), text],
                    ",",
                ).to_pylist()
                for j in range(min(damaged * 3, count) - start):  # broken on purpose, each kind in turn
                    if j % 3 == 0:
                        lines[j] = f"{split}{start + j},{click[j]},{conversion[j]}"  # too few fields
                    elif j % 3 == 1:
                        lines[j] = lines[j].replace("\x02", "", 1)  # a missing separator
                    else:
                        lines[j] = lines[j].replace(f"cf{split}{commons[j]},", "cf-missing,", 1)  # unknown common
                skeleton.write("\n".join(lines) + "\n")
    return {
        "impressions": n_impressions,
        "click_rate": clicks / n_impressions,
        "conversion_rate": conversions / n_impressions,
    }


__all__ = ["PrepareSettings", "generate_raw", "parse_features", "prepare", "prepared_dir"]
