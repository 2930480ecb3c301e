"""Tables for the batch report, chosen by the notebook.

Experiment functions only name their tables (`titled`: a name and a title in `frame.attrs`) and
write nothing. A notebook says which tables go into the report with `keep(table, …)`: under
`mtlab run` (which points $MTLAB_ARTIFACTS at a folder per notebook) each kept table is written as
CSV and listed in manifest.json there; outside a batch run `keep` does nothing. A panel pressed in a
notebook calls experiment functions too, but keeps nothing, so its one-seed tables never stand in the
report beside the real results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

ENV = "MTLAB_ARTIFACTS"
KEY = "report"  # frame.attrs[KEY] = {"name": …, "title": …}


def titled(name: str, frame: pd.DataFrame, title: str = "", keys=()) -> pd.DataFrame:
    """Name `frame` for the report (in `frame.attrs`, no copy, no I/O) and return it.

    keys: the columns that identify a row (e.g. ("model", "seed", "task")); `mtlab report A B` joins the
    same table of two runs on them. An indexed table (a correlation matrix) is keyed by its index and
    needs none; a table with neither is compared row by row, in order.
    Raises ValueError naming a key that is not a column of `frame`."""
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise ValueError(
            f"titled({name!r}): keys {missing} are not columns of the table; its columns: {list(map(str, frame.columns))}"
        )
    frame.attrs[KEY] = {"name": name, "title": title or name.replace("_", " "), "keys": list(keys)}
    return frame


def output_path(name: str) -> Path:
    """Where a notebook puts a file it makes (a saved model): beside its tables in the batch's folder under
    `mtlab run`, else runs/models/ (git-ignored) below the working folder. Creates nothing."""
    folder = os.environ.get(ENV)
    return Path(folder) / name if folder else Path("runs") / "models" / name


def keep(*frames: pd.DataFrame) -> None:
    """Put these tables into the batch report (each named by `titled`); nothing outside a batch run."""
    untitled = [i for i, f in enumerate(frames) if not isinstance(f, pd.DataFrame) or KEY not in f.attrs]
    if untitled:
        raise ValueError(
            f"keep(): argument(s) {untitled} are not tables named for the report; name one with "
            "mtlab.experiments.titled(name, frame, title)"
        )
    folder = os.environ.get(ENV)
    if not folder:
        return
    for frame in frames:
        _write(Path(folder), frame, **frame.attrs[KEY])


def _write(folder: Path, frame: pd.DataFrame, name: str, title: str, keys=()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
    taken = {entry["file"] for entry in manifest}
    stem, n = name, 2
    while f"{stem}.csv" in taken:  # two tables of one name in a notebook
        stem, n = f"{name}-{n}", n + 1
    indexed = not isinstance(frame.index, pd.RangeIndex)  # e.g. a correlation matrix's task names
    frame.to_csv(folder / f"{stem}.csv", index=indexed)
    manifest.append(
        {
            "file": f"{stem}.csv",
            "name": stem,
            "title": title,
            "rows": len(frame),
            "columns": [str(c) for c in frame.columns],
            "indexed": indexed,
            "keys": list(keys),
        }
    )
    manifest_path.write_text(json.dumps(manifest, indent=1))
