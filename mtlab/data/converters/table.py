"""A table of your own (CSV or Parquet) as an mtlab dataset: `prepare_table` converts it once into
`data/NAME/` (one Parquet file per split and `manifest.json`), `load_table` reads it back as
MultiTaskData, and `--data NAME` then works wherever a built-in dataset does.

What the conversion decides, all written in the manifest:
- **tasks**: `COLUMN:KIND[:POSITIVE]` with KIND binary, regression or multiclass (data.task_kinds); a
  binary task's positive value (needed unless the column holds 0/1 or true/false), a regression
  target's training mean and std (its labels are stored standardized), a multi-class task's class
  names (label k is class k, most frequent first). An empty cell is "no label on this row" (NaN).
- **features**: every other column that `--drop` does not name, categorical or numeric (inferred
  when not given: a numeric column with more than 20 distinct values is numeric, any other column
  categorical; printed). Categorical: the training values seen at least `min_count` times get codes
  1…V, everything else (rarer, unseen in training, missing: its own value "(missing)" when seen
  often enough) the unknown code 0. Numeric: standardized with the training mean and std; a missing
  value is imputed with the mean, and a column with missing training values gets a 0/1 indicator
  column "<name> (missing)".
- **splits**: the files given; without `valid` (and `test`) a seeded `valid_fraction` of the
  training rows (and as many for test) is held out, by whole groups when `group` names a column (a
  user's or a search's rows all in one split).

The inputs' sha256 and the settings make the conversion: the same inputs again do nothing. The folder
is written whole or not at all (a temporary folder renamed into place); a folder mtlab did not write
is never replaced; a second `prepare` of the same name while one runs stops at once.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..download import VERIFIED, check_files, data_dir, exclusive, file_sums, sha256_of, swap_in, work_folder
from ..encoding import Categorical, Encoding, Numeric, Target, as_text, check_distinct_columns, read_as_of
from ..encoding import line_of as _line
from ..encoding import numbers as numbers
from ..tabular import DataError, FeatureSpec, MultiTaskData, TabularSplit
from ..task_kinds import KINDS, TaskKind

FORMAT = "mtlab-table"
# 2: text values stripped, booleans spelled alike in every file; 3: the encoding in the manifest; 4: files_sha256
VERSION = 4
NUMERIC_MIN_DISTINCT = 21  # a numeric column with fewer distinct values is taken as categorical
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class TaskSpec:
    """One task of a table: its column, kind, and for a binary task the positive value (as text)."""

    column: str
    kind: str
    positive: str | None = None

    @classmethod
    def parse(cls, text: str) -> TaskSpec:
        """`COLUMN:KIND[:POSITIVE]`; the column may hold ':' (the kind is the last field that names one)."""
        parts = text.split(":")
        for i in range(len(parts) - 1, 0, -1):
            if parts[i] in KINDS:
                positive = ":".join(parts[i + 1 :]) or None
                if positive is not None and parts[i] != "binary":
                    break
                return cls(":".join(parts[:i]), parts[i], positive)
        raise DataError(
            f"--task {text!r}: write COLUMN:KIND[:POSITIVE_VALUE] with KIND one of {', '.join(KINDS)} "
            "(a positive value for binary tasks only), e.g. clicked:binary:yes, dwell:regression, genre:multiclass"
        )


def read_frame(path: str | Path) -> pd.DataFrame:
    """A CSV (optionally .gz) or Parquet file as a DataFrame, read by pyarrow; an unreadable file is
    refused naming it and what pyarrow said (for a CSV, the line where it stopped)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the path of a CSV or Parquet file")
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path).to_pandas()
        # an empty field is a missing value, in a text column too (pyarrow reads it as "" by default)
        return pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter_of(path)),
            # only an empty field is a missing value ("NA" is North America in a region column); a
            # number column's "NA"-like cells are read as missing by `numbers` instead
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True, null_values=[""]),
        ).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(
            f"{path} is not a readable {'Parquet' if path.suffix == '.parquet' else 'CSV'} file: "
            f"{str(err).strip().splitlines()[0][:300]}; repair it (every row needs as many fields as the header)"
        ) from err


