"""Results of long batches, appended to a CSV as each run finishes, so an interrupted batch resumes
where it stopped instead of starting again."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def load_rows(path: str | Path | None) -> pd.DataFrame:
    """The rows stored so far (an empty frame when there is no file or no path)."""
    return pd.read_csv(path) if path and Path(path).exists() else pd.DataFrame()


def append_rows(frame: pd.DataFrame, path: str | Path | None) -> None:
    """Append `frame` to the CSV at `path` under the file's own header: CSV rows carry no column names,
    so rows in another column order would be read back under the wrong names. New columns (or missing
    ones) make the whole file be rewritten, atomically, with the union of the columns."""
    if not path or frame.empty:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        frame.to_csv(path, index=False)
        return
    header = list(pd.read_csv(path, nrows=0).columns)
    if set(header) == set(frame.columns):
        frame[header].to_csv(path, mode="a", header=False, index=False)
        return
    merged = pd.concat([pd.read_csv(path), frame], ignore_index=True)
    tmp = path.with_name(path.name + ".tmp")
    merged.to_csv(tmp, index=False)
    os.replace(tmp, path)


def done_keys(stored: pd.DataFrame, columns: list[str]) -> set[tuple]:
    """The distinct key tuples already stored (for the runs to skip)."""
    if stored.empty:
        return set()
    return set(stored[columns].itertuples(index=False, name=None))
