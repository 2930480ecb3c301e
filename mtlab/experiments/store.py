"""Results of long batches, stored as each run finishes, so an interrupted batch resumes where it
stopped instead of starting again. Two kinds of store, behind one `ResultsStore`:

- a CSV (a notebook's `results_path`): every write replaces the file atomically (a temporary file, then a
  rename) under a lock beside it, so an interruption leaves the old file or the new one and a second
  writer waits; a file damaged anyway (cut, edited, truncated) or holding a run twice is refused with
  its path and line, never reused as results.
- a `Shelf` of a sweep's database (`RunsDatabase`, SQLite from the standard library): one record per
  (table, profile tag, run) under a primary key, written in transactions, so two writers (two sweeps, or
  processes on several machines sharing the folder) can never store one seed's run twice: the second
  insert of a run is ignored and reported. Why a database and not CSV files, markers and locks:
  docs/sweeps.md.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import sqlite3
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ..data.download import write_atomic


class ResultsFileError(ValueError):
    """A results file that cannot be trusted; the message names it, the line and what to do."""


def _damaged(path: Path, line: int | None, what: str) -> ResultsFileError:
    where = f"{path}, line {line}" if line else str(path)
    return ResultsFileError(
        f"results file {where}: {what}. It is not reused: repair that line, or move the file away to rerun its runs"
    )


def load_rows(path: str | Path | None, required: tuple[str, ...] = (), key: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows stored so far (an empty frame when there is no file or no path), checked: the file
    ends with a whole line, every line has the header's number of fields, the `required` columns
    are there, a column of numbers holds numbers in every row, and (given the `key` columns that name
    a run) no run is stored twice: two rows alike in the key and every column that is not a measured
    float (task, epoch, …) mean one run written by two processes, which would count twice in a mean."""
    if not path or not Path(path).exists():
        return pd.DataFrame()
    path = Path(path)
    text = path.read_text()
    if not text:
        raise _damaged(path, None, "the file is empty (not even a header)")
    if not text.endswith("\n"):
        raise _damaged(path, text.count("\n") + 1, "the last line is cut (no end of line)")
    lines = list(csv.reader(io.StringIO(text)))
    header = lines[0]
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(header):
            raise _damaged(path, number, f"{len(fields)} fields where the header has {len(header)}")
    missing = [c for c in required if c not in header]
    if missing:
        raise _damaged(path, 1, f"column(s) {missing} missing")
    frame = pd.read_csv(io.StringIO(text))
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            numbers = pd.to_numeric(frame[column], errors="coerce")
            bad = numbers.isna() & frame[column].notna()
            if numbers.notna().sum() > 0 and bad.any() and bad.sum() < len(frame):
                first = int(bad.to_numpy().nonzero()[0][0])
                raise _damaged(path, first + 2, f"{column!r} is {frame[column].iloc[first]!r}, not a number")
    if key and all(c in frame.columns for c in key):
        naming = [*key, *(c for c in frame.columns if c not in key and not pd.api.types.is_float_dtype(frame[c]))]
        twice = frame.duplicated(subset=naming).to_numpy()
        if twice.any():
            row = int(twice.argmax())
            run = ", ".join(f"{c}={_plain(frame[c].iloc[row])!r}" for c in key)
            raise _damaged(
                path,
                row + 2,
                f"the run {run} is stored twice (two processes wrote the same run; it would count twice in the "
                "means and tests). Delete the repeated line",
            )
    return frame


def write_csv_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    write_atomic(Path(path), frame.to_csv(index=False).encode())


@contextlib.contextmanager
def _writer_lock(path: Path, wait_s: float = 120.0):
    """Hold the lock of the results file `path` (a file `.NAME.lock` beside it): a second writer waits
    for the first (a read-modify-write of the CSV would otherwise lose the first one's rows)."""
    lock = path.with_name(f".{path.name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ResultsFileError(
                        f"results file {path}: another process has been writing it for {wait_s:.0f} s; "
                        "wait for it to finish, or give this run another results_path"
                    ) from None
                time.sleep(0.05)
        yield


