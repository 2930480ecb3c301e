"""What the raw-file converters share (Ali-CCP, AliExpress): CSV read in blocks by pyarrow (columnar,
vectorized; a line with a wrong number of fields skipped and remembered), malformed lines counted with
their first line numbers, Parquet shards written by streaming writers and renamed when complete, and
a conversion's fingerprint and manifest (a rerun on the same inputs and settings does nothing)."""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

FIRST_BAD_LINES = 5


class Malformed:
    """Counts malformed lines per file and reason, keeping the first few line numbers."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.lines: dict[str, list[int]] = {}

    def add(self, key: str, count: int, first_lines) -> None:
        """`count` lines of one kind; `first_lines` (a callable giving up to k line numbers, or a list)."""
        if not count:
            return
        kept = self.lines.setdefault(key, [])
        room = FIRST_BAD_LINES - len(kept)
        if room > 0:
            kept += list(first_lines(room) if callable(first_lines) else first_lines)[:room]
        self.counts[key] += count

    def report(self) -> dict:
        return {key: {"lines": self.counts[key], "first_line_numbers": self.lines[key]} for key in sorted(self.counts)}

    def total(self) -> int:
        return sum(self.counts.values())


class CsvBlocks:
    """A CSV file's record batches (every column a string), `block_bytes` at a time. A line with a
    wrong number of fields is skipped and its line number kept in `skipped`, a line that is not UTF-8
    text likewise in `undecodable` (one bad byte costs its line, not the file); `line_of(rows)` gives
    the file line numbers of rows (0-based positions among the rows yielded)."""

    def __init__(self, path: Path, names: list[str], header: bool, block_bytes: int):
        self.path, self.names, self.header, self.block_bytes = Path(path), list(names), header, block_bytes
        self.skipped: list[int] = []
        self.undecodable: list[int] = []

    def __iter__(self):
        import pyarrow as pa
        import pyarrow.csv as csv

        def invalid(row) -> str:
            self.skipped.append(row.number)
            return "skip"

        read = csv.ReadOptions(
            use_threads=False, block_size=self.block_bytes, column_names=self.names, skip_rows=1 if self.header else 0
        )
        parse = csv.ParseOptions(quote_char=False, invalid_row_handler=invalid)
        convert = csv.ConvertOptions(
            column_types={n: pa.string() for n in self.names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,  # checked per line below: a bad byte skips its line, not the whole file
        )
        from ..tabular import DataError

        not_compressed(self.path)
        try:
            yielded = 0
            for batch in csv.open_csv(self.path, read_options=read, parse_options=parse, convert_options=convert):
                bad = _undecodable(batch)
                if bad is not None:
                    self.undecodable += self.line_of(np.flatnonzero(bad) + yielded)
                    batch = batch.filter(pa.array(~bad))
                yielded += batch.num_rows
                yield batch
        except pa.ArrowInvalid as err:
            said = str(err).strip().splitlines()[0][:200]
            if "Empty CSV file" in said:
                raise DataError(f"{self.path} is empty; give the file with its rows") from None
            hint = " (not UTF-8 text: save it as UTF-8)" if "UTF8" in said or "utf8" in said.lower() else ""
            raise DataError(f"{self.path} cannot be read{hint}: {said}") from None

    def line_of(self, rows) -> list[int]:
        first = 2 if self.header else 1
        gaps = np.sort(np.asarray(self.skipped + self.undecodable, dtype=np.int64))
        out = []
        for g in rows:
            line = int(g) + first
            while True:  # the line holding row g: g good lines (and the header) before it, bad ones skipped
                moved = int(g) + first + int(np.searchsorted(gaps, line, side="right"))
                if moved == line:
                    break
                line = moved
            out.append(line)
        return out

    def report_skipped(self, malformed: Malformed, reason: str) -> None:
        """Report the lines skipped while reading: `reason` those of a wrong number of fields."""
        malformed.add(f"{self.path.name}: {reason}", len(self.skipped), sorted(self.skipped))
        malformed.add(f"{self.path.name}: not UTF-8 text", len(self.undecodable), sorted(self.undecodable))


def _undecodable(batch) -> np.ndarray | None:
    """The rows of a batch of string columns (read without UTF-8 checks) holding bytes that are not
    UTF-8, or None when every row is text. Arrow's full validation checks a column at C speed; only a
    column that fails is decoded value by value to find its rows."""
    import pyarrow as pa

    bad = None
    for column in batch.columns:
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        rows = np.zeros(batch.num_rows, bool)
        for i, value in enumerate(column.cast(pa.binary()).to_pylist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                rows[i] = True
        bad = rows if bad is None else bad | rows
    return bad


def not_compressed(path: Path) -> None:
    """Refuse a gzip file whose name says it is text (pyarrow would read its bytes as lines)."""
    from ..tabular import DataError

    with open(path, "rb") as fh:
        start = fh.read(2)
    if start == b"\x1f\x8b" and not Path(path).name.endswith(".gz"):
        raise DataError(f"{path} is gzip-compressed but named {Path(path).name}; decompress it (gunzip) first")


def in_parallel(work: Callable, items: Iterable, workers: int | None = None) -> Iterator:
    """work(item) for every item, in order, on a few threads: pyarrow's kernels release the GIL, so
    blocks parse side by side on the cores. At most `workers` + 1 items are in flight (memory stays
    bounded by a few blocks)."""
    workers = workers or min(4, os.cpu_count() or 1)
    if workers == 1:
        yield from map(work, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def numbered(blocks: Iterable) -> Iterator[tuple]:
    """(block, the position of its first row among all rows read)."""
    seen = 0
    for batch in blocks:
        yield batch, seen
        seen += batch.num_rows


def report_rows(malformed: Malformed, blocks: CsvBlocks, reason: str, mask: np.ndarray, first_row: int) -> None:
    """Report the rows of a block where `mask` holds (first_row: the block's first row position)."""
    where = np.flatnonzero(mask)
    malformed.add(f"{blocks.path.name}: {reason}", len(where), lambda k: blocks.line_of(where[:k] + first_row))


def label_faults(click, conversion) -> list[tuple[str, np.ndarray]]:
    """The funnel labels' faults per row (string columns): a label that is not 0 or 1; conversion
    without click."""
    import pyarrow as pa
    import pyarrow.compute as pc

    binary = pa.array(["0", "1"])
    ok = bools(pc.and_(pc.is_in(click, value_set=binary), pc.is_in(conversion, value_set=binary)))
    return [
        ("click or conversion is not 0 or 1", ~ok),
        ("conversion without click", ok & bools(pc.and_(pc.equal(conversion, "1"), pc.equal(click, "0")))),
    ]


def first_faults(faults: list[tuple[str, np.ndarray]], n: int) -> tuple[list[tuple[str, np.ndarray]], np.ndarray]:
    """Each faulty row under its first fault only (a line is counted once), and the mask of faulty rows."""
    bad, exclusive = np.zeros(n, bool), []
    for reason, rows in faults:
        exclusive.append((reason, rows & ~bad))
        bad |= rows
    return exclusive, bad


def value_counts(array) -> dict:
    """{value: count} of a pyarrow array (pyarrow counts; the dict is per distinct value)."""
    import pyarrow.compute as pc

    counted = pc.value_counts(array)
    return dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()))


