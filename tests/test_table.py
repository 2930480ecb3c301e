"""A table of your own: `prepare table` / `prepare_table`, `--data NAME`, and each bad input's message."""

import fcntl
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mtlab.data import DataError, load_dataset, prepare_table

TASKS = ["clicked:binary:yes", "dwell time:regression", "genre:multiclass"]


def own_frame(n=1200, seed=0) -> pd.DataFrame:
    """A table as a user might have one: spaces in names, missing values, a user column, a planted signal."""
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    city = rng.choice(["Oslo", "Lima", "Pune"], n)
    frame = pd.DataFrame(
        {
            "user id": rng.integers(0, 150, n).astype(str),
            "x value": x,
            "z": z,
            "city": city,
            "clicked": np.where(x + 0.3 * rng.normal(size=n) > 0, "yes", "no"),
            "dwell time": 30 + 10 * z + rng.normal(size=n),
            "genre": np.where(city == "Oslo", "drama", np.where(x > 0, "comedy", "news")),
        }
    )
    frame.loc[::50, "x value"] = np.nan
    frame.loc[::70, "city"] = None
    frame.loc[::90, "dwell time"] = np.nan  # no label on these rows
    return frame


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLAB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_a_table_round_trips_with_its_encodings_and_kinds(data_root, tmp_path):
    frame = own_frame()
    path = tmp_path / "mine.csv"
    frame.to_csv(path, index=False)
    manifest = prepare_table(path, "mine", TASKS, drop=["user id"], quiet=True)
    assert not manifest["up_to_date"] and manifest["rows"] == {"train": 960, "valid": 120, "test": 120}
    assert manifest["kinds"]["genre"]["classes"][0] in ("comedy", "news", "drama")
    assert "x value (missing)" in manifest["num_names"]  # an indicator beside the imputed value
    assert "(missing)" in manifest["categorical"]["city"]  # a missing category is a category
    data = load_dataset("mine")
    assert data.tasks == ("clicked", "dwell time", "genre")
    assert [k.kind for k in data.kinds] == ["binary", "regression", "multiclass"]
    assert data.features.cat_names == ("city",) and data.features.num_names == ("x value", "x value (missing)", "z")
    kind = data.kinds[1]
    known = frame["dwell time"].dropna()
    assert 25 < kind.mean < 35 and 8 < kind.std < 12 and abs(kind.mean - known.mean()) < 2
    assert int(data.train.labels[:, 1].isnan().sum()) > 0  # no label stays no label
    again = prepare_table(path, "mine", TASKS, drop=["user id"], quiet=True)
    assert again["up_to_date"]


def test_unseen_categories_get_the_unknown_code_and_groups_stay_in_one_split(data_root, tmp_path):
    frame = own_frame()
    train, test = frame.iloc[:1000].copy(), frame.iloc[1000:].copy()
    test.loc[test.index[:5], "city"] = "Quito"  # never in training
    train.to_parquet(tmp_path / "train.parquet")
    test.to_parquet(tmp_path / "test.parquet")
    prepare_table(
        tmp_path / "train.parquet", "grouped", TASKS, test=tmp_path / "test.parquet", group="user id", quiet=True
    )
    data = load_dataset("grouped")
    assert (data.test.cat[:5, 0] == 0).all()
    # grouped hold-out: no user in both train and valid
    from mtlab.data.converters.table import _split

    frames = _split(
        {"train": (train.reset_index(drop=True), "t")}, {"seed": 0, "group": "user id", "valid_fraction": 0.1}
    )
    users = {s: set(f[0]["user id"]) for s, f in frames.items()}
    assert not users["train"] & users["valid"] and not users["train"] & users["test"]


def test_bad_inputs_are_named_with_file_line_and_column(data_root, tmp_path):
    frame = own_frame(300)
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"--task 'clickd': no such column in .*bad.csv; its columns: 'user id'"):
        prepare_table(path, "t", ["clickd:binary:yes"])
    with pytest.raises(
        DataError, match=r"the positive value 'Yes' never occurs .*did you mean 'yes'\? its values: 'no' \(\d+\), 'yes'"
    ):
        prepare_table(path, "t", ["clicked:binary:Yes"])
    with pytest.raises(DataError, match=r"say which value is positive"):
        prepare_table(path, "t", ["clicked:binary"])
    with pytest.raises(DataError, match=r"bad.csv, line 2: regression task 'genre' holds '\w+', not a number"):
        prepare_table(path, "t", ["genre:regression"])
    one = frame.assign(genre="drama")
    with pytest.raises(DataError, match=r"multiclass task 'genre' has one class only"):
        prepare_table(one, "t", ["genre:multiclass"])
    other = tmp_path / "other.csv"
    frame.drop(columns=["z"]).to_csv(other, index=False)
    with pytest.raises(DataError, match=r"other.csv has other columns than .*bad.csv: missing \['z'\]"):
        prepare_table(path, "t", TASKS, test=other)
    with pytest.raises(DataError, match=r"KIND one of binary, regression, multiclass"):
        prepare_table(path, "t", ["genre:categorical"])
    with pytest.raises(DataError, match=r"is a built-in dataset"):
        prepare_table(path, "census-income", TASKS)
    broken = tmp_path / "broken.csv"
    broken.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match=r"broken.csv is not a readable CSV file"):
        prepare_table(broken, "t", ["a:regression"])


def test_never_replaces_a_folder_it_did_not_write_and_a_second_writer_stops(data_root, tmp_path):
    frame = own_frame(300)
    mine = data_root / "mine"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("the user's own")
    with pytest.raises(DataError, match=r"was not written by `prepare table`"):
        prepare_table(frame, "mine", TASKS)
    assert (mine / "notes.txt").read_text() == "the user's own"
    with open(data_root / ".other.lock", "w") as held:  # another process preparing "other"
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DataError, match=r"another process is preparing .*other now"):
            prepare_table(frame, "other", TASKS)
    assert not (data_root / "other").exists()


def test_prepare_then_train_from_the_command_line(data_root, tmp_path):
    path = tmp_path / "mine.csv"
    own_frame(1500).to_csv(path, index=False)
    env = {"MTLAB_DATA_DIR": str(data_root), "PATH": "/usr/bin:/bin"}
    args = [sys.executable, "-m", "mtlab.data", "prepare", "table", "--name", "mine", "--train", str(path)]
    args += [a for t in TASKS for a in ("--task", t)] + ["--drop", "user id"]
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "task 'genre': multiclass" in done.stdout and "python -m mtlab train --data mine" in done.stdout
    out = tmp_path / "out.json"
    train = [sys.executable, "-m", "mtlab", "train", "--data", "mine", "--model", "mmoe", "--tasks"]
    train += ["clicked,dwell time,genre", "--profile", "full", "--epochs", "3", "--device", "cpu", "--quiet"]
    done = subprocess.run([*train, "--json", str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    test = json.loads(out.read_text())["test"]
    assert set(test["clicked"]) >= {"auc", "logloss"} and set(test["dwell time"]) >= {"rmse", "mae"}
    assert set(test["genre"]) >= {"accuracy", "macro_f1", "logloss"}
    assert test["clicked"]["auc"] > 0.8
