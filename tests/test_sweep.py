"""The parallel sweep: its plan, Table 4 runs taken from Table 3's, worker processes, resuming."""

from dataclasses import replace

import pandas as pd
import pytest

from mtlab.experiments import get_profile
from mtlab.experiments.new_task_tables import (
    _maml_reference,
    load_new_task_data,
    negative_transfer,
    negative_transfer_from_table3,
    new_task_table,
)
from mtlab.experiments.sweep import PAPERS, plan, profile_tag, run_sweep


def test_plan_has_one_job_per_seed_and_model_dearest_first():
    full = get_profile("full")
    assert len(plan(["table3"], full, per_seed=True)) == 5 * 5  # Shared Bottom*, MMoE*, PLE*, MPT-Rec, MAML
    assert len(plan(["table4"], full, per_seed=True)) == 5 * 2 * 5  # seeds × new tasks × models
    # with Table 3 in the sweep, Table 4 skips the education runs that Table 3 trains anyway
    both = plan(["table3", "table4"], full, per_seed=True)
    assert len(both) == 25 + 50 - 5 * 4
    assert not any(j.table == "table4" and j.key.startswith("education-") and "stem" not in j.key for j in both)
    pmtrec = plan(["pmtrec"], full, per_seed=True)
    assert len(pmtrec) == 5 * 2 * 12 and {j.kwargs["dataset"] for j in pmtrec} == {"ml-1m", "filmtrust"}
    assert [j.cost for j in pmtrec] == sorted((j.cost for j in pmtrec), reverse=True)
    assert all(j.kwargs["profile"].seeds == (int(j.key.rsplit("-", 1)[1]),) for j in both + pmtrec)
    with pytest.raises(ValueError, match="all, table2, table3"):
        plan(["table5"], full)


def test_by_default_a_job_holds_every_seed_and_all_is_both_papers():
    full = get_profile("full")
    grouped = plan(["table3", "table4"], full)
    assert len(grouped) == 5 + 10 - 4 and all(j.kwargs["profile"].seeds == full.seeds and j.runs == 5 for j in grouped)
    every = plan(["all"], full)
    assert {j.table for j in every} == set(PAPERS)
    counts = pd.Series([j.table for j in every]).value_counts()
    assert counts["table2"] == 8 and counts["pmtrec_grid"] == 5 * 4 and counts["pmtrec_ablations"] == 4
    assert counts["ablations"] == 1 and sum(j.runs for j in every) == 5 * len(every)
    assert len({(j.table, j.key) for j in every}) == len(every)


def test_gpu_workers_without_a_gpu_are_refused():
    from mtlab.experiments.sweep import _device_slots

    cpu = get_profile("quick", device="cpu")
    assert _device_slots(cpu, 2, None) == {"cuda": 0, "cpu": 2}
    with pytest.raises(ValueError, match="--gpu-workers 0"):
        _device_slots(cpu, 2, 1)


@pytest.fixture
def fake_census(census_root, monkeypatch):
    """The fake Census-Income files as the data folder (also for spawned worker processes)."""
    monkeypatch.setenv("MTLAB_DATA_DIR", str(census_root))
    return replace(get_profile("quick", seeds=[0], device="cpu", subsample=1), epochs=1)


def test_table4_runs_from_table3_equal_negative_transfer(fake_census):
    profile = fake_census
    data3 = load_new_task_data("education", profile)
    table3 = new_task_table(data3, profile, models=["shared_bottom"], include_maml=False)
    runs, _ = negative_transfer(profile, ["education"], ["shared_bottom"])
    derived = negative_transfer_from_table3(table3, "education")
    key = ["new_task", "model", "seed", "task"]
    pd.testing.assert_frame_equal(
        derived.sort_values(key).reset_index(drop=True), runs[derived.columns].sort_values(key).reset_index(drop=True)
    )


def test_maml_takes_the_full_training_reference_of_its_seed():
    table = pd.DataFrame(
        [
            {
                "model": "shared_bottom",
                "seed": 0,
                "full_t3_auc": 0.8,
                "full_params": 100,
                "full_train_flops_per_sample": 10,
            },
            {
                "model": "shared_bottom",
                "seed": 1,
                "full_t3_auc": 0.9,
                "full_params": 100,
                "full_train_flops_per_sample": 20,
            },
            {"model": "maml", "seed": 1},
            {"model": "maml", "seed": 2},  # no Shared Bottom run of this seed: no reference
        ]
    )
    out = _maml_reference(table)
    assert out.loc[2, ["full_t3_auc", "full_params", "full_train_flops_per_sample"]].tolist() == [0.9, 100, 20]
    assert out.loc[3, ["full_t3_auc", "full_params"]].isna().all()
    assert _maml_reference(table[table["model"] == "maml"])["full_params"].isna().all()