DELIMITERS = ",;\t|"


def delimiter_of(path: Path) -> str:
    """The field separator of a CSV file: of ',', ';', tab and '|', the one its header line holds most
    of (',' when it holds none: a one-column file). Spreadsheets in many locales write ';'."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        header = fh.readline(1 << 20).decode("utf-8", errors="replace")
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _frame(source, label: str) -> tuple[pd.DataFrame, str, str]:
    """(frame, what it is called in messages, its sha256)."""
    if isinstance(source, pd.DataFrame):
        digest = hashlib.sha256(pd.util.hash_pandas_object(source, index=True).to_numpy().tobytes())
        digest.update(json.dumps([str(c) for c in source.columns]).encode())
        return source.reset_index(drop=True), f"the {label} frame", digest.hexdigest()
    return read_frame(source), str(source), sha256_of(Path(source))


def prepare_table(
    train,
    name: str,
    tasks,
    valid=None,
    test=None,
    categorical=None,
    numeric=None,
    drop=(),
    valid_fraction: float = 0.1,
    group: str | None = None,
    min_count: int = 1,
    seed: int = 0,
    out: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    """Convert a table (a path to CSV/Parquet, or a DataFrame) into `data/NAME/` (or `out`) and return
    its manifest (`up_to_date`: True when the same inputs had been prepared already). `tasks`:
    `TaskSpec`s or 'COLUMN:KIND[:POSITIVE]' strings. Raises DataError naming the file, line and
    column of bad input. See the module docstring for what is decided and how."""
    if not NAME.match(name or ""):
        raise DataError(f"--name {name!r}: use letters, digits, '_', '.' or '-' (it becomes the folder data/{name})")
    from .. import BUILT_IN  # the registry imports this module

    if name in BUILT_IN:
        raise DataError(f"--name {name!r} is a built-in dataset; choose another name")
    specs = [t if isinstance(t, TaskSpec) else TaskSpec.parse(t) for t in tasks]
    if not specs:
        raise DataError("give at least one --task COLUMN:KIND[:POSITIVE_VALUE]")
    if not 0 < valid_fraction < 0.5:
        raise DataError(f"--valid-fraction must be in (0, 0.5), got {valid_fraction}")
    if min_count < 1:
        raise DataError(f"--min-count must be at least 1, got {min_count}")
    folder = Path(out) if out else data_dir() / name
    frames = {"train": _frame(train, "train")}
    for split, source in (("valid", valid), ("test", test)):
        if source is not None:
            frames[split] = _frame(source, split)
    settings = {
        "tasks": [s.__dict__ for s in specs],
        "categorical": sorted(categorical) if categorical else None,
        "numeric": sorted(numeric) if numeric else None,
        "drop": sorted(drop),
        "valid_fraction": valid_fraction,
        "group": group,
        "min_count": min_count,
        "seed": seed,
    }
    stamp = {"format": FORMAT, "version": VERSION, "inputs": {s: f[2] for s, f in frames.items()}, "settings": settings}
    return run_conversion(
        folder,
        stamp,
        "prepare table",
        lambda: _convert({s: f[:2] for s, f in frames.items()}, name, specs, settings, quiet),
        _split_tables,
    )


@contextmanager
def preparing(folder: Path, choose: str):
    """What every conversion into `folder` (resolved: a symlink's target, `.` the folder itself; see
    `resolved`) holds for its whole run: the folder's lock (a second prepare stops at once), a file in its
    place refused (`choose`: what to do instead), and the temporary folders an interrupted earlier
    conversion left beside it removed."""
    busy = f"another process is preparing {folder} now; wait for it to finish, then run again"
    with exclusive(folder.parent / f".{folder.name}.lock", busy):
        if folder.exists() and not folder.is_dir():
            raise DataError(f"{folder} is a file, not a folder; {choose}, or move it away")
        if folder.is_dir() and not folder.stat().st_mode & stat.S_IWUSR:
            raise DataError(
                f"{folder} is read-only (mode {stat.filemode(folder.stat().st_mode)}): mtlab does not replace a "
                f"folder you protected; make it writable (chmod u+w {folder}), or {choose}"
            )
        # only folders named as mtlab names its own temporary ones (mkdtemp's 8 characters, .old-PID, or
        # .old- and 8 characters inside a mount point): a user's .NAME.backup, or another prepare's
        # .NAME.v2.…, is never touched
        own = re.compile(rf"^\.{re.escape(folder.name)}\.([a-z0-9_]{{8}}|old-\d+|old-[a-z0-9_]{{8}})$")
        places = [folder.parent, *([folder] if folder.is_dir() and os.path.ismount(folder) else [])]
        for stale in (s for place in places for s in place.glob(f".{glob.escape(folder.name)}.*")):
            if stale.is_dir() and not stale.is_symlink() and own.match(stale.name):
                shutil.rmtree(stale, ignore_errors=True)
        yield


def resolved(folder) -> Path:
    """The folder a conversion writes: symlinks followed (the link stays, its target is replaced) and
    `.` or `..` made a name (so the lock and the temporary folder sit beside it, not inside)."""
    return Path(folder).resolve()


def run_conversion(folder: Path, stamp: dict, command: str, convert, tables) -> dict:
    """The one way a prepared folder is written (tables, interactions): under an exclusive lock beside
    it (a second writer stops at once); nothing done when its manifest has this `stamp`; a folder whose
    manifest is not mtlab's refused; else `convert()` gives the manifest (with "arrays" for `tables`,
    which turns them into {file name: pyarrow table}) and the folder is replaced whole."""
    folder = resolved(folder)
    with preparing(folder, "choose another --name or --out"):
        existing = _manifest_or_none(folder, stamp["format"])
        if folder.exists() and existing is None and any(folder.iterdir()):
            raise DataError(
                f"{folder} exists and was not written by `{command}` (no {stamp['format']} manifest.json); "
                "choose another --name or --out, or move that folder away"
            )
        if existing is not None and existing.get("stamp") == stamp:
            return {**existing, "up_to_date": True}
        if existing is not None:
            foreign = sorted(
                f.name for f in folder.iterdir() if f.name not in ("manifest.json", VERIFIED) and f.suffix != ".parquet"
            )
            if foreign:
                raise DataError(
                    f"{folder} holds files `{command}` did not write ({', '.join(foreign)}), which preparing again "
                    "would remove; move them elsewhere, then run again"
                )
        manifest = convert()
        manifest["stamp"] = stamp
        write_folder(folder, manifest, tables(manifest.pop("arrays")))
    return {**manifest, "up_to_date": False}


def _split_tables(arrays: dict) -> dict:
    import pyarrow as pa

    return {
        f"{split}.parquet": pa.table(
            {
                **{f"c{j}": cat[:, j] for j in range(cat.shape[1])},
                **{f"n{j}": num[:, j] for j in range(num.shape[1])},
                **{f"y{j}": labels[:, j] for j in range(labels.shape[1])},
            }
        )
        for split, (cat, num, labels) in arrays.items()
    }


def _manifest_or_none(folder: Path, fmt: str = FORMAT) -> dict | None:
    """The folder's manifest when it is a conversion of format `fmt`, else None."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == fmt else None