def vocabulary(counter: Counter, min_count: int) -> tuple[str, ...]:
    """Values seen at least `min_count` times, most frequent first (ties by value): value i has code
    i + 1 (0 is the unknown code)."""
    kept = [(n, v) for v, n in counter.items() if n >= min_count]
    return tuple(v for _, v in sorted(kept, key=lambda x: (-x[0], x[1])))


def bools(array) -> np.ndarray:
    """A pyarrow boolean array as numpy (null = False)."""
    return array.fill_null(False).to_numpy(zero_copy_only=False)


def fingerprint(files, settings, version: int) -> dict:
    """What makes a conversion the same: the format version, the settings, each input's size,
    modification time and change time (hashing them again on every call would cost a pass over the data;
    a file edited in place with its size and modification time set back still has a new change time,
    which no user can set)."""
    stats = {str(k): Path(f).stat() for k, f in files.items()}
    return {
        "format": version,
        "settings": settings.__dict__,
        "files": {
            k: {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns} for k, st in stats.items()
        },
    }


FUNNEL_FILES = ("manifest.json", "vocab.json", ".verified.json")  # written besides the shards it lists


def _finished(out: Path) -> dict | None:
    """The manifest of a funnel conversion in `out` (a dict naming its dataset and shards), else None."""
    import json

    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), dict):
        return None
    return manifest


@contextmanager
def conversion(out: Path, stamp: dict, command: str):
    """A conversion into `out` as a transaction. Yields (the manifest of a finished conversion with the
    same fingerprint: nothing to do, None) or (None, a temporary folder beside `out` to write into);
    `finish_conversion` swaps that folder in whole. Under an exclusive lock beside `out` (a second
    prepare of the same folder stops at once, naming it); a folder that is not an mtlab preparation, or
    that holds files its manifest does not list, is refused before any work, so nothing mtlab did not
    write is ever removed; an interrupted or failed conversion leaves `out` as it was (its temporary
    folder is removed, or by the next prepare)."""
    import shutil

    from ..download import work_folder
    from ..tabular import DataError
    from .table import preparing, resolved

    out = resolved(out)
    with preparing(out, "choose another --out"):
        manifest = _finished(out) if out.is_dir() else None
        if (
            manifest is not None
            and manifest.get("fingerprint") == stamp
            and all((out / s).exists() for shards in manifest["shards"].values() for s in shards)
        ):
            yield {**manifest, "up_to_date": True}, None
            return
        if out.is_dir():
            listed = {str(s) for shards in (manifest or {}).get("shards", {}).values() for s in shards}
            foreign = sorted(f.name for f in out.iterdir() if f.name not in listed and f.name not in FUNNEL_FILES)
            if manifest is None and any(out.iterdir()):
                raise DataError(
                    f"{out} holds files and is not a preparation of mtlab's (no manifest.json); `{command}` never "
                    "writes over them: choose an empty or new --out"
                )
            if foreign:
                raise DataError(
                    f"{out} holds files its preparation did not write ({', '.join(foreign[:5])}), which preparing "
                    "again would remove; move them elsewhere, or choose another --out"
                )
        try:
            work = work_folder(out)
        except OSError as err:
            raise DataError(f"cannot write into {out.parent} ({err.strerror}); choose a writable --out") from None
        try:
            yield None, work
        finally:
            shutil.rmtree(work, ignore_errors=True)  # swapped in already on success: then nothing is left


