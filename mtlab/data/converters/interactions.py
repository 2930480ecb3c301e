"""Interactions of your own for the recommender (model `mf`): `prepare_interactions` converts a ratings
(or clicks) file and optional side files once into `data/NAME/`; `load_interactions` reads them back as
`InteractionData`, whose tasks are those its files allow (rec, and social, category, attribute, rating,
align).

Files (CSV, CSV.gz or Parquet, with a header):
- ratings: one row per (user, item) interaction, columns named by `user`, `item` (default "user",
  "item"), optionally `rating` (explicit feedback: the `rating` task, and `threshold` keeps the pairs
  rated at least that as positives) and `time` (then each user's latest interactions are validation
  and test, instead of a seeded random share). A pair given twice keeps its latest row (by `time`, else the file's
  last); the repeats are counted in the manifest's `left_out`.
- social: user–user links, the first two columns (user ids as in the ratings file).
- item categories: an item column and a category column, a row per (item, category) pair.
- user attributes: a user column and one column per attribute (each categorical).
Ids of any kind are re-coded to contiguous integers in the manifest's vocabularies; side rows naming
users or items that have no interaction are left out (their count is printed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..download import data_dir
from ..interactions import SIDE_HOLDOUT, InteractionData, from_ratings
from ..tabular import DataError
from .table import NAME, _frame, _line, numbers, run_conversion, stamp_digest

FORMAT = "mtlab-interactions"
VERSION = 3  # 2: the users' and items' ids (users.parquet, items.parquet); 3: files_sha256


def prepare_interactions(
    ratings,
    name: str,
    user: str = "user",
    item: str = "item",
    rating: str | None = None,
    time: str | None = None,
    threshold: float | None = None,
    social=None,
    item_categories=None,
    user_attributes=None,
    out: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    """Convert an interaction file (path or DataFrame) and optional side files into `data/NAME/` (or
    `out`); returns the manifest (`up_to_date` when the same inputs were prepared already). Raises
    DataError naming the file, line and column of bad input."""
    if not NAME.match(name or ""):
        raise DataError(f"--name {name!r}: use letters, digits, '_', '.' or '-' (it becomes the folder data/{name})")
    from .. import BUILT_IN

    if name in BUILT_IN:
        raise DataError(f"--name {name!r} is a built-in dataset; choose another name")
    frames = {"ratings": _frame(ratings, "ratings")}
    for key, source in (("social", social), ("item_categories", item_categories), ("user_attributes", user_attributes)):
        if source is not None:
            frames[key] = _frame(source, key)
    settings = {"user": user, "item": item, "rating": rating, "time": time, "threshold": threshold}
    stamp = {"format": FORMAT, "version": VERSION, "inputs": {k: f[2] for k, f in frames.items()}, "settings": settings}
    folder = Path(out) if out else data_dir() / name
    return run_conversion(
        folder,
        stamp,
        "prepare interactions",
        lambda: _convert({k: f[:2] for k, f in frames.items()}, name, settings, quiet),
        _tables,
    )


def _need(frame: pd.DataFrame, frame_name: str, columns: list[str], flag: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{flag} {', '.join(map(repr, missing))}: no such column in {frame_name}; its columns: "
            f"{', '.join(map(repr, map(str, frame.columns)))}"
        )


def _numbers(frame: pd.DataFrame, frame_name: str, column: str) -> np.ndarray:
    """A rating or time column as floats (`table.numbers`: a non-number or infinite cell refused by its
    line); an interaction needs a value, so an empty cell is refused too."""
    values = numbers(frame[column], frame_name, f"column {column!r}")
    if values.isna().any():
        label = values.index[values.isna().to_numpy().argmax()]
        raise DataError(f"{_line(frame_name, label)}: column {column!r} is empty; every interaction needs a value")
    return values.to_numpy(np.float64)


def _convert(frames: dict, name: str, settings: dict, quiet: bool) -> dict:
    ratings, ratings_name = frames["ratings"]
    ratings.columns = [str(c) for c in ratings.columns]
    wanted = [settings["user"], settings["item"]] + [settings[k] for k in ("rating", "time") if settings[k]]
    flags = ["--user", "--item"] + [f"--{k}" for k in ("rating", "time") if settings[k]]
    for column, flag in zip(wanted, flags):
        _need(ratings, ratings_name, [column], flag)
    empty = ratings[[settings["user"], settings["item"]]].isna().any(axis=1)
    if empty.any():
        i = int(empty.to_numpy().argmax())
        raise DataError(f"{_line(ratings_name, i)}: the user or item id is empty; every interaction needs both")
    frame = pd.DataFrame({"user": ratings[settings["user"]].astype(str), "item": ratings[settings["item"]].astype(str)})
    frame["rating"] = _numbers(ratings, ratings_name, settings["rating"]) if settings["rating"] else 1.0
    frame["time"] = _numbers(ratings, ratings_name, settings["time"]) if settings["time"] else 0.0
    rows = len(frame)
    if settings["time"]:  # a pair given twice keeps its latest row (by time, else the file's last)
        frame = frame.sort_values("time", kind="stable")
    frame = frame.drop_duplicates(["user", "item"], keep="last")
    repeated = rows - len(frame)
    if settings["threshold"] is not None:
        if not settings["rating"]:
            raise DataError("--threshold keeps the pairs rated at least that: give --rating COLUMN too")
        frame = frame[frame["rating"] >= settings["threshold"]]
    if len(frame) < 10:
        raise DataError(f"{ratings_name}: {len(frame)} interactions (after --threshold) are too few to split")
    users, items = sorted(frame["user"].unique()), sorted(frame["item"].unique())
    user_code = pd.Series(np.arange(len(users)), index=users)
    item_code = pd.Series(np.arange(len(items)), index=items)
    arrays = {
        "ratings": pd.DataFrame(
            {
                "user": user_code[frame["user"]].to_numpy(np.int64),
                "item": item_code[frame["item"]].to_numpy(np.int64),
                "rating": frame["rating"].to_numpy(np.float32),
                "time": frame["time"].to_numpy(np.float64),
            }
        ),
        "users": pd.DataFrame({"id": pd.Series(users, dtype=str)}),  # code k: the k-th id (predictions name ids)
        "items": pd.DataFrame({"id": pd.Series(items, dtype=str)}),
    }
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "users": len(users),
        "items": len(items),
        "interactions": len(frame),
        "has_rating": bool(settings["rating"]),
        "time_split": bool(settings["time"]),
        "sources": {k: n for k, (_, n) in frames.items() if not n.startswith("the ")},
    }
    left_out = {"repeated user-item pairs (the latest kept)": repeated}
    if "social" in frames:
        links, links_name = frames["social"]
        if links.shape[1] < 2:
            raise DataError(f"{links_name}: a social file needs two columns (user, user); it has {links.shape[1]}")
        a, b = links.iloc[:, 0].astype(str), links.iloc[:, 1].astype(str)
        known = a.isin(user_code.index) & b.isin(user_code.index)
        left_out["social links"] = int((~known).sum())
        arrays["social"] = pd.DataFrame(
            {"a": user_code[a[known]].to_numpy(np.int64), "b": user_code[b[known]].to_numpy(np.int64)}
        )
    if "item_categories" in frames:
        cats, cats_name = frames["item_categories"]
        if cats.shape[1] < 2:
            raise DataError(f"{cats_name}: an item-categories file needs two columns (item, category)")
        it, category = cats.iloc[:, 0].astype(str), cats.iloc[:, 1]
        known = it.isin(item_code.index) & category.notna()
        left_out["item-category rows"] = int((~known).sum())
        names = sorted(category[known].astype(str).unique())
        if not names:
            raise DataError(f"{cats_name}: no row names an item of the ratings file; check the item ids")
        manifest["category_names"] = names
        arrays["categories"] = pd.DataFrame(
            {
                "item": item_code[it[known]].to_numpy(np.int64),
                "category": pd.Index(names).get_indexer(category[known].astype(str)).astype(np.int64),
            }
        )
    if "user_attributes" in frames:
        attrs, attrs_name = frames["user_attributes"]
        if attrs.shape[1] < 2:
            raise DataError(f"{attrs_name}: a user-attributes file needs a user column and at least one attribute")
        who = attrs.iloc[:, 0].astype(str)
        known = who.isin(user_code.index)
        left_out["user-attribute rows"] = int((~known).sum())
        vocab, table = {}, {"user": user_code[who[known]].to_numpy(np.int64)}
        for column in attrs.columns[1:]:
            values = attrs.loc[known, column].astype(object).where(attrs.loc[known, column].notna(), "(missing)")
            vocab[str(column)] = sorted(values.astype(str).unique())
            table[str(column)] = pd.Index(vocab[str(column)]).get_indexer(values.astype(str)).astype(np.int64)
        manifest["attributes"] = vocab
        arrays["attributes"] = pd.DataFrame(table)
    manifest["left_out"] = left_out
    if not quiet and any(left_out.values()):
        print(f"{name}: left out: {left_out}")
    manifest["tasks"] = list(_tasks(manifest, arrays))
    manifest["arrays"] = arrays
    return manifest


def _tasks(manifest: dict, arrays: dict) -> tuple[str, ...]:
    """The tasks the files allow, in the order InteractionData.tasks gives them."""
    tasks = ["rec"]
    tasks += ["social"] if "social" in arrays else []
    tasks += ["category"] if "categories" in arrays else []
    tasks += ["attribute"] if "attributes" in arrays else []
    tasks.append("align")
    if manifest["has_rating"] and float(np.std(arrays["ratings"]["rating"])) > 0:
        tasks.append("rating")
    return tuple(tasks)


def _tables(arrays: dict) -> dict:
    import pyarrow as pa

    return {f"{key}.parquet": pa.Table.from_pandas(frame, preserve_index=False) for key, frame in arrays.items()}


def load_interactions(name: str, seed: int = 0, root: Path | None = None) -> InteractionData:
    """Prepared interactions as InteractionData: a per-user split (seeded, or by time where the file had
    a time column), side information, and a seeded 20 % of attributes and categories held out."""
    import pyarrow.parquet as pq

    from .table import _manifest_or_none, check_prepared_files

    folder = (root or data_dir()) / name
    manifest = _manifest_or_none(folder, FORMAT)
    if manifest is None:
        raise DataError(
            f"no prepared interactions {name!r} in {folder.parent}; prepare them with "
            f"`python -m mtlab.data prepare interactions --name {name} --ratings FILE …`"
        )
    check_prepared_files(folder, manifest, f"prepare {name} again")

    def read(key: str) -> pd.DataFrame | None:
        path = folder / f"{key}.parquet"
        if key != "ratings" and not path.exists():
            return None
        try:
            return pq.read_table(path).to_pandas()
        except OSError as err:
            raise DataError(f"{path} is missing or damaged ({err}); prepare {name} again") from err

    ratings = read("ratings")
    side = {"n_users": manifest["users"], "n_items": manifest["items"], "source": str(folder)}
    social = read("social")
    if social is not None:
        from ..rec_files import links_tensor

        side["social"] = links_tensor(social["a"].to_numpy(), social["b"].to_numpy())
    categories = read("categories")
    if categories is not None:
        multi_hot = torch.zeros(manifest["items"], len(manifest["category_names"]))
        multi_hot[torch.tensor(categories["item"].to_numpy()), torch.tensor(categories["category"].to_numpy())] = 1
        side["item_categories"], side["category_names"] = multi_hot, tuple(manifest["category_names"])
    attributes = read("attributes")
    if attributes is not None:
        side["user_attributes"] = {}
        for column in manifest["attributes"]:
            codes = np.zeros(manifest["users"], dtype=np.int64)  # a user without a row: the first code
            codes[attributes["user"].to_numpy()] = attributes[column].to_numpy()
            side["user_attributes"][column] = torch.from_numpy(codes)
    frame = ratings[["user", "item", "rating"]]
    order = -ratings["time"].to_numpy() if manifest["time_split"] else None
    for key in ("users", "items"):  # folders prepared before ids were kept have none
        ids = read(key)
        side[f"{key[:-1]}_ids"] = tuple(ids["id"]) if ids is not None else ()
    data = from_ratings(name, frame, None, seed, side_holdout=SIDE_HOLDOUT, order=order, **side)
    data.version = stamp_digest(manifest)
    return data
