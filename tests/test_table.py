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
    with pytest.raises(DataError, match=r"bad.csv, line \d+: regression task 'genre' holds '\w+', not a number"):
        prepare_table(path, "t", ["genre:regression"])
    one_bad = frame.assign(z=frame["z"].astype(object))
    one_bad.loc[250, "z"] = "oops"  # line 252 of the file, wherever the held-out rows fall
    one_bad.to_csv(tmp_path / "one_bad.csv", index=False)
    with pytest.raises(DataError, match=r"one_bad.csv, line 252: --numeric column 'z' holds 'oops', not a number"):
        prepare_table(tmp_path / "one_bad.csv", "t", ["clicked:binary:yes"], numeric=["z", "x value"], drop=["user id"])
    one = frame.assign(genre="drama")
    with pytest.raises(DataError, match=r"multiclass task 'genre' has one class only"):
        prepare_table(one, "t", ["genre:multiclass"])
    other = tmp_path / "other.csv"
    frame.drop(columns=["z"]).to_csv(other, index=False)
    with pytest.raises(DataError, match=r"other.csv lacks the column\(s\) \['z'\] of .*bad.csv"):
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


def own_interactions(tmp_path, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    ratings = pd.DataFrame(
        {
            "user id": "u" + pd.Series(rng.integers(0, 120, n)).astype(str),
            "movie": "m" + pd.Series(rng.integers(0, 90, n)).astype(str),
            "stars": rng.integers(1, 6, n),
            "when": rng.permutation(n),
        }
    )
    ratings.to_csv(tmp_path / "ratings.csv", index=False)
    links = pd.DataFrame({"from": "u" + pd.Series(rng.integers(0, 130, 300)).astype(str), "to": "u1"})
    links.to_csv(tmp_path / "friends.csv", index=False)
    genres = pd.DataFrame({"movie": [f"m{i}" for i in range(90)], "genre": rng.choice(["drama", "news"], 90)})
    genres.to_parquet(tmp_path / "genres.parquet")
    people = pd.DataFrame({"user": [f"u{i}" for i in range(120)], "age": rng.choice(["young", "old"], 120)})
    people.to_csv(tmp_path / "people.csv", index=False)
    return ratings


def test_interactions_of_your_own_train_the_recommender(data_root, tmp_path):
    from mtlab.data import load_rec_dataset, prepare_interactions

    ratings = own_interactions(tmp_path)
    manifest = prepare_interactions(
        tmp_path / "ratings.csv",
        "mylog",
        user="user id",
        item="movie",
        rating="stars",
        time="when",
        social=tmp_path / "friends.csv",
        item_categories=tmp_path / "genres.parquet",
        user_attributes=tmp_path / "people.csv",
        quiet=True,
    )
    assert manifest["tasks"] == ["rec", "social", "category", "attribute", "align", "rating"]
    assert manifest["left_out"]["social links"] > 0  # links naming users without interactions
    data = load_rec_dataset("mylog")
    assert data.tasks == tuple(manifest["tasks"]) and data.n_users == ratings["user id"].nunique()
    # by time: every user's test interactions are their latest
    when = ratings.drop_duplicates(["user id", "movie"], keep="last")
    assert len(data.train) + len(data.valid) + len(data.test) == len(when)
    assert len(data.test_ratings) == len(data.test) and data.attribute_split is not None
    assert prepare_interactions(
        tmp_path / "ratings.csv", "mylog", user="user id", item="movie", rating="stars", time="when",
        social=tmp_path / "friends.csv", item_categories=tmp_path / "genres.parquet",
        user_attributes=tmp_path / "people.csv", quiet=True,
    )["up_to_date"]  # fmt: skip
    env = {"MTLAB_DATA_DIR": str(data_root), "PATH": "/usr/bin:/bin"}
    out = tmp_path / "rec.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mtlab",
            "train",
            "--data",
            "mylog",
            "--model",
            "mf",
            "--tasks",
            "rec,category,attribute,rating",
        ]
        + ["--epochs", "2", "--device", "cpu", "--quiet", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    test = json.loads(out.read_text())["test"]
    assert {"heldout_item_auc"} == set(test["category"]) and {"heldout_user_accuracy"} == set(test["attribute"])
    assert {"rmse", "mae", "rmse_of_training_mean"} == set(test["rating"])


def test_interactions_by_time_put_each_users_latest_in_test():
    from mtlab.data.interactions import split_per_user

    users = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    time = np.array([5, 1, 9, 3, 7, 2, 8, 4])
    part = split_per_user(users, 0.2, 0.2, order=-time)
    assert part[2] == 2 and part[4] == 1 and part[6] == 2 and part[7] == 1  # latest → test, next → valid


def test_bad_interaction_files_are_named(data_root, tmp_path):
    from mtlab.data import prepare_interactions

    own_interactions(tmp_path)
    with pytest.raises(DataError, match=r"--user 'user': no such column in .*ratings.csv; its columns: 'user id'"):
        prepare_interactions(tmp_path / "ratings.csv", "x")
    broken = pd.read_csv(tmp_path / "ratings.csv")
    broken["stars"] = broken["stars"].astype(str)
    broken.loc[3, "stars"] = "five"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(DataError, match=r"broken.csv, line 5: column 'stars' holds 'five', not a number"):
        prepare_interactions(tmp_path / "broken.csv", "x", user="user id", item="movie", rating="stars")
    with pytest.raises(DataError, match=r"--threshold .* give --rating"):
        prepare_interactions(tmp_path / "ratings.csv", "x", user="user id", item="movie", threshold=4)


def test_a_table_of_your_own_gets_the_strategy_leaderboard_and_its_sweep(data_root):
    from mtlab.experiments import get_profile
    from mtlab.experiments.gradient_lab import leaderboard, leaderboard_table
    from mtlab.experiments.sweep import plan

    prepare_table(own_frame(900), "mine", TASKS, drop=["user id"], quiet=True)
    profile = get_profile("quick", seeds=[0, 1], device="cpu")
    jobs = plan(["lab_data"], profile, data="mine")
    assert len(jobs) == 28 and all(
        j.key.startswith("mine-") for j in jobs
    )  # every strategy but PMTRec, and Single Task
    with pytest.raises(ValueError, match="give --data NAME"):
        plan(["lab_data"], profile)
    runs = leaderboard("mine", profile, ["single_task", "ew", "uw"])
    table = leaderboard_table(runs).set_index("strategy")
    assert {"auc clicked", "rmse dwell time", "accuracy genre"} <= set(table.columns)
    assert table.loc["single_task", "Δm % (mean ± std)"].startswith("+0.00 ± ")  # the baseline against itself


def test_a_semicolon_or_tab_separated_file_with_a_byte_order_mark_reads_alike(data_root, tmp_path):
    frame = own_frame(400)
    for name, sep in (("semi", ";"), ("tabs", "\t")):
        path = tmp_path / f"{name}.csv"
        path.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False, sep=sep).encode())
        manifest = prepare_table(path, name, TASKS, drop=["user id"], quiet=True)
        assert manifest["tasks"] == ["clicked", "dwell time", "genre"] and manifest["rows"]["train"] == 320


