"""Resumable result files: rows appended as runs finish, read back under the right column names."""

import pandas as pd

from mtlab.experiments.store import append_rows, done_keys, load_rows


def test_rows_in_another_column_order_are_stored_under_the_files_header(tmp_path):
    path = tmp_path / "runs.csv"
    append_rows(pd.DataFrame({"model": ["a"], "seed": [0], "auc": [0.9]}), path)
    append_rows(pd.DataFrame({"auc": [0.8], "model": ["b"], "seed": [1]}), path)
    stored = load_rows(path)
    assert stored.to_dict("records") == [{"model": "a", "seed": 0, "auc": 0.9}, {"model": "b", "seed": 1, "auc": 0.8}]
    assert done_keys(stored, ["model", "seed"]) == {("a", 0), ("b", 1)}


def test_a_new_column_rewrites_the_file_with_every_column(tmp_path):
    path = tmp_path / "runs.csv"
    append_rows(pd.DataFrame({"model": ["a"], "auc": [0.9]}), path)
    append_rows(pd.DataFrame({"model": ["b"], "auc": [0.8], "seconds": [3.0]}), path)
    stored = load_rows(path)
    assert list(stored.columns) == ["model", "auc", "seconds"]
    assert stored["auc"].tolist() == [0.9, 0.8] and pd.isna(stored["seconds"][0]) and stored["seconds"][1] == 3.0
    assert not (tmp_path / "runs.csv.tmp").exists()


def test_nothing_is_written_without_a_path_or_rows(tmp_path):
    append_rows(pd.DataFrame({"a": [1]}), None)
    append_rows(pd.DataFrame(), tmp_path / "empty.csv")
    assert not (tmp_path / "empty.csv").exists() and load_rows(None).empty
