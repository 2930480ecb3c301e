"""Tables written beside an executed notebook, for the batch report.

`mtlab run` points $MTLAB_ARTIFACTS at a folder per notebook; every experiment function passes its
tables through `record`, which writes each as CSV and lists it in manifest.json there. Outside a
batch run (no variable set) `record` only returns the table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

ENV = "MTLAB_ARTIFACTS"


def record(name: str, frame: pd.DataFrame, title: str = "") -> pd.DataFrame:
    folder = os.environ.get(ENV)
    if not folder or not isinstance(frame, pd.DataFrame):
        return frame
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
    taken = {entry["file"] for entry in manifest}
    stem, n = name, 2
    while f"{stem}.csv" in taken:  # the same function called twice in a notebook
        stem, n = f"{name}-{n}", n + 1
    indexed = not isinstance(frame.index, pd.RangeIndex)  # e.g. a correlation matrix's task names
    frame.to_csv(folder / f"{stem}.csv", index=indexed)
    manifest.append({"file": f"{stem}.csv", "name": stem, "title": title or name.replace("_", " "),
                     "rows": len(frame), "columns": [str(c) for c in frame.columns], "indexed": indexed})
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return frame
