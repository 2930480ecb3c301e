"""Datasets as tensors: tabular multi-task data (Census-Income, synthetic) and recommendation data
(MovieLens, FilmTrust, Epinions, Amazon, synthetic communities), each loaded by name."""

from __future__ import annotations

from .census import DEFAULT_TASKS as CENSUS_DEFAULT_TASKS
from .census import TASKS as CENSUS_TASKS
from .census import load_census
from .download import SOURCES, data_dir, fetch
from .interactions import (
    InteractionData,
    InteractionSpec,
    load_movielens,
    make_synthetic_interactions,
)
from .rec_files import load_amazon, load_epinions, load_filmtrust
from .synthetic import make_synthetic
from .tabular import Batch, DataError, FeatureSpec, MultiTaskData, TabularSplit, distinct_tasks
from .task_kinds import TaskKind

REC_TASKS = {
    "rec": "BPR on the user's items (always first)",
    "social": "BPR on user-user links",
    "coview": "BPR on item-item links",
    "category": "item categories (multi-label)",
    "rating": "the training ratings (regression)",
    "attribute": "user attributes (classification)",
    "align": "alignment + uniformity of the embeddings",
}

FUNNEL_DATASETS = ("ali-ccp", *(f"aliexpress-{cc}" for cc in ("nl", "es", "fr", "us", "ru")))
# name -> (loader, one-line description, {task: description})
DATASETS = {
    "census-income": (
        load_census,
        "UCI Census-Income (KDD), 199,523 train / 99,762 held-out rows; fetch first",
        {name: d.description for name, d in CENSUS_TASKS.items()}
        | {"column=value": "any categorical column made binary"},
    ),
    "ali-ccp": (
        None,  # mtlab.data.funnel_shards.load_aliccp, imported when used (pyarrow)
        "Ali-CCP click/conversion funnel (Tianchi 408): prepare your raw files first "
        "(python -m mtlab.data prepare ali-ccp --raw DIR)",
        {
            "ctr": "click",
            "cvr": "conversion given a click (clicked impressions only)",
            "ctcvr": "click and conversion (entire space)",
        },
    ),
    **{
        f"aliexpress-{cc.lower()}": (
            None,  # mtlab.data.funnel_shards.load_aliexpress, imported when used (pyarrow)
            f"AliExpress {cc} search logs, click/conversion funnel (Tianchi 74690): prepare your files first "
            f"(python -m mtlab.data prepare aliexpress --raw DIR --country {cc})",
            {
                "ctr": "click",
                "cvr": "conversion given a click (clicked impressions only)",
                "ctcvr": "click and conversion (entire space)",
            },
        )
        for cc in ("NL", "ES", "FR", "US", "RU")
    },
    "synthetic": (
        make_synthetic,
        "MMoE-style synthetic tasks with controllable correlation rho (no download)",
        {"t1 … tN": "tasks of the generator, pairwise cosine rho"},
    ),
}
# recommendation data (model `mf`): name -> (loader, description, tasks it supports)
REC_DATASETS = {
    "ml-100k": (
        lambda seed: load_movielens("ml-100k", seed=seed),
        "MovieLens-100K (GroupLens); fetch first",
        ("rec", "category", "attribute", "align", "rating"),
    ),
    "ml-1m": (
        lambda seed: load_movielens("ml-1m", seed=seed),
        "MovieLens-1M (GroupLens); fetch first",
        ("rec", "category", "attribute", "align", "rating"),
    ),
    "filmtrust": (
        lambda seed: load_filmtrust(seed=seed),
        "FilmTrust ratings and trust links; fetch first",
        ("rec", "social", "align", "rating"),
    ),
    "epinions": (
        lambda seed: load_epinions(seed=seed),
        "Epinions (trustlet.org files in data/epinions/)",
        ("rec", "social", "align", "rating"),
    ),
    "amazon": (
        lambda seed: load_amazon_folder(seed=seed),
        "Amazon reviews + metadata (files in data/amazon/)",
        ("rec", "coview", "category", "align", "rating"),
    ),
    "rec-synthetic": (
        lambda seed: make_synthetic_interactions(n_users=600, n_items=500, p_in=0.15, seed=seed),
        "planted-community interactions (no download)",
        ("rec", "align"),
    ),
}


