"""How a dataset's raw columns become model inputs, as data: the one encoding that training used and
that a saved model carries to encode new rows alike (`mtlab predict`).

An `Encoding` holds, per input, the rule its loader applied to the training file:

- **categorical** (`Categorical`): the training vocabulary; value `values[k]` has code k + 1, every
  other value (rarer than the loader's minimum count, never seen in training) the unknown code 0. A
  value is compared as text (`as_text`), spelled as training read its column (`read_as`): "number"
  (3 and 3.0 alike: "3"), "bool" ("true" / "false") or "text" (without surrounding spaces), a missing
  cell as "(missing)".
- **numeric** (`Numeric`): x̃ = (x − μ) / σ with the training mean μ and standard deviation σ (μ = 0,
  σ = 1 where the loader keeps raw numbers); a missing value takes μ, and where training had missing
  values a 0/1 indicator input "<name> (missing)" follows the column.
- **targets** (`Target`): each task's column and `TaskKind` (what a prediction means: a probability, a
  value in the target's units, class probabilities), so new rows' labels are never read as inputs.

Built by the loaders (Census-Income, tables of one's own, AliExpress), kept on `MultiTaskData.encoding`,
written into a saved model as JSON (`to_json` / `from_json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .tabular import Batch, DataError, FeatureSpec
from .task_kinds import TaskKind

MISSING = "(missing)"
READ_AS = ("number", "bool", "text")
# cells a number column may hold for "missing" besides an empty one (R's and pandas' spellings)
NA_TOKENS = frozenset({"NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None"})


def read_as_of(column: pd.Series) -> str:
    """How a column was read: "bool", "number" or "text" (its dtype)."""
    if pd.api.types.is_bool_dtype(column):
        return "bool"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    return "text"


def _number_text(values: pd.Series) -> pd.Series:
    """Floats as text: whole numbers without a decimal point (3.0 → "3"), others as Python prints them."""
    whole = np.isfinite(values) & (values == np.round(values))
    return values.astype(str).where(~whole, values.where(whole).astype("Int64").astype(str))


def as_text(column: pd.Series, read_as: str | None = None) -> pd.Series:
    """A column's values as text, a missing value as MISSING (its own category), spelled alike whatever
    type each file gave the column: numbers as 3 for 3 and 3.0 (a whole-number column with an empty cell
    is read as floats in one file and as integers in another), booleans as true / false (a column is read
    as booleans in one file and as text in another holding some other word), text without surrounding
    spaces. `read_as` (default: from the column's dtype) is how training read the column: a column of
    text cells read as "number" is parsed first, so that "3.0" in a new file is the 3 training saw."""
    own = read_as_of(column)
    read_as = read_as or own
    if own == "bool":
        return column.astype(object).map({True: "true", False: "false"}).where(column.notna(), MISSING)
    if own == "number":
        return _number_text(column.astype(float)).where(column.notna(), MISSING)
    text = column.astype(object).where(column.notna(), MISSING).astype(str).str.strip()
    if read_as == "number":  # numbers that arrived as text: spelled as training's numbers were
        parsed = pd.to_numeric(text.where(text != MISSING), errors="coerce").astype(float)
        text = _number_text(parsed).where(parsed.notna(), text)
    lowered = text.str.casefold()
    return text.where(~lowered.isin(["true", "false"]), lowered)


def check_distinct_columns(names, where: str) -> None:
    """Refuse a file whose header names a column twice (its cells could not be told apart)."""
    names = [str(c) for c in names]
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise DataError(f"{where} has the column(s) {twice} twice; give every column its own name")


def line_of(where: str, index) -> str:
    """Where the row of index label `index` (its position in the file read) is: a CSV's line (the
    header is line 1) or a row number (Parquet, a DataFrame)."""
    return f"{where}, line {int(index) + 2}" if ".csv" in where else f"{where}, row {int(index) + 1}"


def numbers(column: pd.Series, where: str, what: str) -> pd.Series:
    """A column's values as floats (NaN: missing, an empty or blank cell or one of NA_TOKENS); a cell that is
    not a number, or is infinite, is refused naming its file and line; so is a column of dates or times
    (a Parquet timestamp would otherwise be read as nanoseconds)."""
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        raise DataError(
            f"{where}: {what} holds dates or times ({column.dtype}), not numbers; give the column as numbers "
            "(as in the training file)"
        )
    values = pd.to_numeric(column, errors="coerce").astype(float)
    bad = column.notna() & values.isna() & ~column.astype(str).str.strip().isin(NA_TOKENS | {""})  # "": empty
    if bad.any():
        label = column.index[bad.to_numpy().argmax()]
        raise DataError(f"{line_of(where, label)}: {what} holds {str(column.loc[label])!r}, not a number")
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        label = column.index[infinite.argmax()]
        raise DataError(
            f"{line_of(where, label)}: {what} holds {str(column.loc[label])!r}, not a finite number; "
            "replace it (or leave the cell empty: missing)"
        )
    return values


@dataclass(frozen=True)
class Categorical:
    """A categorical input: its raw `column`, the training vocabulary (code k + 1 is `values[k]`, 0 the
    unknown code) and how training read the column (`read_as`, see `as_text`)."""

    column: str
    values: tuple[str, ...]
    read_as: str = "text"

    def codes(self, column: pd.Series) -> np.ndarray:
        """The codes [N] (int64) of a raw column."""
        return pd.Index(self.values).get_indexer(as_text(column, self.read_as)) + 1  # -1 (unknown) → 0


@dataclass(frozen=True)
class Numeric:
    """A numeric input: its raw `column`, x̃ = (x − mean) / std, a missing value imputed with the mean
    and, with `missing_indicator`, a 0/1 input beside it."""

    column: str
    mean: float = 0.0
    std: float = 1.0
    missing_indicator: bool = False


@dataclass(frozen=True)
class Target:
    """A task: the raw column its labels come from and its kind (what a prediction is)."""

    column: str
    kind: TaskKind = field(default_factory=TaskKind)


@dataclass(frozen=True)
class Encoded:
    """New rows as model input, and what their encoding noticed: per categorical input the rows that
    took the unknown code (a value not in the training vocabulary), per numeric input the rows without a
    value (given the training mean)."""

    batch: Batch
    unknown: dict[str, int]
    missing: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Encoding:
    """The inputs' and tasks' rules of a dataset (module docstring), keyed by input name in the model's
    input order: `categorical` → `Batch.cat` columns, `numeric` → `Batch.num` columns (and indicators)."""

    categorical: dict[str, Categorical]
    numeric: dict[str, Numeric]
    targets: dict[str, Target]

    @property
    def num_names(self) -> tuple[str, ...]:
        """The numeric inputs in order, each column's missing indicator after it."""
        return tuple(
            n
            for name, rule in self.numeric.items()
            for n in ([name, f"{name} {MISSING}"] if rule.missing_indicator else [name])
        )

    @property
    def columns(self) -> list[str]:
        """The raw columns new rows must hold (each once, in input order)."""
        wanted = [r.column for r in self.categorical.values()] + [r.column for r in self.numeric.values()]
        return list(dict.fromkeys(wanted))

    def fits(self, spec: FeatureSpec) -> bool:
        """Whether this encoding makes the inputs `spec` describes (names, vocabulary sizes)."""
        return (
            tuple(self.categorical) == spec.cat_names
            and tuple(len(r.values) + 1 for r in self.categorical.values()) == spec.cat_cardinalities
            and self.num_names == spec.num_names
            and not spec.bag_names
        )

    def for_tasks(self, tasks) -> Encoding:
        """The same inputs with the targets of `tasks` only."""
        return Encoding(self.categorical, self.numeric, {t: self.targets[t] for t in tasks if t in self.targets})

    def check_columns(self, columns, where: str) -> list[str]:
        """Refuse a frame that lacks an input column (naming every missing one); return the columns it
        holds besides the inputs and the tasks' label columns (ignored)."""
        columns = [str(c) for c in columns]
        missing = [c for c in self.columns if c not in columns]
        if missing:
            raise DataError(
                f"{where} lacks the feature column(s) {', '.join(map(repr, missing))} the model was trained on; "
                f"add them (an empty cell is a missing value) — it needs: {', '.join(self.columns)}"
            )
        known = set(self.columns) | {t.column for t in self.targets.values()}
        return [c for c in columns if c not in known]

    def encode(self, frame: pd.DataFrame, where: str = "the input") -> Encoded:
        """Raw rows (a DataFrame holding `columns`) as a Batch: codes [N, C] int64, numbers [N, D]
        float32. A numeric cell that is not a number is refused naming `where` and its line (the
        frame's index: its rows' positions in the file)."""
        self.check_columns(frame.columns, where)
        frame = frame.rename(columns=str)
        n = len(frame)
        if self.categorical:
            cat = np.stack([rule.codes(frame[rule.column]) for rule in self.categorical.values()], 1)
        else:
            cat = np.zeros((n, 0))
        parts, missing = [], {}
        for rule in self.numeric.values():
            values = numbers(frame[rule.column], where, f"numeric column {rule.column!r}")
            if values.isna().any():
                missing[rule.column] = int(values.isna().sum())
            parts.append(((values.fillna(rule.mean) - rule.mean) / rule.std).to_numpy(np.float32))
            if rule.missing_indicator:
                parts.append(values.isna().to_numpy(np.float32))
        num = np.stack(parts, 1) if parts else np.zeros((n, 0), np.float32)
        unknown = {rule.column: int((cat[:, j] == 0).sum()) for j, rule in enumerate(self.categorical.values())}
        batch = Batch(torch.from_numpy(cat.astype(np.int64)), torch.from_numpy(num.astype(np.float32)))
        return Encoded(batch, {c: k for c, k in unknown.items() if k}, missing)

    def to_json(self) -> dict:
        return {
            "categorical": {
                n: {"column": r.column, "values": list(r.values), "read_as": r.read_as}
                for n, r in self.categorical.items()
            },
            "numeric": {n: r.__dict__ for n, r in self.numeric.items()},
            "targets": {t: {"column": r.column, "kind": r.kind.to_json()} for t, r in self.targets.items()},
        }

    @classmethod
    def from_json(cls, value: dict) -> Encoding:
        return cls(
            {n: Categorical(r["column"], tuple(r["values"]), r["read_as"]) for n, r in value["categorical"].items()},
            {
                n: Numeric(str(r["column"]), float(r["mean"]), float(r["std"]), bool(r["missing_indicator"]))
                for n, r in value["numeric"].items()
            },
            {t: Target(r["column"], TaskKind.from_json(r["kind"])) for t, r in value["targets"].items()},
        )