def _convert(frames: dict, name: str, specs: list[TaskSpec], settings: dict, quiet: bool) -> dict:
    train, train_name = frames["train"]
    columns = [str(c) for c in train.columns]
    train.columns = columns
    for split, (frame, frame_name) in frames.items():
        check_distinct_columns(frame.columns, frame_name)
        frame.columns = [str(c) for c in frame.columns]
        needed = [c for c in columns if c not in settings["drop"]]
        missing = [c for c in needed if c not in frame.columns]
        if split != "train" and missing:
            raise DataError(
                f"{frame_name} lacks the column(s) {missing} of {train_name}; every file needs the training "
                "file's columns (in any order; a --drop column may be left out)"
            )
    listed = ", ".join(repr(c) for c in columns)
    for wanted, what in (
        ([s.column for s in specs], "--task"),
        (settings["drop"], "--drop"),
        (settings["categorical"] or [], "--categorical"),
        (settings["numeric"] or [], "--numeric"),
        ([settings["group"]] if settings["group"] else [], "--group"),
    ):
        unknown = [c for c in wanted if c not in columns]
        if unknown:
            raise DataError(
                f"{what} {', '.join(map(repr, unknown))}: no such column in {train_name}; its columns: {listed}"
            )
    for c in [c for c in columns if c not in settings["drop"]]:  # one value per cell (a Parquet list column: no)
        sample = train[c].dropna().head(1000)
        if sample.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
            raise DataError(
                f"{train_name}: column {c!r} holds lists or records, not one value per cell; --drop it, or "
                "spread it over columns of their own"
            )
    task_columns = [s.column for s in specs]
    if len(set(task_columns)) < len(task_columns):
        raise DataError(f"a column is given as two tasks: {task_columns}; name each task once")
    if "mean" in task_columns:
        raise DataError(
            "a task named 'mean' would share its history columns with the mean over the tasks "
            "(valid_auc_mean, valid_score_mean): rename the column"
        )
    frames = _split(frames, settings)
    train = frames["train"][0]

    kinds, labels = {}, {split: [] for split in frames}
    for spec in specs:
        kind = _task_kind(spec, train[spec.column], frames["train"][1])
        if kind.kind == "multiclass":  # a class that only valid or test rows hold is a class too (scored)
            seen = {v for split, (f, _) in frames.items() if split != "train" for v in as_text(f[spec.column].dropna())}
            later = sorted(seen - set(kind.classes))
            if later:
                kind = TaskKind("multiclass", classes=(*kind.classes, *later))
                if not quiet:
                    print(
                        f"{name}: task {spec.column!r}: class(es) {later} occur in validation or test rows only; "
                        "they are scored (a model cannot learn them from training)"
                    )
        kinds[spec.column] = kind
        if kind.kind == "multiclass" and len(kind.classes) > max(50, len(train) // 10) and not quiet:
            print(
                f"{name}: task {spec.column!r} has {len(kind.classes):,} classes in {len(train):,} training rows, "
                "about one per few rows: a regression task?"
            )
        values = set(as_text(train[spec.column].dropna()))
        for split, (frame, frame_name) in frames.items():
            labels[split].append(_labels(spec, kind, frame[spec.column], frame_name, values))

    features = [c for c in columns if c not in task_columns and c not in settings["drop"] and c != settings["group"]]
    if not features:
        raise DataError(f"{train_name}: no feature column is left once the tasks and --drop are taken out")
    numeric = set(settings["numeric"] or [])
    categorical = set(settings["categorical"] or [])
    both = numeric & categorical
    if both:
        raise DataError(f"{sorted(both)} given both as --numeric and --categorical; give each column once")
    chosen = {}
    for c in features:
        if c in numeric:
            numbers(train[c], frames["train"][1], f"--numeric column {c!r}")
            chosen[c] = "numeric"
        elif c in categorical:
            chosen[c] = "categorical"
        else:
            is_number = pd.api.types.is_numeric_dtype(train[c]) and not pd.api.types.is_bool_dtype(train[c])
            chosen[c] = "numeric" if is_number and train[c].nunique() >= NUMERIC_MIN_DISTINCT else "categorical"
    if not quiet and not (settings["numeric"] or settings["categorical"]):
        print(
            f"{name}: columns read as numeric: {', '.join(c for c in features if chosen[c] == 'numeric') or 'none'}; "
            f"as categorical: {', '.join(c for c in features if chosen[c] == 'categorical') or 'none'} "
            "(choose with --numeric / --categorical)"
        )
    for c in features:  # a column with a value per row teaches nothing about unseen rows
        distinct = train[c].nunique()
        if not quiet and chosen[c] == "categorical" and distinct > max(100, len(train) // 2):
            print(
                f"{name}: column {c!r} holds {distinct:,} distinct values in {len(train):,} training rows: an id or a "
                "timestamp? Its unseen values get the unknown code; --drop it if it is one"
            )
    cat_cols = [c for c in features if chosen[c] == "categorical"]
    num_cols = [c for c in features if chosen[c] == "numeric"]
    vocab, stats = {}, {}
    for c in cat_cols:
        counts = as_text(train[c]).value_counts()
        vocab[c] = sorted(counts[counts >= settings["min_count"]].index, key=lambda v: (-counts[v], v))
    for c in num_cols:
        values = numbers(train[c], frames["train"][1], f"numeric column {c!r}")
        std = float(values.std()) if values.notna().sum() > 1 else 0.0
        stats[c] = {
            "mean": float(values.mean()) if values.notna().any() else 0.0,
            "std": std if std > 0 else 1.0,
            "missing_indicator": bool(values.isna().any()),
        }
    encoding = Encoding(
        {c: Categorical(c, tuple(vocab[c]), read_as_of(train[c])) for c in cat_cols},
        {c: Numeric(c, **stats[c]) for c in num_cols},
        {spec.column: Target(spec.column, kinds[spec.column]) for spec in specs},
    )
    arrays, unknown_share = {}, {}
    for split, (frame, frame_name) in frames.items():
        encoded = encoding.encode(frame, frame_name)  # the one encoding new rows get too (mtlab predict)
        cat, num = encoded.batch.cat.numpy(), encoded.batch.num.numpy()
        if split == "train":
            unknown_share = {c: float((cat[:, j] == 0).mean()) for j, c in enumerate(cat_cols)}
        if split != "train" and len(frame) and not quiet:  # a column whose values training never held
            for j, c in enumerate(cat_cols):
                unseen, seen_before = float((cat[:, j] == 0).mean()), unknown_share.get(c, 0.0)
                if unseen > 0.5 and unseen > seen_before + 0.3:
                    print(
                        f"{name}: {unseen:.0%} of column {c!r}'s values in {frame_name} never occur in training "
                        f"({seen_before:.0%} of training rows have the unknown code): another spelling, or an id?"
                    )
        arrays[split] = (cat, num, np.stack(labels[split], 1).astype(np.float32))
    num_names = list(encoding.num_names)
    task_summary = {}
    for t, spec in enumerate(specs):
        y = arrays["train"][2][:, t]
        y = y[~np.isnan(y)]
        kind = kinds[spec.column]
        summary = {"labelled_rows": int(len(y))}
        if kind.kind == "binary":
            summary["positive_rate"] = float(y.mean())
        elif kind.kind == "regression":
            summary |= {"mean": kind.mean, "std": kind.std}
        else:
            summary["class_rates"] = {c: float((y == k).mean()) for k, c in enumerate(kind.classes)}
        task_summary[spec.column] = summary
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "dataset": name,
        "sources": {
            split: frame_name for split, (_, frame_name) in frames.items() if not frame_name.startswith("the ")
        },
        "rows": {split: int(len(a[0])) for split, a in arrays.items()},
        "tasks": [spec.column for spec in specs],
        "kinds": {c: k.to_json() for c, k in kinds.items()},
        "task_summary": task_summary,
        "categorical": {c: vocab[c] for c in cat_cols},
        "numeric": {c: stats[c] for c in num_cols},
        "num_names": num_names,
        "encoding": encoding.to_json(),  # what a saved model encodes new rows with
        "arrays": arrays,  # written as Parquet, not into the JSON
    }


def _split(frames: dict, settings: dict) -> dict:
    """The frames of the three splits: the files given, the rest held out of the training rows
    (seeded; by whole groups with `group`)."""
    train, train_name = frames["train"]
    missing = [s for s in ("valid", "test") if s not in frames]
    if not missing:
        return frames
    rng = np.random.default_rng(settings["seed"])
    if settings["group"]:
        keys = as_text(train[settings["group"]])
        groups = keys.unique()
        order = rng.permutation(len(groups))
        share = {g: order[i] / len(groups) for i, g in enumerate(groups)}
        position = keys.map(share).to_numpy()
    else:
        position = rng.permutation(len(train)) / len(train)
    out = {"train": None}
    f = settings["valid_fraction"]
    bounds = {name: (i * f, (i + 1) * f) for i, name in enumerate(missing)}
    taken = np.zeros(len(train), bool)
    for name, (lo, hi) in bounds.items():
        rows = (position >= lo) & (position < hi)
        if not rows.any():
            raise DataError(
                f"{train_name}: {len(train)} rows{' in ' + str(len(groups)) + ' groups' if settings['group'] else ''} "
                f"leave none for the {name} split at --valid-fraction {f}; give more rows, a larger fraction or a --{name} file"
            )
        out[name] = (train[rows], f"{train_name} (held out as {name})")  # index labels: lines in the file
        taken |= rows
    out["train"] = (train[~taken], train_name)
    for name in ("valid", "test"):
        if name in frames:
            out[name] = frames[name]
    return out


def _task_kind(spec: TaskSpec, column: pd.Series, frame_name: str) -> TaskKind:
    known = column[column.notna()]
    if spec.kind == "regression":
        values = numbers(column, frame_name, f"regression task {spec.column!r}").dropna()
        if values.empty:
            raise DataError(f"regression task {spec.column!r} has no label in {frame_name}: its cells are all empty")
        if values.nunique() < 2:
            raise DataError(f"regression task {spec.column!r} has one value only in {frame_name}: nothing to learn")
        return TaskKind("regression", mean=float(values.mean()), std=float(values.std()))
    text = as_text(known)
    counts = text.value_counts()
    if counts.empty:
        raise DataError(f"{spec.kind} task {spec.column!r} has no label in {frame_name}: its cells are all empty")
    if spec.kind == "multiclass":
        if len(counts) < 2:
            raise DataError(
                f"multiclass task {spec.column!r} has one class only in {frame_name} ({list(counts.index)}): "
                "nothing to learn; choose another column"
            )
        return TaskKind("multiclass", classes=tuple(sorted(counts.index, key=lambda v: (-counts[v], v))))
    values = ", ".join(f"{v!r} ({n})" for v, n in counts.items())
    positive = spec.positive
    if positive is None:
        lowered = {v.lower() for v in counts.index}
        if lowered <= {"0", "1", "0.0", "1.0"} or lowered <= {"true", "false"}:
            positive = next(v for v in counts.index if v.lower() in ("1", "1.0", "true"))
        else:
            raise DataError(
                f"binary task {spec.column!r}: say which value is positive, e.g. --task {spec.column}:binary:"
                f"{counts.index[-1]}; its values in {frame_name}: {values}"
            )
    if positive not in counts.index:
        close = [v for v in counts.index if v.strip().lower() == positive.strip().lower()]
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(
            f"binary task {spec.column!r}: the positive value {positive!r} never occurs in {frame_name}; {hint}"
            f"its values: {values}"
        )
    if len(counts) == 1:
        raise DataError(f"binary task {spec.column!r} has one value only in {frame_name} ({values}): nothing to learn")
    return TaskKind("binary", positive=positive)


def _labels(spec: TaskSpec, kind: TaskKind, column: pd.Series, frame_name: str, kind_values=()) -> np.ndarray:
    """The label column of a split (NaN: no label); `kind_values`: a binary task's training values."""
    if kind.kind == "regression":
        values = numbers(column, frame_name, f"regression task {spec.column!r}")
        return ((values - kind.mean) / kind.std).to_numpy(np.float64)
    text = as_text(column)
    if kind.kind == "binary":  # compared without letter case; a value training never held is refused
        folded, known = text.str.casefold(), {v.casefold() for v in kind_values}
        strange = column.notna() & ~folded.isin(known)
        if strange.any():
            label = column.index[strange.to_numpy().argmax()]
            raise DataError(
                f"{_line(frame_name, label)}: binary task {spec.column!r} holds {text.loc[label]!r}, which its "
                f"training rows never hold (they hold {sorted(kind_values)}); correct it, or leave the cell empty"
            )
        return np.where(column.notna(), (folded == kind.positive.casefold()).to_numpy(np.float64), np.nan)
    codes = pd.Index(kind.classes).get_indexer(text).astype(np.float64)
    codes[codes < 0] = np.nan
    codes[~column.notna().to_numpy()] = np.nan
    return codes


def write_folder(folder: Path, manifest: dict, tables: dict) -> None:
    """The Parquet files ({name: pyarrow table}) and the manifest into a temporary folder beside
    `folder`, renamed into place (the old conversion, mtlab's own, is removed once the new one is whole)."""
    import pyarrow.parquet as pq

    tmp = work_folder(folder)
    try:
        for file_name, table in tables.items():
            pq.write_table(table, tmp / file_name)
        manifest["files_sha256"] = file_sums(tmp, list(tables))  # checked before each use (check_files)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        swap_in(folder, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_prepared_files(folder: Path, manifest: dict, repair: str) -> None:
    """The files a prepared table's or interactions' manifest lists are the ones written (sha256,
    `download.check_files`); a folder prepared before manifests listed them is refused with `repair`."""
    sums = manifest.get("files_sha256")
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise DataError(f"{folder} was prepared by an older mtlab (its manifest lists no checksums); {repair}")
    names = [n for n in sums if not isinstance(n, str) or "/" in n or n.startswith(".") or not n.endswith(".parquet")]
    if names:
        raise DataError(
            f"{folder / 'manifest.json'} lists files outside the folder or not its own ({names[:2]}); {repair}"
        )
    check_files(folder, sums, repair)


def stamp_digest(manifest: dict) -> str:
    """A short digest of what made a conversion (inputs' sha256, settings): a resumed run checks it."""
    return hashlib.sha256(json.dumps(manifest.get("stamp"), sort_keys=True).encode()).hexdigest()[:16]


def prepared_tables(root: Path | None = None, fmt: str = FORMAT) -> dict[str, dict]:
    """{name: manifest} of the folders prepared under data/ (or `root`) in format `fmt` (tables; or
    interactions, converters.interactions.FORMAT)."""
    root = root or data_dir()
    if not root.is_dir():
        return {}
    found = {}
    for folder in sorted(root.iterdir()):
        manifest = _manifest_or_none(folder, fmt) if folder.is_dir() and not folder.name.startswith(".") else None
        if manifest is not None:
            found[folder.name] = manifest
    return found


def load_table(
    name: str, tasks=None, subsample: float | None = None, seed: int = 0, root: Path | None = None
) -> MultiTaskData:
    """A prepared table as MultiTaskData (`tasks`: a subset, in order; default all)."""
    import pyarrow.parquet as pq

    folder = (root or data_dir()) / name
    manifest = _manifest_or_none(folder)
    if manifest is None:
        raise DataError(
            f"no prepared table {name!r} in {folder.parent}; prepare it with "
            f"`python -m mtlab.data prepare table --name {name} --train FILE --task COLUMN:KIND …`"
        )
    check_prepared_files(folder, manifest, f"prepare {name} again")
    splits = {}
    for split in ("train", "valid", "test"):
        try:
            table = pq.read_table(folder / f"{split}.parquet").to_pandas()
        except OSError as err:
            raise DataError(
                f"{folder / (split + '.parquet')} is missing or damaged ({err}); prepare {name} again"
            ) from err
        splits[split] = TabularSplit(
            torch.from_numpy(_columns(table, "c", np.int64)),
            torch.from_numpy(_columns(table, "n", np.float32)),
            torch.from_numpy(_columns(table, "y", np.float32)),
        )
    vocab = {c: tuple(v) for c, v in manifest["categorical"].items()}
    features = FeatureSpec(
        cat_names=tuple(vocab),
        cat_cardinalities=tuple(len(v) + 1 for v in vocab.values()),
        num_names=tuple(manifest["num_names"]),
        vocab=vocab,
        targets={t: TaskKind.from_json(k) for t, k in manifest["kinds"].items()},
    )
    data = MultiTaskData(
        name,
        tuple(manifest["tasks"]),
        features,
        splits["train"],
        splits["valid"],
        splits["test"],
        str(folder),
        version=stamp_digest(manifest),
        encoding=Encoding.from_json(manifest["encoding"]) if "encoding" in manifest else None,
    )
    data = data.subsample(subsample, seed)
    return (data.select_tasks(list(tasks)) if tasks else data).check_labels()


def _columns(table: pd.DataFrame, prefix: str, dtype) -> np.ndarray:
    """The columns c0, c1 … (or n…, y…) of a stored split as one [N, k] array."""
    names = [c for c in table.columns if c[0] == prefix and c[1:].isdigit()]
    return np.array(table[sorted(names, key=lambda c: int(c[1:]))].to_numpy(dtype), copy=True).reshape(len(table), -1)