def append_rows(frame: pd.DataFrame, path: str | Path | None, key: tuple[str, ...] = ()) -> None:
    """Add `frame`'s rows to the CSV at `path` (checked first, see `load_rows`), rewriting the file
    atomically under its lock (a second writer waits); the file's column order is kept, new columns go
    last. `key`: the columns naming a run; a run already in the file is refused (ResultsFileError)."""
    if not path or frame.empty:
        return
    path = Path(path)
    with _writer_lock(path):
        stored = load_rows(path, key=key)
        if stored.empty:
            write_csv_atomic(frame, path)
            return
        columns = [*stored.columns, *[c for c in frame.columns if c not in stored.columns]]
        both = pd.concat([stored, frame], ignore_index=True)[columns]
        if key and all(c in stored.columns and c in frame.columns for c in key):
            again = set(stored[list(key)].itertuples(index=False, name=None)) & set(
                frame[list(key)].itertuples(index=False, name=None)
            )
            if again:
                raise ResultsFileError(
                    f"results file {path}: run(s) {sorted(again, key=repr)[:3]} ({', '.join(key)}) were stored by "
                    "another process meanwhile; this one's rows are not added (they would count twice). Give "
                    "each run its own results_path, or let one process write a file"
                )
        write_csv_atomic(both, path)


def done_keys(stored: pd.DataFrame, columns: list[str]) -> set[tuple]:
    """The distinct key tuples already stored (for the runs to skip)."""
    if stored.empty:
        return set()
    missing = [c for c in columns if c not in stored.columns]
    if missing:
        raise ResultsFileError(
            f"the results file has no column(s) {missing}, which name its runs; it belongs to "
            "another table: give another results_path"
        )
    return set(stored[columns].itertuples(index=False, name=None))


DB_VERSION = 1  # PRAGMA user_version of a runs database this mtlab writes


def _plain(value):
    """A key or cell value as JSON writes it exactly (numpy scalars as Python numbers)."""
    return value.item() if hasattr(value, "item") else value


