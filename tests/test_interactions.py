"""Recommendation data (per-user split, MovieLens reader, planted communities) and full-ranking metrics."""

import math

import numpy as np
import pytest
import torch

from mtlab.data import DataError
from mtlab.data.download import accept_own_copy
from mtlab.data.interactions import load_movielens, make_synthetic_interactions, split_per_user
from mtlab.train.ranking import ranking_metrics


def brute_force(scores, targets, exclude, ks):
    """The textbook definitions, one user at a time."""
    out = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg")}
    for u in sorted(set(targets[:, 0].tolist())):
        relevant = {i for uu, i in targets.tolist() if uu == u}
        seen = {i for pairs in exclude for uu, i in pairs.tolist() if uu == u}
        ranked = [i for i in sorted(range(scores.shape[1]), key=lambda i: -scores[u, i].item()) if i not in seen]
        for k in ks:
            top = ranked[:k]
            hits = [1.0 if i in relevant else 0.0 for i in top]
            out[f"recall@{k}"].append(sum(hits) / len(relevant))
            dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
            out[f"ndcg@{k}"].append(dcg / idcg)
    return {name: float(np.mean(v)) for name, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_equal_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    n_users, n_items = 13, 30
    scores = torch.randn(n_users, n_items, generator=gen)
    pairs = torch.stack(
        [torch.randint(n_users, (120,), generator=gen), torch.randint(n_items, (120,), generator=gen)], 1
    )
    pairs = torch.unique(pairs, dim=0)
    pairs = pairs[torch.randperm(len(pairs), generator=gen)]
    train, test = pairs[: len(pairs) // 2], pairs[len(pairs) // 2 :]
    test = test[~(test[:, None, :] == train[None, :, :]).all(-1).any(1)]
    ks = (3, 5, 10)
    ours = ranking_metrics(lambda users: scores[users], n_users, n_items, test, [train], ks, chunk=4)
    expected = brute_force(scores, test, [train], ks)
    for name in expected:
        assert ours[name] == pytest.approx(expected[name], abs=1e-6), name


def test_split_per_user_holds_each_users_items_apart():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), rng.integers(1, 30, 50))
    part = split_per_user(users, seed=3)
    for u in range(50):
        mine = part[users == u]
        n = len(mine)
        if n >= 3:
            assert (mine == 2).sum() == max(1, round(n * 0.1)) and (mine == 1).sum() == max(1, round(n * 0.1))
        else:
            assert (mine == 0).all()
    assert np.array_equal(part, split_per_user(users, seed=3)) and not np.array_equal(
        part, split_per_user(users, seed=4)
    )


def test_no_test_pair_in_training():
    data = make_synthetic_interactions(seed=1)
    train = {tuple(p) for p in data.train.tolist()}
    assert not train & {tuple(p) for p in data.test.tolist()}
    assert not train & {tuple(p) for p in data.valid.tolist()}


def test_planted_communities_carry_signal():
    data = make_synthetic_interactions(n_users=300, n_items=300, seed=0)
    community = data.user_attributes["community"]
    item_community = data.item_categories.argmax(1)
    same = (community[data.train[:, 0]] == item_community[data.train[:, 1]]).float().mean()
    assert same > 0.7  # most interactions stay inside the community
    links_same = (community[data.social[:, 0]] == community[data.social[:, 1]]).float().mean()
    assert links_same > 0.7


def write_atomic(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "\n".join("\t".join(map(str, r)) for r in rows) + "\n")


