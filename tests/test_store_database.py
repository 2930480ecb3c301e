"""The sweep's runs database (store.RunsDatabase, store.Shelf) and the duplicate checks of results CSVs:
no run is ever stored twice, whoever writes (issue: two sweeps into one --out stored every seed twice)."""

import multiprocessing
import sqlite3

import pandas as pd
import pytest

from mtlab.experiments.store import (
    ResultsFileError,
    ResultsStore,
    RunsDatabase,
    Shelf,
    append_rows,
    companion,
    load_rows,
)


def _rows(model, seed, auc):
    return [{"model": model, "seed": seed, "task": t, "auc": auc} for t in ("income", "marital")]


def test_a_shelf_stores_runs_and_resumes_from_them(tmp_path):
    shelf = Shelf(tmp_path / "runs.sqlite", "table2", "quick-abc", "mmoe-0_1")
    store = ResultsStore(shelf, ["model", "seed"])
    assert store.pending(("mmoe",), [0, 1]) == [0, 1]
    store.add(_rows("mmoe", 0, 0.25))
    again = ResultsStore(shelf, ["model", "seed"])
    assert again.pending(("mmoe",), [0, 1]) == [1]
    frame = again.frame(model=["mmoe"])
    assert frame.to_dict("records") == _rows("mmoe", 0, 0.25)
    assert RunsDatabase(shelf.db).rows("table2", "other-tag").empty  # tags never mix
    assert companion(shelf, "history") == Shelf(shelf.db, "table2.history", "quick-abc", "mmoe-0_1")
    assert companion(tmp_path / "t.csv", "history") == tmp_path / "t.history.csv" and companion(None, "x") is None


def test_floats_round_trip_exactly(tmp_path):
    shelf = Shelf(tmp_path / "runs.sqlite", "grid", "t", "j")
    value = 0.1 + 0.2  # 0.30000000000000004: 17 significant digits
    ResultsStore(shelf, ["alpha", "seed"]).add([{"alpha": 0.1, "seed": 0, "auc": value, "n": float("nan")}])
    row = RunsDatabase(shelf.db).rows("grid").iloc[0]
    assert row["auc"] == value and row["alpha"] == 0.1 and pd.isna(row["n"])


def test_a_run_stored_by_another_writer_is_kept_once(tmp_path):
    db = tmp_path / "runs.sqlite"
    first = ResultsStore(Shelf(db, "t", "tag", "job-a"), ["model", "seed"])
    second = ResultsStore(Shelf(db, "t", "tag", "job-b"), ["model", "seed"])  # opened before first wrote
    first.add(_rows("mmoe", 0, 0.9))
    with pytest.warns(UserWarning, match="stored by another process meanwhile"):
        second.add(_rows("mmoe", 0, 0.1) + _rows("mmoe", 1, 0.2))
    assert second.ignored == [("mmoe", 0)]
    stored = RunsDatabase(db).rows("t", "tag")
    assert len(stored) == 4 and stored.groupby("seed")["auc"].first().to_dict() == {0: 0.9, 1: 0.2}
    # the second store's own table reads the copy stored first, once
    assert sorted(second.frame()["auc"]) == [0.2, 0.2, 0.9, 0.9]


def _write_runs(db, job, seeds, barrier):
    store = ResultsStore(Shelf(db, "pmtrec_ablations", "quick-x", job), ["variant", "seed"])
    barrier.wait()  # both writers hold an open store before either writes: the race of two sweeps
    for seed in seeds:
        store.add([{"variant": "without GMB", "seed": seed, "ndcg": 0.5 + seed / 100, "job": job}])


def test_two_concurrent_writers_never_store_a_seed_twice(tmp_path):
    db = tmp_path / "runs.sqlite"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    writers = [ctx.Process(target=_write_runs, args=(db, job, range(20), barrier)) for job in ("a", "b")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    assert [w.exitcode for w in writers] == [0, 0]
    stored = RunsDatabase(db).rows("pmtrec_ablations", "quick-x")
    assert sorted(stored["seed"]) == list(range(20))  # every seed once, from whichever writer came first


def test_a_damaged_or_foreign_database_is_refused_with_its_path(tmp_path):
    db = tmp_path / "runs.sqlite"
    db.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ResultsFileError, match=r"runs.sqlite.*move it away"):
        ResultsStore(Shelf(db, "t", "tag", "j"), ["seed"])
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(ResultsFileError, match="format 99"):
        RunsDatabase(newer).rows("t")


def test_a_csv_holding_a_run_twice_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame(_rows("mmoe", 0, 0.9) + _rows("mmoe", 0, 0.8)).to_csv(path, index=False)
    with pytest.raises(ResultsFileError, match=r"r.csv, line 4: the run model='mmoe', seed=0 is stored twice"):
        ResultsStore(path, ["model", "seed"])
    load_rows(path)  # without naming the runs' key (a plain table), it reads


def test_a_csv_refuses_a_run_another_process_stored_meanwhile(tmp_path):
    path = tmp_path / "r.csv"
    late = ResultsStore(path, ["model", "seed"])  # opened while the file was empty
    append_rows(pd.DataFrame(_rows("mmoe", 0, 0.9)), path, key=("model", "seed"))
    with pytest.raises(ResultsFileError, match="stored by another process meanwhile"):
        late.add(_rows("mmoe", 0, 0.8))
    assert len(load_rows(path, key=("model", "seed"))) == 2