class RunsDatabase:
    """A sweep's results in one SQLite file (out/runs.sqlite): table `runs` holds one record per
    (table, profile tag, run), the run being its key tuple as JSON (e.g. ["mmoe", 0] for model and seed)
    with the job that wrote it and its rows as JSON; table `jobs` one record per finished (table, tag,
    job) with its seconds. The primary keys are the guarantee that no run is stored twice, whoever
    writes; each write is one transaction (an interrupted one leaves nothing). A connection waits up to
    `timeout_s` for another writer.

    Errors: ResultsFileError naming the file and what to do for a file that is not such a database
    (damaged, another program's, a newer format)."""

    def __init__(self, path: str | Path, timeout_s: float = 120.0):
        self.path, self.timeout_s = Path(path), timeout_s

    @contextlib.contextmanager
    def _connect(self, write: bool):
        if not write and not self.path.exists():
            yield None
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        except (sqlite3.Error, OSError) as err:
            raise ResultsFileError(
                f"cannot open the results database {self.path} ({err}); choose a writable --out"
            ) from None
        try:
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - {"runs", "jobs"} or (version == 0 and tables):
                raise ResultsFileError(
                    f"{self.path} is a database that is not mtlab's results (it holds the tables "
                    f"{sorted(tables)}); mtlab does not write into it: give another --out, or move that file away"
                )
            if version == 0 and write:
                con.execute(
                    "CREATE TABLE IF NOT EXISTS runs (tbl TEXT NOT NULL, tag TEXT NOT NULL, run TEXT NOT NULL, "
                    "job TEXT NOT NULL, rows TEXT NOT NULL, written REAL NOT NULL, PRIMARY KEY (tbl, tag, run))"
                )
                con.execute(
                    "CREATE TABLE IF NOT EXISTS jobs (tbl TEXT NOT NULL, tag TEXT NOT NULL, job TEXT NOT NULL, "
                    "seconds REAL NOT NULL, PRIMARY KEY (tbl, tag, job))"
                )
                con.execute(f"PRAGMA user_version = {DB_VERSION}")
            elif version not in (0, DB_VERSION):
                raise ResultsFileError(
                    f"results database {self.path} has format {version}, this mtlab reads {DB_VERSION}: update "
                    "mtlab, or give another --out"
                )
            yield con if version or write else None
            con.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            if isinstance(err, sqlite3.OperationalError):  # the disk, not the file: full, read-only, locked too long
                said = (
                    f"cannot write the results database {self.path} ({err}); the runs stored so far are kept: "
                    "free space or make it writable, then run the same command again"
                )
            else:
                said = (
                    f"results database {self.path}: {err} (damaged, or not mtlab's). It is not reused: move it "
                    "away to run its jobs again, or give another --out"
                )
            raise ResultsFileError(said) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def insert(self, table: str, tag: str, job: str, runs: list[tuple[tuple, list[dict]]]) -> list[tuple]:
        """Store each (run key, its rows) in one transaction; a run already stored (by anyone) is left as
        it is. Returns the keys that were already there."""
        already = []
        with self._connect(write=True) as con:
            for run, rows in runs:
                done = con.execute(
                    "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        table,
                        tag,
                        json.dumps([_plain(v) for v in run]),
                        job,
                        json.dumps(rows, default=_plain),
                        time.time(),
                    ),
                )
                if done.rowcount == 0:
                    already.append(run)
        return already

    def rows(self, table: str, tag: str | None = None, job_prefix: str = "", within: bool = False) -> pd.DataFrame:
        """The rows of `table` (of one tag, or all; of jobs named `job_prefix`…), runs in the order
        written, each run's rows in their order. within=True: also the tags `tag`/… (a profile tag's
        scopes: its datasets or new tasks)."""
        with self._connect(write=False) as con:
            if con is None:
                return pd.DataFrame()
            found = con.execute(
                "SELECT rows FROM runs WHERE tbl = ? AND (? IS NULL OR tag = ? OR (? AND substr(tag, 1, ?) = ?)) "
                "AND substr(job, 1, ?) = ? ORDER BY written, rowid",
                (table, tag, tag, within, len(tag or "") + 1, f"{tag}/", len(job_prefix), job_prefix),
            ).fetchall()
        try:
            records = [row for (rows,) in found for row in json.loads(rows)]
        except ValueError as err:
            raise ResultsFileError(
                f"results database {self.path}: a stored run of {table} is not readable ({err}): edited or damaged. "
                "It is not reused: move the database away to run its jobs again, or give another --out"
            ) from None
        return pd.DataFrame(records)

    def check(self) -> None:
        """Open the database for writing once (created, or checked as mtlab's of this format) before any
        job trains: a foreign or newer file is refused at the start, not after the work."""
        with self._connect(write=True):
            pass

    def finish_job(self, table: str, tag: str, job: str, seconds: float) -> None:
        """Record that a job ran to its end (the sweep skips it from then on), with its seconds."""
        with self._connect(write=True) as con:
            con.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?)", (table, tag, job, seconds))

    def finished_jobs(self, table: str, tag: str) -> dict[str, float]:
        """{job: seconds} of the jobs of `table` and `tag` that ran to their end."""
        with self._connect(write=False) as con:
            if con is None:
                return {}
            found = con.execute("SELECT job, seconds FROM jobs WHERE tbl = ? AND tag = ?", (table, tag)).fetchall()
        return dict(found)