BUILT_IN = frozenset([*DATASETS, *REC_DATASETS])  # names a table of one's own cannot take
TABLE_KINDS: dict[str, dict[str, TaskKind]] = {}  # a prepared table's task kinds, by table name


def refresh_tables() -> dict[str, dict]:
    """Register the tables prepared under data/ (`python -m mtlab.data prepare table`) in DATASETS and
    the interactions (`prepare interactions`) in REC_DATASETS, so that `--data NAME`, the explorer and
    `load_dataset` offer them beside the built-in datasets; called on import and after each
    `prepare_table` / `prepare_interactions`. Returns {name: manifest} of the tables."""
    from .converters.interactions import FORMAT as INTERACTIONS
    from .converters.interactions import load_interactions
    from .converters.table import prepared_tables

    tables = prepared_tables()
    for name in [n for n in DATASETS if n not in BUILT_IN and n not in tables]:
        del DATASETS[name]  # a table removed from disk since
    logs = prepared_tables(fmt=INTERACTIONS)
    for name in [n for n in REC_DATASETS if n not in BUILT_IN and n not in logs]:
        del REC_DATASETS[name]
    for name, manifest in logs.items():
        if name not in BUILT_IN:
            REC_DATASETS[name] = (
                lambda seed, name=name: load_interactions(name, seed=seed),
                f"your interactions ({manifest['users']:,} users, {manifest['items']:,} items, "
                f"{manifest['interactions']:,} interactions)",
                tuple(manifest["tasks"]),
            )
    for name, manifest in tables.items():
        if name in BUILT_IN:
            continue
        kinds = {t: TaskKind.from_json(k) for t, k in manifest["kinds"].items()}
        TABLE_KINDS[name] = kinds
        rows = manifest["rows"]
        DATASETS[name] = (
            None,  # mtlab.data.converters.table.load_table
            f"your table ({rows['train']:,} train / {rows['valid']:,} valid / {rows['test']:,} test rows, "
            f"prepared from {manifest['sources'].get('train', 'a DataFrame')})",
            {t: kinds[t].describe() for t in manifest["tasks"]},
        )
    return tables


def prepare_interactions(ratings, name: str, **options) -> dict:
    """Convert interactions of your own into data/NAME/ and register them (mtlab.data.converters.interactions)."""
    from .converters.interactions import prepare_interactions as convert

    manifest = convert(ratings, name, **options)
    refresh_tables()
    return manifest


def is_table(name: str) -> bool:
    """Whether `name` is a prepared table of one's own (not a built-in dataset)."""
    return name in DATASETS and name not in BUILT_IN


def prepare_table(train, name: str, tasks, **options) -> dict:
    """Convert a table of your own into data/NAME/ and register it (mtlab.data.converters.table)."""
    from .converters.table import prepare_table as convert

    manifest = convert(train, name, tasks, **options)
    refresh_tables()
    return manifest


def load_amazon_folder(seed: int = 0) -> InteractionData:
    """Amazon from the one reviews/ratings file and the one `meta*` file in data/amazon/."""
    folder = data_dir() / "amazon"
    files = sorted(folder.glob("*")) if folder.exists() else []
    meta = [f for f in files if f.name.startswith("meta")]
    reviews = [f for f in files if f not in meta and f.name.endswith((".json", ".json.gz", ".csv", ".csv.gz"))]
    if len(meta) != 1 or len(reviews) != 1:
        raise DataError(
            f"amazon: put exactly one reviews (or ratings-only CSV) file and one meta* file in "
            f"{folder} (found {[f.name for f in files]}), or call "
            "mtlab.data.rec_files.load_amazon(reviews, meta) with their paths"
        )
    return load_amazon(reviews[0], meta[0], seed=seed)