def test_sweep_runs_jobs_in_worker_processes_and_resumes(fake_census, tmp_path):
    lines = []
    merged = run_sweep(["table4"], fake_census, tmp_path, workers=2, log=lines.append)
    table4 = merged["table4"]
    assert len(table4) == 2 * 5 * 2  # new tasks × models × existing tasks, one seed
    assert set(table4["model"]) == {"shared_bottom", "mmoe", "ple", "stem", "mpt_rec"}
    assert not any("FAILED" in line for line in lines), lines
    from mtlab.experiments.store import RunsDatabase

    tag = profile_tag(fake_census)
    assert (
        sum(
            len(RunsDatabase(tmp_path / "runs.sqlite").finished_jobs("table4", f"{tag}/{t}"))
            for t in ("education", "sex")
        )
        == 10
    )
    stored = pd.read_csv(tmp_path / "table4.csv")
    assert len(stored) == len(table4)
    # the notebook's call with the merged file trains nothing and returns the same runs
    runs, _ = negative_transfer(fake_census, results_path=tmp_path / "table4.csv")
    assert len(runs) == len(table4)
    again = []
    run_sweep(["table4"], fake_census, tmp_path, workers=2, log=again.append)
    assert again[0].startswith("sweep: 0 jobs")
    assert any("runs/min" in line for line in lines) and "10 runs (0 on the GPU, 10 on CPU workers)" in lines[-1]


def test_a_second_sweep_into_the_same_folder_stops_instead_of_storing_seeds_twice(tmp_path):
    """Issue: two sweeps into one --out started 3 s apart both ran and stored every seed twice."""
    import fcntl

    from mtlab.experiments import get_profile
    from mtlab.experiments.sweep import SweepError

    with open(tmp_path / ".sweep.lock", "w") as held:  # a sweep is running there
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SweepError, match="another sweep is writing into"):
            run_sweep(["table4"], get_profile("quick", device="cpu"), tmp_path, workers=1, log=lambda *_: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sweep.lock"]  # nothing run, nothing written


def test_sweep_stops_say_what_to_do_ctrl_c_failing_estimate_and_a_file_as_out(tmp_path, capsys, monkeypatch):
    """Issue: Ctrl-C on a sweep and `sweep --estimate` with failing jobs ended in tracebacks; review: an
    --out that is a file or cannot be written did too."""
    from mtlab import cli
    from mtlab.experiments import sweep

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_sweep", interrupted)
    args = ["sweep", "pmtrec_ablations", "--profile", "quick", "--workers", "1", "--out", str(tmp_path / "s")]
    assert cli.main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C); finished jobs are kept in" in err and "run the same command again" in err
    monkeypatch.undo()

    monkeypatch.setenv("MTLAB_DATA_DIR", str(tmp_path / "no-data"))  # every job fails: its dataset is missing
    assert cli.main([*args[:-1], str(tmp_path / "e"), "--estimate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "jobs failed" in err and "Traceback" not in err

    (tmp_path / "afile").write_text("x")
    assert cli.main([*args[:-1], str(tmp_path / "afile")]) == 1
    assert "cannot write into" in capsys.readouterr().err


def test_a_sweep_on_another_new_task_is_not_done_by_the_first_and_exports_keep_a_notebooks_rows(tmp_path):
    """Review: runs keyed (strategy, seed) of one --data counted as done for another --data into the same
    --out; exporting a table overwrote rows a notebook had resumed into its CSV; a foreign SQLite file
    was written into."""
    import sqlite3

    from mtlab.experiments.store import ResultsFileError, ResultsStore, RunsDatabase, Shelf
    from mtlab.experiments.sweep import Job, export, merge, scope

    profile = get_profile("quick", device="cpu")
    a, b = (Job("ablations", f"{t}-0_1", 1.0, dict(profile=profile, new_task=t)) for t in ("education", "sex"))
    assert scope(a) != scope(b) and scope(a).startswith(profile_tag(profile) + "/")
    db = tmp_path / "runs.sqlite"
    ResultsStore(Shelf(db, "ablations", scope(a), a.key), ["seed"]).add([{"seed": 0, "auc": 0.7}])
    assert ResultsStore(Shelf(db, "ablations", scope(b), b.key), ["seed"]).pending((), [0]) == [0]  # not done
    merged = merge(tmp_path, tag=profile_tag(profile))
    assert len(merged["ablations"]) == 1 and (tmp_path / "ablations.csv").exists()

    path = tmp_path / "ablations.csv"
    ResultsStore(path, ["seed"]).add([{"seed": 1, "auc": 0.8}])  # a notebook resumed into the export
    with pytest.raises(ResultsFileError, match=r"holds 1 row\(s\) this sweep's database does not"):
        export(merged["ablations"], path)
    assert len(pd.read_csv(path)) == 2  # kept

    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE customers (name TEXT)")
    with pytest.raises(ResultsFileError, match="not mtlab's results"):
        RunsDatabase(foreign).check()
    with sqlite3.connect(foreign) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 0  # untouched