@dataclass(frozen=True)
class Shelf:
    """Where one sweep job keeps its results: table `table` and profile tag `tag` of the runs database
    `db`, written by job `job`. Given as `results_path` to an experiment function, like a CSV path."""

    db: Path
    table: str
    tag: str
    job: str

    def companion(self, name: str) -> Shelf:
        return replace(self, table=f"{self.table}.{name}")


def companion(results_path, name: str):
    """Where a results store keeps its companion rows `name` (learning curves, calibration): beside a CSV
    (X.csv → X.NAME.csv), or the table TABLE.NAME of a Shelf's database; None stays None."""
    if results_path is None:
        return None
    if isinstance(results_path, Shelf):
        return results_path.companion(name)
    return Path(results_path).with_suffix(f".{name}.csv")


class ResultsStore:
    """The resume pattern of every experiment function, once: the runs stored in a results CSV (checked,
    see `load_rows`) or a sweep's database (a `Shelf`), which of them are done by their `key` columns
    (the last one the seed), new rows stored as each run finishes, and all rows (stored first, then new)
    for the table. A run stored twice is refused in a CSV and cannot be stored twice in a database (the
    later copy is dropped and `ignored` lists it).

        store = ResultsStore(results_path, ["dataset", "strategy", "seed"])
        for seed in store.pending(("ml-100k", "pmtrec"), profile.seeds):
            store.add([{"dataset": "ml-100k", "strategy": "pmtrec", "seed": seed, ...}])
        runs = store.frame(dataset=datasets, seed=profile.seeds)

    path None: nothing is read or written (the rows are kept in memory only)."""

    def __init__(self, path: str | Path | Shelf | None, key: list[str]):
        self.path, self.key, self.ignored = path, list(key), []
        if isinstance(path, Shelf):
            stored = RunsDatabase(path.db).rows(path.table, path.tag)
        else:
            stored = load_rows(path, key=tuple(self.key))
        self.done = done_keys(stored, self.key)
        self.records = stored.to_dict("records")

    def pending(self, prefix: tuple, seeds) -> list[int]:
        """The seeds whose run (prefix + (seed,)) is not stored yet, in the order given."""
        return [seed for seed in seeds if (*prefix, seed) not in self.done]

    def add(self, rows: list[dict] | pd.DataFrame) -> None:
        """Store finished runs' rows (the CSV rewritten atomically, or one database transaction)."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        if frame.empty:
            return
        if isinstance(self.path, Shelf):
            shelf, groups = self.path, list(frame.groupby(self.key, sort=False, dropna=False))
            runs = [(tuple(run), part.to_dict("records")) for run, part in groups]
            already = set(RunsDatabase(shelf.db).insert(shelf.table, shelf.tag, shelf.job, runs))
            if already:  # another writer stored these runs first: its copy is the one every table reads
                self.ignored += sorted(already, key=repr)
                warnings.warn(
                    f"{shelf.db}: run(s) {sorted(already, key=repr)[:3]} of {shelf.table} were stored by another "
                    "process meanwhile; that copy is kept, this one dropped (no run is counted twice)",
                    stacklevel=2,
                )
                stored = RunsDatabase(shelf.db).rows(shelf.table, shelf.tag)
                keys = stored[self.key].itertuples(index=False, name=None)
                self.records += [r for r, k in zip(stored.to_dict("records"), keys) if k in already]
                frame = frame.loc[[i for run, part in groups if tuple(run) not in already for i in part.index]]
        else:
            append_rows(frame, self.path, key=tuple(self.key))
        self.records += frame.to_dict("records")
        self.done |= set(frame[self.key].itertuples(index=False, name=None))

    def frame(self, **wanted) -> pd.DataFrame:
        """Every row, stored then new, restricted to the rows whose `column` is in `wanted[column]`."""
        runs = pd.DataFrame(self.records) if self.records else pd.DataFrame(columns=self.key)
        for column, values in wanted.items():
            runs = runs[runs[column].isin(list(values))]
        return runs.reset_index(drop=True)
