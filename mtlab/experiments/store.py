"""Results of long batches, appended to a CSV as each run finishes, so an interrupted batch resumes
where it stopped instead of starting again."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def load_rows(path: str | Path | None) -> pd.DataFrame:
    """The rows stored so far (an empty frame when there is no file or no path)."""
    return pd.read_csv(path) if path and Path(path).exists() else pd.DataFrame()


def append_rows(frame: pd.DataFrame, path: str | Path | None) -> None:
    if not path or frame.empty:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, mode="a", header=not path.exists(), index=False)


def done_keys(stored: pd.DataFrame, columns: list[str]) -> set[tuple]:
    """The distinct key tuples already stored (for the runs to skip)."""
    if stored.empty:
        return set()
    return set(stored[columns].itertuples(index=False, name=None))
