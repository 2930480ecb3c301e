"""AliExpress (Tianchi dataset 74690; Li et al., CIKM 2020): the search logs of five countries, each
published as `train.csv` and `test.csv` in a folder `AliExpress_<CC>` with the header

    search_id, categorical_1 … categorical_16, numerical_1 … numerical_63, click, conversion

(one impression a line; the layout of the multi-task benchmarks, e.g. MTReclib). `prepare(raw,
country)` converts one country's files once into Parquet shards under data/aliexpress-<cc>/ with
vocabularies (a minimum count; rarer values and values never seen in training share the unknown code 0)
and a manifest, in two streaming passes over blocks of the files (pyarrow's CSV reader: columnar and
vectorized, memory bounded by a block and the vocabularies). Validation: 10 % of the training
searches (all impressions of a search together), chosen by a hash of search_id. A malformed line (a
wrong number of fields, a label that is not 0 or 1, conversion without click, a numeric feature
that is not a finite number) is counted, the first line numbers kept, and skipped.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..download import sha256_of
from ..funnel_shards import aliexpress_dir, check_country
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
    label_faults,
    not_compressed,
    report_rows,
    value_counts,
    vocabulary,
)

CATEGORICAL = tuple(f"categorical_{i}" for i in range(1, 17))
NUMERICAL = tuple(f"numerical_{i}" for i in range(1, 64))
COLUMNS = ("search_id", *CATEGORICAL, *NUMERICAL, "click", "conversion")
SPLITS = ("train", "test")
FORMAT_VERSION = 1
NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


@dataclass(frozen=True)
class PrepareSettings:
    min_count: int = 5  # values seen fewer times in training share the unknown code 0
    valid_per_mille: int = 100  # training searches held out for validation (by a hash of search_id)
    shard_rows: int = 4_000_000
    row_group_rows: int = 65_536
    block_bytes: int = 16 << 20  # CSV bytes parsed at once


def raw_files(raw: str | Path, country: str) -> dict[str, Path]:
    """train.csv and test.csv of a country, in raw/AliExpress_<CC>/ or raw/ itself."""
    raw, code = Path(raw), check_country(country)
    for folder in (raw / f"AliExpress_{code}", raw):
        files = {split: folder / f"{split}.csv" for split in SPLITS}
        if all(f.exists() for f in files.values()):
            return files
    raise DataError(
        f"{raw} lacks AliExpress_{code}/train.csv and test.csv. Download the {code} files from "
        "https://tianchi.aliyun.com/dataset/74690 and put train.csv and test.csv (header search_id, "
        "categorical_1…16, numerical_1…63, click, conversion) in DIR/AliExpress_" + code + "; or make a "
        "generated sample with `python -m mtlab.data generate aliexpress --out DIR`"
    )


def prepared_dir(country: str, out: str | Path | None = None) -> Path:
    return aliexpress_dir(country, out)


def _blocks(path: Path, settings: PrepareSettings) -> CsvBlocks:
    not_compressed(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes): not even its header; give the file as published, with its rows")
    with open(path, "rb") as handle:  # utf-8-sig: a byte order mark (as Excel writes one) is no part of the header
        header = handle.readline().decode("utf-8-sig", errors="replace").strip().split(",")
    if tuple(h.strip().strip('"') for h in header) != COLUMNS:
        raise DataError(
            f"{path}: the header is not the published AliExpress one (search_id, categorical_1…16, "
            f"numerical_1…63, click, conversion); it starts {','.join(header[:4])}… Use the files as "
            "published, or write that header"
        )
    return CsvBlocks(path, list(COLUMNS), header=True, block_bytes=settings.block_bytes)


def _check(batch, blocks: CsvBlocks, first_row: int, malformed: Malformed) -> np.ndarray:
    """The valid rows' mask of a batch; the others reported (a row is counted once, for its first fault)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numeric_ok = np.ones(batch.num_rows, bool)
    finite = np.ones(batch.num_rows, bool)
    for column in ("search_id", *NUMERICAL):
        is_number = bools(pc.match_substring_regex(batch.column(column), NUMBER))
        numeric_ok &= is_number
        if column != "search_id":  # stored as float32: 1e300 would become infinity (and training "diverge")
            text = pc.if_else(pa.array(is_number), pc.utf8_trim_whitespace(batch.column(column)), "0")
            values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
            finite &= np.abs(values) <= np.finfo(np.float32).max
    faults, bad = first_faults(
        label_faults(batch.column("click"), batch.column("conversion"))
        + [
            ("a numeric field that is not a number", ~numeric_ok),
            ("a numeric field beyond float32's range (±3.4e38)", numeric_ok & ~finite),
        ],
        batch.num_rows,
    )
    for reason, rows in faults:
        report_rows(malformed, blocks, reason, rows, first_row)
    return ~bad


