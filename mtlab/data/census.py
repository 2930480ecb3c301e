"""Census-Income (KDD), UCI: the multi-task benchmark of MMoE, PLE and MPT-Rec.

Tasks are binary columns derived from the raw data, and of the other kinds (data.task_kinds) weeks
worked in the year (regression), marital status in its seven classes and education in five levels
(multi-class). The column behind every task is removed from
the features, so no label leaks into the input; the income column is the dataset's own target and
never a feature; the instance weight is a sampling weight, not a feature.

Split: the official training file trains; the official test file is split 50/50 into validation
and test with a fixed seed (as in the MPT-Rec release).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .download import read_checked, require_files
from .encoding import Categorical, Encoding, Numeric, Target, as_text, read_as_of
from .tabular import DataError, FeatureSpec, MultiTaskData, TabularSplit
from .task_kinds import TaskKind

COLUMNS = (
    "age",
    "class_of_worker",
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "education",
    "wage_per_hour",
    "enroll_in_edu_inst_last_wk",
    "marital_status",
    "major_industry_code",
    "major_occupation_code",
    "race",
    "hispanic_origin",
    "sex",
    "member_of_labor_union",
    "reason_for_unemployment",
    "full_or_part_time_employment_stat",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "tax_filer_status",
    "region_of_previous_residence",
    "state_of_previous_residence",
    "detailed_household_and_family_stat",
    "detailed_household_summary_in_household",
    "instance_weight",
    "migration_code_change_in_msa",
    "migration_code_change_in_reg",
    "migration_code_move_within_reg",
    "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt",
    "num_persons_worked_for_employer",
    "family_members_under_18",
    "country_of_birth_father",
    "country_of_birth_mother",
    "country_of_birth_self",
    "citizenship",
    "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin",
    "veterans_benefits",
    "weeks_worked_in_year",
    "year",
    "income",
)
NUMERIC = (
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
)
NEVER_FEATURES = ("instance_weight", "income")
CATEGORICAL = tuple(c for c in COLUMNS if c not in NUMERIC and c not in NEVER_FEATURES)

COLLEGE = (
    "Some college but no degree",
    "Associates degree-occup /vocational",
    "Associates degree-academic program",
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
)


EDUCATION_LEVELS = {  # education in five levels, for the multi-class task `education_level`
    "children": ("Children",),
    "no high school diploma": (
        "Less than 1st grade",
        "1st 2nd 3rd or 4th grade",
        "5th or 6th grade",
        "7th and 8th grade",
        "9th grade",
        "10th grade",
        "11th grade",
        "12th grade no diploma",
    ),
    "high school": ("High school graduate",),
    "some college or associate": COLLEGE[:3],
    "bachelor or higher": COLLEGE[3:],
}


@dataclass(frozen=True)
class TaskDef:
    """A Census-Income task: its column, what it predicts and, by kind, how the label is read:
    binary: `positive` (the column → booleans); regression: the column's number; multiclass: the
    class of each value (`classes`: {class name: the column's values in it})."""

    column: str
    description: str
    positive: Callable[[pd.Series], pd.Series] | None = None
    kind: str = "binary"
    classes: dict[str, tuple[str, ...]] | None = None


TASKS: dict[str, TaskDef] = {
    "income": TaskDef("income", "income above $50K", lambda s: s.str.startswith("50000+")),
    "marital": TaskDef("marital_status", "never married", lambda s: s == "Never married"),
    "education": TaskDef("education", "education at least college (as in the MMoE paper)", lambda s: s.isin(COLLEGE)),
    "sex": TaskDef("sex", "female", lambda s: s == "Female"),
    # MPT-Rec's T3 "Education" (Table 4, Sec. 4.3.1): its Pearson correlations with income and marital
    # status, 0.186 and 0.142, are this binarization's to three decimals (training file), not those of
    # "at least college" (0.265, 0.288). Tested in tests/test_data.py.
    "bachelors": TaskDef(
        "education", "a bachelor's degree (MPT-Rec's T3 'Education')", lambda s: s == "Bachelors degree(BA AB BS)"
    ),
    "weeks_worked": TaskDef("weeks_worked_in_year", "weeks worked in the year, 0–52 (regression)", kind="regression"),
    "marital_status": TaskDef(
        "marital_status",
        "marital status, 7 classes (multi-class)",
        kind="multiclass",
        classes={
            v: (v,)
            for v in (
                "Never married",
                "Married-civilian spouse present",
                "Divorced",
                "Widowed",
                "Separated",
                "Married-spouse absent",
                "Married-A F spouse present",
            )
        },
    ),
    "education_level": TaskDef(
        "education",
        "education in 5 levels, children to bachelor or higher (multi-class)",
        kind="multiclass",
        classes=EDUCATION_LEVELS,
    ),
}
DEFAULT_TASKS = ("income", "marital")


def task_def(name: str) -> TaskDef:
    """A named task, or `column=value` for any categorical column (value is the positive class)."""
    if name in TASKS:
        return TASKS[name]
    if "=" in name:
        column, value = name.split("=", 1)
        if column in CATEGORICAL:
            return TaskDef(column, f"{column} is {value!r}", lambda s, v=value: s.astype(str) == v)
        raise DataError(
            f"task {name!r}: {column!r} is not a categorical column of census-income; "
            f"categorical columns: {', '.join(CATEGORICAL)}"
        )
    raise DataError(
        f"unknown census-income task {name!r}; valid tasks: {', '.join(TASKS)}, "
        "or 'column=value' for any categorical column (e.g. 'race=Black')"
    )


INCOME_VALUES = ("- 50000.", "50000+.")


def _check_value(name: str, train: pd.DataFrame) -> None:
    """A 'column=value' task whose value never occurs in the training file is refused naming the
    column's values (with the one meant, where only the letter case differs)."""
    if name in TASKS or "=" not in name:
        return
    column, value = name.split("=", 1)
    values = train[column].astype(str).value_counts()
    if value in values.index:
        return
    close = [v for v in values.index if v.strip().lower() == value.strip().lower()]
    hint = f"did you mean '{column}={close[0]}'? " if close else ""
    listed = ", ".join(f"{v!r} ({n})" for v, n in values.items())
    raise DataError(
        f"task {name!r}: {value!r} never occurs in column {column!r}; {hint}its values (training rows) are: {listed}"
    )


def read_raw(path: Path) -> pd.DataFrame:
    """One Census-Income file; a malformed row is refused naming the file, its line and what is wrong."""
    repair = (
        f"a Census-Income (KDD) row has {len(COLUMNS)} comma-separated fields, no header: repair the file, "
        "or fetch it again with `python -m mtlab.data fetch census-income --force`"
    )
    frame = read_checked(
        path,
        repair,
        NUMERIC,
        last_required=True,
        header=None,
        names=list(COLUMNS),
        skipinitialspace=True,
        keep_default_na=False,
    )  # "NA" and "None" are real category names here
    unknown = ~frame["income"].isin(INCOME_VALUES)
    if unknown.any():
        row = int(unknown.to_numpy().argmax())
        raise DataError(
            f"{path}, line {row + 1}: income is {frame['income'].iloc[row]!r}, not one of "
            f"{', '.join(INCOME_VALUES)}; {repair}"
        )
    return frame


def load_census(
    tasks: list[str] | tuple[str, ...] = DEFAULT_TASKS,
    drop_columns: list[str] | tuple[str, ...] = (),
    subsample: float | None = None,
    seed: int = 0,
    split_seed: int = 2020,
    root: Path | None = None,
) -> MultiTaskData:
    """Load Census-Income as tensors.

    tasks: task names (see TASKS) or 'column=value'; their columns are removed from the features.
    drop_columns: further columns kept out of the features (e.g. a new task's column, at every
        stage of the new-task protocol).
    subsample: keep this fraction of the rows of every split (quick profiles).
    """
    if not tasks:
        raise DataError("at least one task is needed; valid tasks: " + ", ".join(TASKS))
    defs = [task_def(t) for t in tasks]
    unknown = [c for c in drop_columns if c not in COLUMNS]
    if unknown:
        raise DataError(f"unknown column(s) {unknown} in drop_columns; columns: {', '.join(COLUMNS)}")
    paths = require_files("census-income", root)
    train = read_raw(paths["census_income_train.csv"])
    for name in tasks:
        _check_value(name, train)
    heldout = read_raw(paths["census_income_test.csv"])
    order = np.random.default_rng(split_seed).permutation(len(heldout))
    half = len(heldout) // 2
    valid, test = heldout.iloc[np.sort(order[:half])], heldout.iloc[np.sort(order[half:])]

    excluded = set(NEVER_FEATURES) | {d.column for d in defs} | set(drop_columns)
    cat_cols = [c for c in CATEGORICAL if c not in excluded]
    num_cols = [c for c in NUMERIC if c not in excluded]
    kinds = [task_kind(d, train[d.column]) for d in defs]
    encoding = Encoding(  # code 0 is the unknown bucket: a category never seen in the training file
        {c: Categorical(c, tuple(sorted(as_text(train[c]).unique())), read_as_of(train[c])) for c in cat_cols},
        {
            c: Numeric(c, float(train[c].mean()), float(train[c].std()) or 1.0)
            for c in num_cols  # no missing values: the file is checked (read_raw)
        },
        {t: Target(d.column, k) for t, d, k in zip(tasks, defs, kinds)},
    )

    def encode(frame: pd.DataFrame) -> TabularSplit:
        batch = encoding.encode(frame, "census-income").batch
        labels = np.stack([label(d, kind, frame[d.column]) for d, kind in zip(defs, kinds)], axis=1)
        return TabularSplit(batch.cat, batch.num, torch.from_numpy(labels.astype(np.float32)))

    features = FeatureSpec(
        cat_names=tuple(cat_cols),
        cat_cardinalities=tuple(len(encoding.categorical[c].values) + 1 for c in cat_cols),
        num_names=tuple(num_cols),
        vocab={c: rule.values for c, rule in encoding.categorical.items()},
        targets={t: k for t, k in zip(tasks, kinds) if k.kind != "binary"},
    )
    data = MultiTaskData(
        name="census-income",
        tasks=tuple(tasks),
        features=features,
        train=encode(train),
        valid=encode(valid),
        test=encode(test),
        source=str(paths["census_income_train.csv"].parent),
        encoding=encoding,
    )
    return data.subsample(subsample, seed)


def task_kind(d: TaskDef, train: pd.Series) -> TaskKind:
    """The TaskKind of a task from its training column (a regression target's mean and std)."""
    if d.kind == "regression":
        values = train.astype(float)
        return TaskKind("regression", mean=float(values.mean()), std=float(values.std()) or 1.0)
    if d.kind == "multiclass":
        return TaskKind("multiclass", classes=tuple(d.classes))
    return TaskKind(positive=d.description)


def label(d: TaskDef, kind: TaskKind, column: pd.Series) -> np.ndarray:
    """One task's label column: 0/1, the standardized target, or the class index (NaN: a value in no class)."""
    if kind.kind == "regression":
        return ((column.astype(float) - kind.mean) / kind.std).to_numpy()
    if kind.kind == "multiclass":
        of = {value: k for k, values in enumerate(d.classes.values()) for value in values}
        return column.map(of).astype(float).to_numpy()
    return d.positive(column).to_numpy()


def write_csv(path: str | Path, rows: int | None = None, seed: int = 0, root: Path | None = None) -> Path:
    """The fetched training file written as a CSV file with a header, as a table of one's own would be
    (`rows` of its rows drawn with `seed`; None: all), atomically. Returns the path."""
    frame = read_raw(require_files("census-income", root)["census_income_train.csv"])
    if rows is not None and rows < len(frame):
        frame = frame.sample(rows, random_state=seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path
