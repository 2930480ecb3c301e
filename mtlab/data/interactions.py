"""Recommendation data as tensors: implicit user–item interactions with a per-user split, and the
side information that auxiliary tasks learn from (item categories, user attributes, ratings,
social links). MovieLens-100K and -1M (GroupLens; fetched from registry packages, never committed)
and a synthetic generator with planted communities.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from .download import read_checked, require_files
from .tabular import DataError


@dataclass(frozen=True)
class InteractionSpec:
    """What a recommender needs to know about its data to be built: sizes, no data."""

    n_users: int
    n_items: int
    n_categories: int = 0
    attribute_sizes: tuple[tuple[str, int], ...] = ()  # (attribute, number of codes)


@dataclass
class InteractionData:
    """Implicit feedback as (user, item) index pairs per split, plus side information."""

    kind: ClassVar[str] = "interactions"  # (user, item) pairs ranked against every item (vs "tabular")
    streamed: ClassVar[bool] = False  # pairs are held in memory
    name: str
    n_users: int
    n_items: int
    train: torch.Tensor  # [N, 2] long: (user, item)
    valid: torch.Tensor
    test: torch.Tensor
    train_ratings: torch.Tensor | None = None  # [N] explicit rating of each training pair
    item_categories: torch.Tensor | None = None  # [n_items, C] multi-hot
    category_names: tuple[str, ...] = ()
    user_attributes: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [n_users] codes
    social: torch.Tensor | None = None  # [E, 2] long user–user links
    item_links: torch.Tensor | None = None  # [E, 2] long item–item links (e.g. also-viewed)
    source: str = ""
    version: str = ""  # a prepared table's or interaction log's conversion (its manifest stamp's digest)
    # held-out side information (`holdout_side`): 0 = trains, 1 = scored in validation, 2 = in test. A
    # held-out user's attributes and a held-out item's categories are in no training loss, so the
    # `attribute` and `category` scores are those of users and items whose labels the model never saw
    attribute_split: torch.Tensor | None = None  # [n_users] int8
    category_split: torch.Tensor | None = None  # [n_items] int8
    valid_ratings: torch.Tensor | None = None  # [N_valid] explicit rating of each validation pair
    test_ratings: torch.Tensor | None = None  # [N_test]
    # the raw ids (as text) of users 0 … n_users − 1 and items 0 … n_items − 1: what a saved model's
    # predictions name (empty where a loader has none)
    user_ids: tuple[str, ...] = ()
    item_ids: tuple[str, ...] = ()

    def to(self, device) -> InteractionData:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(
            self,
            train=move(self.train),
            valid=move(self.valid),
            test=move(self.test),
            train_ratings=move(self.train_ratings),
            item_categories=move(self.item_categories),
            user_attributes={k: v.to(device) for k, v in self.user_attributes.items()},
            social=move(self.social),
            item_links=move(self.item_links),
            attribute_split=move(self.attribute_split),
            category_split=move(self.category_split),
            valid_ratings=move(self.valid_ratings),
            test_ratings=move(self.test_ratings),
        )

    def training_side(self, kind: str, ids: torch.Tensor) -> torch.Tensor:
        """Which of the given user (kind "attribute") or item ("category") ids may train that task: a
        bool mask, False for the held-out ones (all True where nothing is held out)."""
        split = self.attribute_split if kind == "attribute" else self.category_split
        return torch.ones_like(ids, dtype=torch.bool) if split is None else split[ids] == 0

    @property
    def spec(self) -> InteractionSpec:
        return InteractionSpec(
            self.n_users,
            self.n_items,
            self.item_categories.shape[1] if self.item_categories is not None else 0,
            tuple((k, int(v.max()) + 1) for k, v in self.user_attributes.items()),
        )

    @property
    def tasks(self) -> tuple[str, ...]:
        """rec first, then every auxiliary task the data support (the default task set)."""
        tasks = ["rec"]
        tasks += ["social"] if self.social is not None else []
        tasks += ["coview"] if self.item_links is not None else []
        tasks += ["category"] if self.item_categories is not None and self.item_categories.shape[1] else []
        tasks += ["attribute"] if self.user_attributes else []
        tasks.append("align")
        if self.train_ratings is not None and float(self.train_ratings.std()) > 0:
            tasks.append("rating")
        return tuple(tasks)

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "valid", "test"):
            raise DataError(f"unknown split {name!r}; use one of 'train', 'valid', 'test'")
        return getattr(self, name)


def split_per_user(
    users: np.ndarray,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    order: np.ndarray | None = None,
) -> np.ndarray:
    """Assign every interaction to 0 = train, 1 = valid, 2 = test, separately for each user and at
    random: a user with n interactions gives round(n·test_fraction) (at least 1 when n ≥ 3) to test,
    as many by valid_fraction to validation, and the rest to training. Vectorized (no user loop).
    `order` [N]: a key per interaction instead of the random one, smallest first into test (e.g. minus
    the time: each user's latest interactions are test, the ones before them validation)."""
    rng = np.random.default_rng(seed)
    key = rng.random(len(users)) if order is None else np.asarray(order)
    order = np.lexsort((key, users))  # by user, then by the key within a user
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)  # position within the user's shuffled list
    n = np.repeat(counts, counts)
    enough = n >= 3
    n_test = np.where(enough, np.maximum(1, np.round(n * test_fraction)), 0)
    n_valid = np.where(enough, np.maximum(1, np.round(n * valid_fraction)), 0)
    part_sorted = np.where(rank < n_test, 2, np.where(rank < n_test + n_valid, 1, 0))
    part = np.empty_like(part_sorted)
    part[order] = part_sorted
    return part