def default_tasks_of(name: str) -> tuple[str, ...]:
    """The tasks `load_dataset(name)` gives when none are named, where known without loading (the
    funnel datasets and synthetic data: ())."""
    if name == "census-income":
        return CENSUS_DEFAULT_TASKS
    if is_table(name):
        return tuple(DATASETS[name][2])
    return ()


def task_kinds_of(name: str, tasks) -> list[str]:
    """The kind of each named task of a registered tabular dataset ("binary", "regression",
    "multiclass"), known before its data are loaded (from Census-Income's task definitions, a prepared
    table's manifest): what the command line and the explorer check models against. Recommendation
    data: [] (their tasks are the recommender's own)."""
    if name in REC_DATASETS:
        return []
    if name == "census-income":
        return [CENSUS_TASKS[t].kind if t in CENSUS_TASKS else "binary" for t in tasks]
    if is_table(name):
        kinds = TABLE_KINDS.get(name, {})
        return [kinds[t].kind if t in kinds else "binary" for t in tasks]
    return ["binary"] * len(list(tasks))


def kind_of(name: str) -> str:
    """The kind of a registered dataset's data (`data.kind` once loaded): "interactions" for the
    recommendation datasets (REC_DATASETS), "tabular" for the others (DATASETS)."""
    return "interactions" if name in REC_DATASETS else "tabular"


def load_rec_dataset(name: str, seed: int = 0) -> InteractionData:
    """A recommendation dataset by name (`REC_DATASETS`)."""
    name = "rec-synthetic" if name == "synthetic" else name  # the tabular "synthetic" is another generator
    if name not in REC_DATASETS:
        refresh_tables()  # prepared by another process since this one started
    if name not in REC_DATASETS:
        raise DataError(f"unknown recommendation dataset {name!r}; available: {', '.join(REC_DATASETS)}")
    return REC_DATASETS[name][0](seed)


def check_rec_tasks(data: InteractionData, tasks) -> tuple[str, ...]:
    """The tasks to train on `data` (default: every one it supports), refused with the allowed ones."""
    supported = data.tasks  # computed once: it reads the ratings
    tasks = distinct_tasks(tasks or supported)
    if any(t not in supported for t in tasks) or not tasks or tasks[0] != "rec":
        raise DataError(
            f"tasks {list(tasks)}: on {data.name} the tasks are 'rec' first, then any of "
            f"{', '.join(t for t in supported if t != 'rec')}"
        )
    return tasks