def prepare(
    raw: str | Path,
    country: str = "NL",
    out: str | Path | None = None,
    settings: PrepareSettings | None = None,
    quiet: bool = False,
) -> dict:
    """Convert one country's train.csv and test.csv into shards under `out` (default
    data/aliexpress-<cc>); returns the manifest (`"up_to_date": True` when nothing was done)."""
    code, settings = check_country(country), settings or PrepareSettings()
    files, out = raw_files(raw, code), prepared_dir(code, out)
    stamp = fingerprint(files, settings, FORMAT_VERSION)
    with conversion(out, stamp, "prepare aliexpress") as (done, work):
        if done:
            return done
        digests = {f.name: sha256_of(f) for f in files.values()}
        counts = _count(files["train"], settings, quiet)
        vocab = {c: vocabulary(counts[c], settings.min_count) for c in CATEGORICAL}
        malformed = Malformed()
        writer = ParquetShards(work, settings.shard_rows, settings.row_group_rows)
        for split, path in files.items():
            _encode(path, split, vocab, settings, malformed, writer, quiet)
        shards, rows, rates = writer.close()
        manifest = {
            "dataset": "aliexpress",
            "name": f"aliexpress-{code.lower()}",
            "country": code,
            "fingerprint": stamp,
            "inputs": {f"AliExpress_{code}/{n}": {"sha256": d} for n, d in digests.items()},
            "rows": rows,
            "label_rates": rates,
            "shards": shards,
            "single_fields": list(CATEGORICAL),
            "numeric_fields": list(NUMERICAL),
            "bag_fields": [],
            "vocab_sizes": {c: len(v) + 1 for c, v in vocab.items()},
        }
        return finish_conversion(out, work, manifest, vocab, malformed, f"aliexpress-{code.lower()}", quiet)


def _count(path: Path, settings: PrepareSettings, quiet: bool) -> dict[str, Counter]:
    """Pass 1: every categorical value's count over the valid training rows."""

    counts = {c: Counter() for c in CATEGORICAL}
    blocks, seen = _blocks(path, settings), 0
    with tqdm(disable=quiet, unit=" lines", desc=f"count {path.name}") as bar:
        for batch in blocks:
            valid = _check(batch, blocks, seen, Malformed())  # reported by the encoding pass
            seen += batch.num_rows
            batch = batch.filter(valid)
            for c in CATEGORICAL:
                counts[c].update(value_counts(batch.column(c)))
            bar.update(batch.num_rows)
    return counts