def test_movielens_reader_on_small_files(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    rng = np.random.default_rng(0)
    inter = [(u, i, int(rng.integers(1, 6)), 0) for u in range(1, 9) for i in range(1, 13) if rng.random() < 0.7]
    write_atomic(folder / "ml-100k.inter", ["user_id:token", "item_id:token", "rating:float", "timestamp:float"], inter)
    write_atomic(
        folder / "ml-100k.user",
        ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"],
        [(u, 20 + u, "MF"[u % 2], "x" if u < 5 else "y", 0) for u in range(1, 9)],
    )
    write_atomic(
        folder / "ml-100k.item",
        ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"],
        [(i, f"m{i}", 1995, "Action Comedy" if i % 2 else "Drama") for i in range(1, 13)],
    )
    accept_own_copy("ml-100k", tmp_path)  # small files of our own, not the published ones
    data = load_movielens("ml-100k", threshold=4, root=tmp_path)
    positives = sum(1 for r in inter if r[2] >= 4)
    assert len(data.train) + len(data.valid) + len(data.test) == positives
    assert (data.n_users, data.n_items) == (8, 12) and data.category_names == ("Action", "Comedy", "Drama")
    genres_per_item = sorted(data.item_categories.sum(1).tolist())
    assert genres_per_item == [1.0] * 6 + [2.0] * 6  # odd items: Action and Comedy; even: Drama
    assert set(data.user_attributes) == {"age", "gender", "occupation"}
    assert data.user_attributes["gender"].tolist().count(0) == 4  # F, M alternate over 8 users
    assert len(data.train_ratings) == len(data.train) and (data.train_ratings >= 4).all()
    with pytest.raises(DataError, match="python -m mtlab.data fetch ml-1m"):
        load_movielens("ml-1m", root=tmp_path)
    with pytest.raises(DataError, match="available: ml-100k, ml-1m"):
        load_movielens("ml-20m", root=tmp_path)


def test_attribute_and_category_scores_are_on_held_out_users_and_items():
    """Attributes and categories that carry no signal (random) can only be memorized: the scores must be
    those of users and items whose labels no training loss saw, so they stay at chance while the training
    users' own attributes are learned by heart (which is what the evaluation reported before)."""
    import numpy as np
    import pandas as pd

    from mtlab.data.interactions import from_ratings
    from mtlab.models import build_model
    from mtlab.train import TrainConfig, evaluator_for, fit

    rng = np.random.default_rng(0)
    n_users, n_items = 300, 200
    pairs = pd.DataFrame({"user": rng.integers(0, n_users, 6000), "item": rng.integers(0, n_items, 6000)})
    pairs = pairs.drop_duplicates().assign(rating=lambda f: rng.integers(1, 6, len(f)).astype(float))
    attribute = torch.from_numpy(rng.integers(0, 4, n_users))
    categories = torch.nn.functional.one_hot(torch.from_numpy(rng.integers(0, 5, n_items)), 5).float()
    data = from_ratings(
        "random-side",
        pairs,
        None,
        0,
        n_users=n_users,
        n_items=n_items,
        user_attributes={"group": attribute},
        item_categories=categories,
    )
    held = data.attribute_split != 0
    assert 0.15 < float(held.float().mean()) < 0.25 and set(data.attribute_split.tolist()) == {0, 1, 2}
    assert len(data.test_ratings) == len(data.test)
    net = build_model("mf", data.spec, ("rec", "attribute", "category", "rating"), dim=32)
    fit(net, data, TrainConfig(epochs=40, lr=0.05, patience=0, quiet=True, device="cpu", batch_size=512))
    test = evaluator_for(data)(net, data, "test")
    trained = (data.attribute_split == 0).nonzero().flatten()
    memorized = float((net.attribute_heads["group"](net.user(trained)).argmax(1) == attribute[trained]).float().mean())
    majority = float(torch.bincount(attribute).max()) / n_users
    assert memorized > majority + 0.2  # the training users' random attributes are learned by heart …
    assert test["attribute"]["heldout_user_accuracy"] < majority + 0.12  # … the held-out ones are not
    assert 0.35 < test["category"]["heldout_item_auc"] < 0.65
    assert set(test["rating"]) == {"rmse", "mae", "rmse_of_training_mean"} and test["rating"]["rmse"] > 0.5