def finish_conversion(
    out: Path, work: Path, manifest: dict, vocab: dict, malformed: Malformed, label: str, quiet: bool
) -> dict:
    """Write vocab.json and manifest.json into the conversion's folder `work`, then put it in place of
    `out` (the old preparation, which `conversion` checked is mtlab's alone, is removed once the new one
    is in place), and say what was skipped."""
    import json

    from ..download import file_sums, swap_in, write_atomic

    manifest = {**manifest, "malformed": malformed.report(), "malformed_lines": malformed.total()}
    empty = [split for split, n in manifest["rows"].items() if n == 0]
    if empty:
        from ..tabular import DataError

        cause = (
            f"all {manifest['malformed_lines']:,} lines read were malformed (another separator than the published "
            "one? the wrong files?)"
            if manifest["malformed_lines"]
            else "the raw file holds no rows"
        )
        raise DataError(f"{label}: no valid row for the {', '.join(empty)} split: {cause}; {out} is left as it was")
    write_atomic(Path(work) / "vocab.json", json.dumps({f: list(v) for f, v in vocab.items()}).encode())
    # every shard's sha256, and the vocabularies' (a saved model's encoding is read from them)
    manifest["shard_sha256"] = file_sums(
        work, [*(n for names in manifest["shards"].values() for n in names), "vocab.json"]
    )
    write_atomic(Path(work) / "manifest.json", json.dumps(manifest, indent=1).encode())
    from .table import resolved

    swap_in(resolved(out), Path(work))
    if manifest["malformed_lines"] and not quiet:
        print(
            f"{label}: {manifest['malformed_lines']} malformed line(s) skipped: "
            + "; ".join(
                f"{k} ({v['lines']}, first at lines {v['first_line_numbers']})"
                for k, v in manifest["malformed"].items()
            )
        )
    return {**manifest, "up_to_date": False}


def holdout(keys, per_mille: int) -> np.ndarray:
    """A stable pseudo-random choice of `per_mille`/1000 of the keys (strings), by pandas' fixed-key
    SipHash of each (the same on every machine and run)."""
    import pandas as pd

    values = np.asarray(keys.to_numpy(zero_copy_only=False), dtype=object)
    return pd.util.hash_array(values) % np.uint64(1000) < np.uint64(per_mille)


class ParquetShards:
    """Parquet shards per split (train, valid, test), each written by a streaming ParquetWriter to a
    temporary name and renamed when complete (a shard on disk is always whole); a new shard every
    `shard_rows` rows. Keeps row counts and label rates."""

    def __init__(self, out: Path, shard_rows: int, row_group_rows: int):
        self.out, self.shard_rows, self.row_group_rows = Path(out), shard_rows, row_group_rows
        self.writers: dict[str, tuple] = {}
        self.shards = {s: [] for s in ("train", "valid", "test")}
        self.rows = dict.fromkeys(self.shards, 0)
        self.in_shard = dict.fromkeys(self.shards, 0)
        self.clicks = dict.fromkeys(self.shards, 0)
        self.conversions = dict.fromkeys(self.shards, 0)

    def add(self, split: str, table) -> None:
        """Append rows to the split's current shard; a shard full at `shard_rows` is closed."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        self.clicks[split] += int(pc.sum(table.column("click")).as_py() or 0)
        self.conversions[split] += int(pc.sum(table.column("conversion")).as_py() or 0)
        self.rows[split] += table.num_rows
        while table.num_rows:
            if split not in self.writers:
                name = f"{split}-{len(self.shards[split]):05d}.parquet"
                tmp = self.out / f".{name}.tmp"
                self.writers[split] = (pq.ParquetWriter(tmp, table.schema, write_page_checksum=True), tmp, name)
            part = table.slice(0, self.shard_rows - self.in_shard[split])
            self.writers[split][0].write_table(part, row_group_size=self.row_group_rows)
            self.in_shard[split] += part.num_rows
            table = table.slice(part.num_rows)
            if self.in_shard[split] >= self.shard_rows:
                self._finish(split)

    def _finish(self, split: str) -> None:
        writer, tmp, name = self.writers.pop(split)
        writer.close()
        tmp.replace(self.out / name)
        self.shards[split].append(name)
        self.in_shard[split] = 0

    def close(self):
        for split in list(self.writers):
            self._finish(split)
        rates = {
            s: {
                "click": self.clicks[s] / max(1, self.rows[s]),
                "conversion": self.conversions[s] / max(1, self.rows[s]),
                "conversion_given_click": self.conversions[s] / max(1, self.clicks[s]),
            }
            for s in self.rows
        }
        return self.shards, self.rows, rates