SIDE_HOLDOUT = 0.2  # the share of users' attributes and items' categories held out of training


def holdout_side(n: int, fraction: float, seed: int) -> torch.Tensor:
    """[n] int8: a seeded `fraction` of the n users (or items) held out, half scored in validation (1),
    half in test (2); the rest (0) train. E.g. n = 943 users, 0.2: 94 in validation, 95 in test."""
    order = np.random.default_rng(seed).permutation(n)
    split = np.zeros(n, dtype=np.int8)
    held = int(round(n * fraction))
    split[order[: held // 2]] = 1
    split[order[held // 2 : held]] = 2
    return torch.from_numpy(split)


def from_ratings(
    name: str,
    frame: pd.DataFrame,
    threshold: float | None,
    seed: int,
    side_holdout: float = SIDE_HOLDOUT,
    order: np.ndarray | None = None,
    **side,
) -> InteractionData:
    """frame: user, item (contiguous codes), rating. Pairs rated ≥ threshold are positives
    (None: every rated pair); split per user (`order`: see `split_per_user`). `side_holdout` of the
    users' attributes and of the items' categories (where the data have them) are held out of training
    and scored (`holdout_side`)."""
    if threshold is not None:
        keep = (frame["rating"] >= threshold).to_numpy()
        frame, order = frame[keep], None if order is None else np.asarray(order)[keep]
    users, items = frame["user"].to_numpy(), frame["item"].to_numpy()
    part = split_per_user(users, seed=seed, order=order)
    pairs = torch.from_numpy(np.stack([users, items], 1).astype(np.int64))
    take = lambda p: pairs[torch.from_numpy(part == p)]  # noqa: E731
    ratings = frame["rating"].to_numpy(np.float32)
    if side.get("user_attributes"):
        side["attribute_split"] = holdout_side(side["n_users"], side_holdout, seed + 1)
    if side.get("item_categories") is not None:
        side["category_split"] = holdout_side(side["n_items"], side_holdout, seed + 2)
    return InteractionData(
        name=name,
        train=take(0),
        valid=take(1),
        test=take(2),
        train_ratings=torch.from_numpy(ratings[part == 0]),
        valid_ratings=torch.from_numpy(ratings[part == 1]),
        test_ratings=torch.from_numpy(ratings[part == 2]),
        **side,
    )


def read_atomic(path: Path, dataset: str) -> pd.DataFrame:
    """A RecBole atomic file (tab-separated, typed header like `user_id:token`); a malformed row is
    refused naming the file and line (`:float` columns must hold numbers)."""
    header = pd.read_csv(path, sep="\t", nrows=0).columns
    numeric = [c for c in header if c.endswith(":float")]
    frame = read_checked(
        path,
        f"repair it with `python -m mtlab.data fetch {dataset} --force`",
        numeric,
        first_data_line=2,
        sep="\t",
        dtype=str,
        keep_default_na=False,
    )
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


MOVIELENS = {
    "ml-100k": ("ml-100k.inter", "ml-100k.user", "ml-100k.item", "class"),
    "ml-1m": ("ml-1m.inter", "ml-1m.user", "ml-1m.item", "genre"),
}


def load_movielens(
    name: str = "ml-100k", threshold: float | None = 4.0, seed: int = 0, root: Path | None = None
) -> InteractionData:
    """MovieLens with implicit feedback (rating ≥ threshold), a per-user split, item genres
    (multi-hot), user attributes (age, gender, occupation codes) and the training ratings."""
    if name not in MOVIELENS:
        raise DataError(f"unknown MovieLens version {name!r}; available: {', '.join(MOVIELENS)}")
    inter_file, user_file, item_file, genre_column = MOVIELENS[name]
    paths = require_files(name, root)
    inter, users, items = (read_atomic(paths[f], name) for f in (inter_file, user_file, item_file))
    user_codes = {u: i for i, u in enumerate(sorted(set(inter["user_id"]) | set(users["user_id"])))}
    item_codes = {v: i for i, v in enumerate(sorted(set(inter["item_id"]) | set(items["item_id"])))}
    frame = pd.DataFrame(
        {
            "user": inter["user_id"].map(user_codes),
            "item": inter["item_id"].map(item_codes),
            "rating": inter["rating"].astype(float),
        }
    )
    genres = items.assign(genre=items[genre_column].str.split(" ")).explode("genre")
    genres = genres[genres["genre"].fillna("") != ""]
    names = tuple(sorted(genres["genre"].unique()))
    categories = torch.zeros(len(item_codes), len(names))
    categories[
        torch.tensor(genres["item_id"].map(item_codes).to_numpy(np.int64)),
        torch.tensor(genres["genre"].map({g: i for i, g in enumerate(names)}).to_numpy(np.int64)),
    ] = 1.0
    order = users["user_id"].map(user_codes).to_numpy()
    attributes = {}
    for column in ("age", "gender", "occupation"):
        codes = np.zeros(len(user_codes), dtype=np.int64)
        codes[order] = pd.factorize(users[column], sort=True)[0]
        attributes[column] = torch.from_numpy(codes)
    return from_ratings(
        name,
        frame,
        threshold,
        seed,
        n_users=len(user_codes),
        n_items=len(item_codes),
        user_ids=tuple(map(str, user_codes)),
        item_ids=tuple(map(str, item_codes)),
        item_categories=categories,
        category_names=names,
        user_attributes=attributes,
        source=str(paths[inter_file].parent),
    )


def make_synthetic_interactions(
    n_users: int = 500,
    n_items: int = 400,
    n_communities: int = 5,
    p_in: float = 0.08,
    p_out: float = 0.005,
    social_in: float = 0.04,
    social_out: float = 0.001,
    category_noise: float = 0.1,
    seed: int = 0,
) -> InteractionData:
    """Users and items in planted communities: a user likes an item of their own community with
    probability p_in, another with p_out; two users of one community are linked with probability
    social_in (else social_out); an item's category is its community (replaced by a random one with
    probability category_noise). Auxiliary tasks thus carry real signal about the main task."""
    gen = torch.Generator().manual_seed(seed)
    user_comm = torch.randint(n_communities, (n_users,), generator=gen)
    item_comm = torch.randint(n_communities, (n_items,), generator=gen)
    same = user_comm[:, None] == item_comm[None, :]
    likes = torch.rand(n_users, n_items, generator=gen) < torch.where(same, p_in, p_out)
    pairs = likes.nonzero()
    friends = torch.rand(n_users, n_users, generator=gen) < torch.where(
        user_comm[:, None] == user_comm[None, :], social_in, social_out
    )
    social = torch.triu(friends, diagonal=1).nonzero()
    noisy = torch.rand(n_items, generator=gen) < category_noise
    category = torch.where(noisy, torch.randint(n_communities, (n_items,), generator=gen), item_comm)
    frame = pd.DataFrame({"user": pairs[:, 0].numpy(), "item": pairs[:, 1].numpy(), "rating": 5.0})
    return from_ratings(
        f"synthetic-interactions(seed={seed})",
        frame,
        None,
        seed,
        n_users=n_users,
        n_items=n_items,
        item_categories=torch.nn.functional.one_hot(category, n_communities).float(),
        category_names=tuple(f"c{c}" for c in range(n_communities)),
        user_attributes={"community": user_comm},
        social=social,
        source="mtlab.data.interactions",
        user_ids=tuple(map(str, range(n_users))),
        item_ids=tuple(map(str, range(n_items))),
    )