def _encode(
    path: Path,
    split: str,
    vocab: dict,
    settings: PrepareSettings,
    malformed: Malformed,
    writer: ParquetShards,
    quiet: bool,
) -> None:
    """Pass 2: the valid rows encoded (codes, float32 numbers, int8 labels), routed to train/valid/test."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value_sets = {c: pa.array(v, pa.string()) for c, v in vocab.items()}
    blocks, seen = _blocks(path, settings), 0
    with tqdm(disable=quiet, unit=" lines", desc=f"encode {path.name}") as bar:
        for batch in blocks:
            valid = _check(batch, blocks, seen, malformed)
            seen += batch.num_rows
            batch = batch.filter(valid)
            columns = {
                "click": pc.cast(batch.column("click"), pa.int8()),
                "conversion": pc.cast(batch.column("conversion"), pa.int8()),
            }
            for c in CATEGORICAL:
                codes = pc.index_in(batch.column(c), value_set=value_sets[c])
                columns[f"f{c}"] = pc.cast(pc.add(pc.fill_null(codes, -1), 1), pa.int32())
            for c in NUMERICAL:
                columns[f"n{c}"] = pc.cast(
                    pc.cast(pc.utf8_trim_whitespace(batch.column(c)), pa.float64()), pa.float32()
                )
            table = pa.table(columns)
            if split == "train":
                held_out = holdout(pc.utf8_trim_whitespace(batch.column("search_id")), settings.valid_per_mille)
                writer.add("valid", table.filter(pa.array(held_out)))
                writer.add("train", table.filter(pa.array(~held_out)))
            else:
                writer.add("test", table)
            bar.update(batch.num_rows)
    blocks.report_skipped(malformed, f"wrong number of fields (of {len(COLUMNS)})")


# --- a generator of files in the published layout -------------------------------------------------


def generate_raw(
    out: str | Path,
    country: str = "NL",
    n_impressions: int = 20_000,
    per_search: int = 20,
    seed: int = 0,
    test_fraction: float = 0.2,
    damaged: int = 0,
) -> dict:
    """AliExpress_<CC>/train.csv and test.csv with a planted signal: the click probability follows a
    user segment (categorical_1), an item group (categorical_5) and numerical_1; conversion after a
    click follows categorical_3 and numerical_2. `damaged` lines of each kind are appended to both
    files (too few fields, a numeric field that is not a number, conversion without click).
    Returns the planted rates."""
    import pyarrow as pa
    import pyarrow.csv as csv

    if n_impressions < per_search or per_search < 1 or not 0 < test_fraction < 1 or damaged < 0:
        raise DataError(
            f"generate: --impressions must be at least the impressions of one search ({per_search}), the test "
            f"fraction in (0, 1) and damaged lines not negative; got {n_impressions}, {test_fraction}, {damaged}"
        )
    folder = Path(out) / f"AliExpress_{check_country(country)}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    segment_effect, group_effect, kind_effect = rng.normal(size=50), rng.normal(size=200), rng.normal(size=8)
    clicks = conversions = total = 0
    for split, count in (
        ("train", n_impressions - int(n_impressions * test_fraction)),
        ("test", int(n_impressions * test_fraction)),
    ):
        offset = 0 if split == "train" else 10**7
        search = offset + np.arange(count) // per_search
        cats = {c: rng.integers(0, 10 + 30 * k, count) for k, c in enumerate(CATEGORICAL)}
        cats["categorical_1"] = (search * 7919) % 50  # the searcher's segment, fixed per search
        nums = {c: rng.random(count).astype(np.float32) for c in NUMERICAL}
        logit = (
            segment_effect[cats["categorical_1"]]
            + group_effect[cats["categorical_5"] % 200]
            + 2 * nums["numerical_1"]
            - 2.5
        )
        click = rng.random(count) < 1 / (1 + np.exp(-logit))
        p_conv = 1 / (1 + np.exp(-(kind_effect[cats["categorical_3"] % 8] + 2 * nums["numerical_2"] - 2)))
        conversion = click & (rng.random(count) < p_conv)
        table = pa.table(
            {
                "search_id": search,
                **cats,
                **nums,
                "click": click.astype(np.int8),
                "conversion": conversion.astype(np.int8),
            }
        )
        buffer = io.BytesIO()
        csv.write_csv(table, buffer, csv.WriteOptions(include_header=False, quoting_style="none"))
        with open(folder / f"{split}.csv", "wb") as handle:
            handle.write((",".join(COLUMNS) + "\n").encode())
            handle.write(buffer.getvalue())
            fields = ["1"] * len(COLUMNS)
            not_a_number = fields[:]
            not_a_number[COLUMNS.index("numerical_3")] = "x"
            no_click = fields[:-2] + ["0", "1"]
            for _ in range(damaged):
                handle.write(b"1,2,3\n")  # too few fields
                handle.write((",".join(not_a_number) + "\n").encode())
                handle.write((",".join(no_click) + "\n").encode())
        clicks, conversions, total = clicks + int(click.sum()), conversions + int(conversion.sum()), total + count
    return {"impressions": total, "click_rate": clicks / total, "conversion_rate": conversions / total}
