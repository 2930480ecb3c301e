"""Results of long batches, stored in a CSV as each run finishes, so an interrupted batch resumes
where it stopped instead of starting again. Every write replaces the file atomically (a temporary
file, then a rename): an interruption leaves the old file or the new one, never half a row. A file
that is damaged anyway (cut by hand or by a full disk, edited, truncated) is refused with its path
and line, never reused as results."""

from __future__ import annotations

import csv
import io
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


def load_rows(path: str | Path | None, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """The rows stored so far (an empty frame when there is no file or no path), checked: the file
    ends with a whole line, every line has the header's number of fields, the `required` columns
    are there, and a column of numbers holds numbers in every row."""
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
    return frame


def write_csv_atomic(frame: pd.DataFrame, path: str | Path) -> None:
    write_atomic(Path(path), frame.to_csv(index=False).encode())


def append_rows(frame: pd.DataFrame, path: str | Path | None) -> None:
    """Add `frame`'s rows to the CSV at `path` (checked first, see `load_rows`), rewriting the file
    atomically; the file's column order is kept, new columns go last."""
    if not path or frame.empty:
        return
    stored = load_rows(path)
    if stored.empty:
        write_csv_atomic(frame, path)
        return
    columns = [*stored.columns, *[c for c in frame.columns if c not in stored.columns]]
    write_csv_atomic(pd.concat([stored, frame], ignore_index=True)[columns], path)


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


class ResultsStore:
    """The resume pattern of every experiment function, once: the runs stored in a results CSV (checked,
    see `load_rows`), which of them are done by their `key` columns (the last one the seed), new rows
    appended atomically as each run finishes, and all rows (stored first, then new) for the table.

        store = ResultsStore(results_path, ["dataset", "strategy", "seed"])
        for seed in store.pending(("ml-100k", "pmtrec"), profile.seeds):
            store.add([{"dataset": "ml-100k", "strategy": "pmtrec", "seed": seed, ...}])
        runs = store.frame(dataset=datasets, seed=profile.seeds)

    path None: nothing is read or written (the rows are kept in memory only)."""

    def __init__(self, path: str | Path | None, key: list[str]):
        self.path, self.key = path, list(key)
        stored = load_rows(path)
        self.done = done_keys(stored, self.key)
        self.records = stored.to_dict("records")

    def pending(self, prefix: tuple, seeds) -> list[int]:
        """The seeds whose run (prefix + (seed,)) is not stored yet, in the order given."""
        return [seed for seed in seeds if (*prefix, seed) not in self.done]

    def add(self, rows: list[dict] | pd.DataFrame) -> None:
        """Keep finished runs' rows and append them to the file (atomically)."""
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        self.records += frame.to_dict("records")
        append_rows(frame, self.path)

    def frame(self, **wanted) -> pd.DataFrame:
        """Every row, stored then new, restricted to the rows whose `column` is in `wanted[column]`."""
        runs = pd.DataFrame(self.records) if self.records else pd.DataFrame(columns=self.key)
        for column, values in wanted.items():
            runs = runs[runs[column].isin(list(values))]
        return runs.reset_index(drop=True)
