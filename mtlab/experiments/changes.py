"""What moved between two runs of the same table (e.g. a quick and a full batch, or before and after a
change): the table of run A and of run B joined on the keys it was kept with (`titled(keys=…)`).

Where `seed` is a key the rows of each run are first gathered over seeds: every metric is compared as
mean ± std per group, Δ = mean_B − mean_A, with the paired t-test over the seeds both ran (Eq. 1,
t = d̄ / (s_d / √n) on the per-seed differences d_s = B_s − A_s); a Welch test where no seed is shared.
Elsewhere row meets row: Δ per numeric cell, and a text cell that differs shown as A → B.
A table's p-values are adjusted for the number of its tests (Benjamini–Hochberg, scipy's
`false_discovery_control`): "moved" means an adjusted p < ALPHA, so a table of a thousand cells does not
"move" fifty of them by chance. Timings (a column whose name ends in "seconds", as every timing of
mtlab's tables is named) are compared but never "moved": they measure the machine, not the method.
Nothing is read or written here (mtlab.report reads the run folders and writes the page).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .seed_stats import paired_p

ALPHA = 0.05
SEED = "seed"
RTOL, ATOL = 1e-6, 1e-9  # closer than this is float noise (a reduction summed in another order): "same"


def is_timing(column) -> bool:
    """mtlab names every timing column "...seconds" (seconds, train_seconds): compared, never "moved"."""
    return str(column).endswith("seconds")


@dataclass
class TableChanges:
    """changes: one row per (key, column) that differs (columns: the keys, `column`, `A`, `B`, `Δ`,
    `Δ %`, `p`, `moved`: p < ALPHA where seeds give a test, else Δ ≠ 0); new / missing: the keys of rows
    only in B / only in A; unchanged: the (key, column) cells compared and found equal; note: how the
    rows were met (keys, or row order where the table declares none)."""

    changes: pd.DataFrame
    new: pd.DataFrame
    missing: pd.DataFrame
    unchanged: int = 0
    note: str = ""
    columns_only_in: dict = field(default_factory=dict)

    @property
    def moved(self) -> int:
        return int(self.changes["moved"].sum()) if len(self.changes) else 0


def _keyed(frame: pd.DataFrame, keys: list[str], indexed: bool) -> tuple[pd.DataFrame, list[str], str]:
    """The frame with explicit key columns (the index of an indexed table; a row number where no keys
    are declared), duplicates of a key told apart by their order."""
    frame = frame.copy()
    note = "joined on " + ", ".join(keys) if keys else ""
    if not keys and indexed:
        frame.index = frame.index.rename(frame.index.name or "row")
        keys = [frame.index.name]
        frame = frame.reset_index()
        note = f"joined on its index ({keys[0]})"
    elif not keys:
        frame.insert(0, "row", range(len(frame)))
        keys = ["row"]
        note = "no keys declared: compared row by row, in order"
    if frame.duplicated(keys).any():
        frame["occurrence"] = frame.groupby(keys, dropna=False).cumcount()
        keys = [*keys, "occurrence"]
    return frame, keys, note


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    return pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])


def _fmt(mean: float, std: float, n: int) -> str:
    if n == 0 or np.isnan(mean):
        return "–"
    return f"{mean:.4g} ± {std:.2g} ({n})" if n > 1 else f"{mean:.4g} (1)"


def table_changes(a: pd.DataFrame, b: pd.DataFrame, keys=(), indexed: bool = False) -> TableChanges:
    """Run A's table `a` against run B's `b` (see the module's text). keys: the columns that identify a
    row (the manifest's `keys`); indexed: the table's index is its key (a correlation matrix).
    Raises ValueError naming a key column one of the tables lacks."""
    keys = list(keys)
    for name, frame in (("A", a), ("B", b)):
        lacking = [k for k in keys if k not in frame.columns]
        if lacking:
            raise ValueError(f"run {name}'s table has no key column(s) {lacking}: the two tables differ in shape")
    a, keys_a, note = _keyed(a, keys, indexed)
    b, keys_b, _ = _keyed(b, keys, indexed)
    keys = keys_a if len(keys_a) >= len(keys_b) else keys_b
    for frame in (a, b):
        if "occurrence" in keys and "occurrence" not in frame:
            frame["occurrence"] = 0
    shared = [c for c in a.columns if c in b.columns and c not in keys]
    only = {"A": [c for c in a.columns if c not in b.columns], "B": [c for c in b.columns if c not in a.columns]}
    both = a[keys].merge(b[keys], on=keys, how="outer", indicator=True)
    new = both[both["_merge"] == "right_only"][keys].reset_index(drop=True)
    missing = both[both["_merge"] == "left_only"][keys].reset_index(drop=True)
    if SEED in keys and len(keys) > 1:
        changes, unchanged = _over_seeds(a, b, [k for k in keys if k != SEED], shared)
    else:
        changes, unchanged = _row_by_row(a, b, keys, shared)
    return TableChanges(changes, new, missing, unchanged, note, {k: v for k, v in only.items() if v})


def _over_seeds(a: pd.DataFrame, b: pd.DataFrame, group: list[str], shared: list[str]):
    rows, unchanged = [], 0
    metrics = [c for c in shared if _numeric(a, c) and _numeric(b, c)]
    texts = [c for c in shared if c not in metrics]
    ga = a.groupby(group, dropna=False, sort=False)
    gb = dict(iter(b.groupby(group, dropna=False, sort=False)))
    for key, part_a in ga:
        part_b = gb.get(key)
        if part_b is None:
            continue
        where = dict(zip(group, key if isinstance(key, tuple) else (key,)))
        for column in metrics:
            xa, xb = part_a.set_index(SEED)[column], part_b.set_index(SEED)[column]
            ma, mb = xa.mean(), xb.mean()
            common = xa.index.intersection(xb.index)
            same_mean = np.isclose(ma, mb, rtol=RTOL, atol=ATOL) or (np.isnan(ma) and np.isnan(mb))
            if same_mean and np.allclose(xa.loc[common], xb.loc[common], rtol=RTOL, atol=ATOL, equal_nan=True):
                unchanged += 1  # the same mean, and the same value on every seed both ran
                continue
            if len(common) >= 2:
                p = paired_p(xb.loc[common], xa.loc[common])
                if np.isnan(p):  # every seed moved by the same amount: a shift without noise
                    p = 0.0 if (xb.loc[common] - xa.loc[common]).abs().max() > 0 else 1.0
            elif xa.notna().sum() >= 2 and xb.notna().sum() >= 2:
                p = float(stats.ttest_ind(xa.dropna(), xb.dropna(), equal_var=False).pvalue)
            else:
                p = float("nan")
            delta = mb - ma
            rows.append(
                {
                    **where,
                    "column": column,
                    "A": _fmt(ma, xa.std(), int(xa.notna().sum())),
                    "B": _fmt(mb, xb.std(), int(xb.notna().sum())),
                    "Δ": delta,
                    "Δ %": 100 * delta / abs(ma) if ma else np.nan,
                    "p": p,
                    "moved": bool(p < ALPHA) if not np.isnan(p) else bool(delta != 0 and not np.isnan(delta)),
                }
            )
        for column in texts:
            va = ", ".join(dict.fromkeys(map(str, part_a[column])))  # NaN too: map(str), not astype(str)
            vb = ", ".join(dict.fromkeys(map(str, part_b[column])))
            if va == vb:
                unchanged += 1
                continue
            rows.append(
                {**where, "column": column, "A": va, "B": vb, "Δ": np.nan, "Δ %": np.nan, "p": np.nan, "moved": True}
            )
    return _frame(rows, group), unchanged


def _row_by_row(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], shared: list[str]):
    joined = a.merge(b, on=keys, how="inner", suffixes=(" A", " B"))
    rows, unchanged = [], 0
    for record in joined.to_dict("records"):
        where = {k: record[k] for k in keys}
        for column in shared:
            va, vb = record[f"{column} A"], record[f"{column} B"]
            numeric = _numeric(a, column) and _numeric(b, column)
            if (pd.isna(va) and pd.isna(vb)) or (not pd.isna(va) and not pd.isna(vb) and va == vb):
                unchanged += 1
                continue
            if (
                numeric
                and not pd.isna(va)
                and not pd.isna(vb)
                and np.isclose(float(va), float(vb), rtol=RTOL, atol=ATOL)
            ):
                unchanged += 1
                continue
            delta = float(vb) - float(va) if numeric else np.nan
            rows.append(
                {
                    **where,
                    "column": column,
                    "A": f"{va:.6g}" if numeric and not pd.isna(va) else str(va),
                    "B": f"{vb:.6g}" if numeric and not pd.isna(vb) else str(vb),
                    "Δ": delta,
                    "Δ %": 100 * delta / abs(float(va)) if numeric and not pd.isna(va) and float(va) else np.nan,
                    "p": np.nan,
                    "moved": True,
                }
            )
    return _frame(rows, keys), unchanged


def _frame(rows: list[dict], keys: list[str]) -> pd.DataFrame:
    columns = [*keys, "column", "A", "B", "Δ", "Δ %", "p", "moved"]
    frame = pd.DataFrame(rows, columns=columns)
    tested = frame["p"].notna() & ~frame["column"].map(is_timing)
    if tested.any():  # Benjamini–Hochberg over the table's tests (see the module's text)
        frame.loc[tested, "p"] = stats.false_discovery_control(frame.loc[tested, "p"].astype(float).to_numpy())
        frame.loc[tested, "moved"] = frame.loc[tested, "p"] < ALPHA
    frame.loc[frame["column"].map(is_timing), "moved"] = False
    if len(frame):  # what moved first, then the largest relative changes; timings last
        order = np.lexsort(
            (
                -frame["Δ %"].abs().fillna(-1).to_numpy(),
                frame["column"].map(is_timing).to_numpy(),
                ~frame["moved"].to_numpy(bool),
            )
        )
        frame = frame.iloc[order].reset_index(drop=True)
    return frame
