"""Readers for FilmTrust, Epinions and Amazon files, on small files of the public formats."""

import gzip
import json

import pytest
import torch

from mtlab.data import DataError
from mtlab.data.download import accept_own_copy
from mtlab.data.rec_files import load_amazon, load_epinions, load_filmtrust


def test_filmtrust_orange_tab_files(tmp_path):
    folder = tmp_path / "filmtrust"
    folder.mkdir()
    (folder / "ratings.tab").write_text(
        "user\tmovie\tscore\nc\tc\tc\nrow=1\tcol=1\tclass\n"
        + "".join(f"{u}\t{i}\t{(u + i) % 4 + 0.5}\n" for u in (1, 2, 3) for i in range(1, 6))
        + "1\t1\t4\n"
    )  # rated twice: the last rating counts
    (folder / "trust.tab").write_text(
        "truster\ttrustee\tscore\nc\tc\tc\nrow=1\tcol=1\tclass\n2\t1\t1\n2\t1\t1\n3\t9\t1\n4\t4\t1\n"
    )
    accept_own_copy("filmtrust", tmp_path)  # small files of our own, not the published ones
    data = load_filmtrust(root=tmp_path)
    assert (data.n_users, data.n_items) == (5, 5)  # users 1–3 rated; 4 and 9 only in trust links
    assert len(data.train) + len(data.valid) + len(data.test) == 15
    assert data.social.tolist() == [[1, 0], [2, 4]]  # duplicates and self-links dropped
    assert data.tasks == ("rec", "social", "align", "rating")


def test_filmtrust_missing_names_the_fetch_command(tmp_path):
    with pytest.raises(DataError, match="python -m mtlab.data fetch filmtrust"):
        load_filmtrust(root=tmp_path)


def test_epinions_trustlet_format(tmp_path):
    (tmp_path / "ratings_data.txt").write_text(
        "".join(f"{u} {100 + i} {1 + (u * i) % 5}\n" for u in range(1, 5) for i in range(8))
    )
    (tmp_path / "trust_data.txt").write_text(" 1 2 1\n 2 3 1\n 3 1 -1\n")
    data = load_epinions(tmp_path, threshold=4.0)
    assert data.social.tolist() == [[0, 1], [1, 2]]  # distrust (−1) is not a link
    positives = torch.cat([data.train, data.valid, data.test])
    assert len(positives) == sum((1 + (u * i) % 5) >= 4 for u in range(1, 5) for i in range(8))
    with pytest.raises(DataError, match="trustlet"):
        load_epinions(tmp_path / "nowhere")


def review(user, item, stars):
    return json.dumps({"reviewerID": user, "asin": item, "overall": stars, "reviewText": "…"}) + "\n"


@pytest.mark.parametrize("release", [2014, 2018])
def test_amazon_reviews_and_metadata(tmp_path, release):
    items = [f"B{i:03d}" for i in range(6)]
    if release == 2014:  # reviews as gzipped JSON lines, metadata as Python literals
        reviews = tmp_path / "reviews_Office_5.json.gz"
        with gzip.open(reviews, "wt") as fh:
            fh.writelines(
                review(f"U{u}", item, 5.0 if (u + k) % 3 else 2.0) for u in range(4) for k, item in enumerate(items)
            )
        meta_lines = [
            str(
                {
                    "asin": item,
                    "categories": [["Office", "Paper" if k % 2 else "Pens"]],
                    "related": {"also_viewed": [items[(k + 1) % 6], "ZZZ"]},
                }
            )
            for k, item in enumerate(items)
        ]
    else:  # ratings-only CSV, metadata as JSON
        reviews = tmp_path / "Office_Products.csv"
        reviews.write_text(
            "".join(f"{item},U{u},{5.0 if (u + k) % 3 else 2.0},0\n" for u in range(4) for k, item in enumerate(items))
        )
        meta_lines = [
            json.dumps(
                {
                    "asin": item,
                    "category": ["Office", "Paper" if k % 2 else "Pens"],
                    "also_view": [items[(k + 1) % 6], "ZZZ"],
                }
            )
            for k, item in enumerate(items)
        ]
    meta = tmp_path / "meta_Office.json"
    meta.write_text("\n".join(meta_lines) + "\n")
    data = load_amazon(reviews, meta, threshold=4.0, min_user_interactions=3)
    assert data.n_users == 4 and data.n_items == 6
    assert data.category_names == ("Paper", "Pens")  # "Office" is on every item: no information
    assert data.item_categories.sum(1).tolist() == [1.0] * 6
    assert sorted(map(tuple, data.item_links.tolist())) == [(k, (k + 1) % 6) for k in range(6)]  # unknown asin dropped
    assert data.tasks == ("rec", "coview", "category", "align")  # every positive is 5 stars: no rating task


def test_amazon_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="download a category's reviews"):
        load_amazon(tmp_path / "reviews.json", tmp_path / "meta.json")