def open_funnel_data(data_dir=None, country: str = "NL", impressions: int = 20_000, seed: int = 0, quiet: bool = True):
    """Funnel data (tasks ctr, cvr, ctcvr) and a sentence naming their origin. `data_dir`: prepared
    shards (a folder with manifest.json), raw Ali-CCP files (sample_skeleton_*.csv, common_features_*.csv)
    or AliExpress files (AliExpress_<CC>/train.csv, test.csv; `country`), prepared once into data/; None:
    a sample generated in the raw Ali-CCP layout (`impressions`, a planted signal; cached in
    data/generated/)."""
    from pathlib import Path

    from .converters import aliccp, aliexpress
    from .download import data_dir as data_root  # the parameter `data_dir` shadows the function
    from .funnel_shards import load_aliccp, load_aliexpress, load_funnel, load_manifest

    if data_dir is None:
        folder = data_root() / "generated" / f"ali-ccp-{impressions}-seed{seed}"
        if not (folder / "prepared" / "manifest.json").exists():
            aliccp.generate_raw(
                folder / "raw",
                impressions,
                n_users=max(50, impressions // 20),
                n_items=max(20, impressions // 40),
                seed=seed,
            )
        aliccp.prepare(folder / "raw", folder / "prepared", aliccp.PrepareSettings(min_count=2), quiet=quiet)
        return (
            load_funnel(folder / "prepared"),
            f"GENERATED data: {impressions:,} impressions in the raw Ali-CCP "
            f"layout with a planted signal (mtlab.data.converters.aliccp.generate_raw, seed {seed}), not real Ali-CCP",
        )
    path = Path(data_dir)
    if (path / "manifest.json").exists():
        manifest = load_manifest(path)
        return load_funnel(path), f"{manifest.get('name', manifest['dataset'])}, prepared shards in {path}"
    if all((path / name).exists() for pair in aliccp.RAW_FILES.values() for name in pair):
        manifest = aliccp.prepare(path, quiet=quiet)
        return load_aliccp(), f"Ali-CCP from {path} (prepared into {aliccp.prepared_dir()}; {manifest['rows']})"
    try:
        aliexpress.raw_files(path, country)
    except DataError:
        raise DataError(
            f"{path} holds neither prepared shards (manifest.json), nor the raw Ali-CCP files "
            f"({', '.join(n for pair in aliccp.RAW_FILES.values() for n in pair)}), nor AliExpress_"
            f"{country}/train.csv and test.csv; see `python -m mtlab.data prepare --help`"
        ) from None
    manifest = aliexpress.prepare(path, country, quiet=quiet)
    return (
        load_aliexpress(country),
        f"AliExpress {country.upper()} from {path} (prepared into "
        f"{aliexpress.prepared_dir(country)}; {manifest['rows']})",
    )


def load_dataset(name: str, tasks=None, subsample: float | None = None, seed: int = 0, **options):
    """Load a registered dataset by name. `tasks` picks and orders tasks (default: the dataset's).
    A recommendation dataset is returned whole (its tasks are chosen when the model is built)."""
    if name not in DATASETS and name not in REC_DATASETS:
        refresh_tables()  # prepared by another process since this one started
    if name in REC_DATASETS:  # one fixed per-user split; a run's seed varies initialization and sampling
        data = load_rec_dataset(name)
        check_rec_tasks(data, tasks)
        return data
    if name not in DATASETS:
        raise DataError(
            f"unknown dataset {name!r}; available: {', '.join([*DATASETS, *REC_DATASETS])} (a table of your own: "
            "python -m mtlab.data prepare table --name NAME --train FILE --task COLUMN:KIND …)"
        )
    if tasks is not None:
        tasks = distinct_tasks(tasks)
    if is_table(name):
        from .converters.table import load_table

        return load_table(name, tasks, subsample=subsample, seed=seed)
    if name == "census-income":
        data = load_census(tasks=tasks or CENSUS_DEFAULT_TASKS, subsample=subsample, seed=seed, **options)
        return data.check_labels()
    if name == "ali-ccp" or name.startswith("aliexpress-"):
        from .funnel_shards import load_aliccp, load_aliexpress

        data = (
            load_aliccp(tasks=tasks, **options)
            if name == "ali-ccp"
            else load_aliexpress(name.split("-", 1)[1], tasks=tasks, **options)
        )
        if subsample:  # streamed: whole row groups, seeded (MultiTaskData.subsample → StreamedSplit.subsample)
            data = data.subsample(subsample, seed)
        return data.check_labels()
    if tasks:
        options.setdefault("n_tasks", len(tasks))
    data = make_synthetic(seed=seed, **options).subsample(subsample, seed)
    return (data.select_tasks(tasks) if tasks else data).check_labels()


refresh_tables()

__all__ = [
    "BUILT_IN",
    "TaskKind",
    "is_table",
    "prepare_interactions",
    "prepare_table",
    "refresh_tables",
    "Batch",
    "DATASETS",
    "FUNNEL_DATASETS",
    "DataError",
    "FeatureSpec",
    "InteractionData",
    "InteractionSpec",
    "MultiTaskData",
    "REC_DATASETS",
    "REC_TASKS",
    "default_tasks_of",
    "kind_of",
    "task_kinds_of",
    "SOURCES",
    "TabularSplit",
    "check_rec_tasks",
    "load_rec_dataset",
    "data_dir",
    "fetch",
    "load_census",
    "load_dataset",
    "make_synthetic",
    "open_funnel_data",
]