def test_quirks_of_real_files(data_root, tmp_path):
    """A whole-number column read as floats in one file and integers in another keeps its categories and
    classes; "NA" is a value in a text column and missing in a number column; a class seen only in the
    test file is scored; files of the user's in a prepared folder are never removed; columns in another
    order; duplicate or reserved names and infinite targets are refused."""
    rng = np.random.default_rng(0)

    def part(n):
        return pd.DataFrame(
            {
                "x": pd.array(rng.integers(0, 5, n), dtype="Int64"),
                "z": rng.normal(size=n),
                "k": pd.array(rng.integers(0, 3, n), dtype="Int64"),
                "region": rng.choice(["NA", "EU", "AS"], n),
                "w": rng.choice(["NA", "1.5", "2", "3", "4"], n),
            }
        )

    train, test = part(400), part(200)
    train.loc[0, "x"] = pd.NA  # floats in this file, integers in the test file
    train.loc[1, "k"] = pd.NA
    test.loc[:9, "region"] = "OC"  # a class of the test file alone
    train.to_csv(tmp_path / "train.csv", index=False)
    test[["region", "z", "x", "k", "w"]].to_csv(tmp_path / "test.csv", index=False)  # other column order
    manifest = prepare_table(
        tmp_path / "train.csv", "quirks", ["k:multiclass", "region:multiclass"], test=tmp_path / "test.csv",
        numeric=["z", "w"], quiet=True,
    )  # fmt: skip
    assert set(manifest["kinds"]["k"]["classes"]) == {"0", "1", "2"}
    assert manifest["kinds"]["region"]["classes"][-1] == "OC" and "NA" in manifest["kinds"]["region"]["classes"]
    assert "w (missing)" in manifest["num_names"]  # "NA" in a number column: missing
    data = load_dataset("quirks")
    assert (data.test.cat[:, 0] > 0).all()  # every test value of x is a known category
    assert not data.test.labels.isnan().any()  # every test label is scored, "OC" included
    (data_root / "quirks" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"holds files `prepare table` did not write \(notes.txt\)"):
        prepare_table(tmp_path / "train.csv", "quirks", ["k:multiclass"], test=tmp_path / "test.csv", quiet=True)
    assert (data_root / "quirks" / "notes.txt").exists()
    with pytest.raises(DataError, match=r"a task named 'mean'"):
        prepare_table(train.rename(columns={"z": "mean"}), "m", ["mean:regression"], quiet=True)
    with pytest.raises(DataError, match=r"line 4: regression task 'z' holds 'inf', not a finite number"):
        prepare_table(train.assign(z=[1.0, 2.0, np.inf, *range(397)]).to_csv(tmp_path / "inf.csv", index=False) or tmp_path / "inf.csv", "i", ["z:regression"], quiet=True)  # fmt: skip
    (tmp_path / "dup.csv").write_text("a,a,y\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError, match=r"has the column\(s\) \['a'\] twice"):
        prepare_table(tmp_path / "dup.csv", "d", ["y:binary"], quiet=True)


def test_a_checkpoint_of_a_table_prepared_again_is_not_resumed(data_root, tmp_path):
    from mtlab.experiments import get_profile, train_one

    frame = own_frame(600)
    profile = get_profile("quick", seeds=[0], device="cpu", subsample=1.0)
    prepare_table(frame, "mine", TASKS, drop=["user id"], quiet=True)
    checkpoint = tmp_path / "run.pt"
    train_one("mmoe", load_dataset("mine"), profile, 0, checkpoint=checkpoint, epochs=1, quiet=True)
    prepare_table(frame, "mine", TASKS, drop=["user id"], seed=5, quiet=True)  # another split, other statistics
    with pytest.raises(ValueError, match="data_version"):
        train_one("mmoe", load_dataset("mine"), profile, 0, checkpoint=checkpoint, resume=True, epochs=2, quiet=True)


def test_labels_and_categories_are_read_alike_in_every_file(data_root, tmp_path):
    rng = np.random.default_rng(1)
    n = 200
    train = pd.DataFrame({"x": rng.normal(size=n), "s": rng.choice(["a", "b"], n), "lab": rng.choice(["yes", "no"], n)})
    train["tf"] = rng.random(n) > 0.5
    test = train.copy()
    test["s"] = " " + test["s"] + " "  # surrounding spaces
    test["lab"] = test["lab"].str.capitalize()  # Yes / No
    test["tf"] = test["tf"].map({True: "true", False: "false"}).astype(object)
    test.loc[0, "tf"] = "unknown"  # read as text in this file, as booleans in the training file
    train.to_csv(tmp_path / "tr.csv", index=False)
    test.to_csv(tmp_path / "te.csv", index=False)
    with pytest.raises(DataError, match=r"te.csv, line 2: binary task 'tf' holds 'unknown', which its training rows"):
        prepare_table(
            tmp_path / "tr.csv", "alike", ["lab:binary:yes", "tf:binary"], test=tmp_path / "te.csv", quiet=True
        )
    test.loc[0, "tf"] = None
    test.to_csv(tmp_path / "te.csv", index=False)
    prepare_table(tmp_path / "tr.csv", "alike", ["lab:binary:yes", "tf:binary"], test=tmp_path / "te.csv", quiet=True)
    data = load_dataset("alike")
    assert (data.test.cat[:, 0] > 0).all()  # " a " is "a"
    expected = np.stack([(train["lab"] == "yes").to_numpy(float), train["tf"].to_numpy(float)], 1)
    expected[0, 1] = np.nan
    assert np.array_equal(data.test.labels.numpy(), expected.astype(np.float32), equal_nan=True)


def test_repeated_pairs_keep_the_latest_rating_and_are_counted(data_root, tmp_path):
    from mtlab.data import prepare_interactions

    rng = np.random.default_rng(2)
    ratings = pd.DataFrame(
        {"user": rng.integers(0, 30, 400), "item": rng.integers(0, 20, 400), "r": 1.0, "t": np.arange(400)}
    )
    ratings.loc[len(ratings)] = [0, 0, 5.0, 1000]  # the latest rating of (0, 0), written first in the file
    ratings.loc[len(ratings)] = [0, 0, 2.0, -1]
    ratings = pd.concat([ratings.iloc[-2:], ratings.iloc[:-2]])
    ratings.to_csv(tmp_path / "r.csv", index=False)
    manifest = prepare_interactions(tmp_path / "r.csv", "rep", rating="r", time="t", quiet=True)
    pairs = ratings.drop_duplicates(["user", "item"])
    assert manifest["interactions"] == len(pairs)
    assert manifest["left_out"]["repeated user-item pairs (the latest kept)"] == len(ratings) - len(pairs)
    stored = pd.read_parquet(data_root / "rep" / "ratings.parquet")
    assert stored.loc[stored["time"] == 1000, "rating"].tolist() == [5.0]
