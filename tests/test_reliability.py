"""Nothing silently wrong: each bad input or fault a skeptical user tried gets a clear stop."""

import json
import os

import pandas as pd
import pytest
import torch

from mtlab.cli import main
from mtlab.data import DataError, load_dataset, make_synthetic
from mtlab.data.download import accept_own_copy
from mtlab.experiments.store import ResultsFileError, append_rows, load_rows
from mtlab.experiments.sweep import Job, plan, profile_tag
from mtlab.models import build_model
from mtlab.train import (
    CheckpointError,
    DivergenceError,
    TrainConfig,
    fit,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)
from mtlab.weighting import STRATEGIES

FAST = dict(batch_size=128, device="cpu", quiet=True, patience=0)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_samples=800, n_tasks=2, seed=0)


def trained(data, path, **config):
    seed_everything(0)
    model = build_model("shared_bottom", data.features, data.tasks, bottom=(16,), tower=(8,))
    return fit(model, data, TrainConfig(**{**FAST, "epochs": 1, **config}), checkpoint=path)


# 1. checkpoints ------------------------------------------------------------------------------------


def test_resume_refuses_another_seed_lr_or_task_order(data, tmp_path):
    path = tmp_path / "run.pt"
    trained(data, path)
    for change, expected in (({"seed": 1}, "seed: 0 in the checkpoint, 1 now"), ({"lr": 0.5}, "lr: 0.001")):
        seed_everything(0)
        model = build_model("shared_bottom", data.features, data.tasks, bottom=(16,), tower=(8,))
        with pytest.raises(CheckpointError, match=expected):
            fit(model, data, TrainConfig(**{**FAST, "epochs": 2, **change}), checkpoint=path, resume=True)
    swapped = data.select_tasks(["t2", "t1"])
    model = build_model("shared_bottom", swapped.features, swapped.tasks, bottom=(16,), tower=(8,))
    with pytest.raises(CheckpointError, match="tasks: \\['t1', 't2'\\] in the checkpoint, \\['t2', 't1'\\] now"):
        fit(model, swapped, TrainConfig(**{**FAST, "epochs": 2}), checkpoint=path, resume=True)
    model = build_model("shared_bottom", data.features, data.tasks, bottom=(32,), tower=(8,))
    with pytest.raises(CheckpointError, match="model_config.bottom"):
        fit(model, data, TrainConfig(**{**FAST, "epochs": 2}), checkpoint=path, resume=True)


def test_resume_without_a_checkpoint_says_it_starts_fresh(data, tmp_path, capsys):
    seed_everything(0)
    model = build_model("shared_bottom", data.features, data.tasks, bottom=(16,), tower=(8,))
    fit(model, data, TrainConfig(**{**FAST, "epochs": 1, "quiet": False}), checkpoint=tmp_path / "new.pt", resume=True)
    assert "starting a fresh run" in capsys.readouterr().out and (tmp_path / "new.pt").exists()


def test_corrupt_or_unsafe_checkpoints_are_refused(tmp_path):
    cut = tmp_path / "cut.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(100)}, cut)
    cut.write_bytes(cut.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(cut)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    crafted = tmp_path / "crafted.pt"
    torch.save({"epoch": 1, "payload": Exploit()}, crafted)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(crafted)
    assert not (tmp_path / "pwned").exists()


def test_a_stale_temporary_file_is_cleaned_up_on_the_next_write(tmp_path):
    (tmp_path / "run.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    save_checkpoint({"epoch": 1}, tmp_path / "run.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


# 2. divergence -------------------------------------------------------------------------------------


def test_a_diverging_loss_stops_with_the_epoch_task_and_a_remedy(data):
    seed_everything(0)
    model = build_model("shared_bottom", data.features, data.tasks, bottom=(16,), tower=(8,))
    with torch.no_grad():
        model.towers.head.weight[1].fill_(float("nan"))  # task t2 produces NaN from the first step
    with pytest.raises(
        DivergenceError, match="epoch 1: the loss of task\\(s\\) [t1, ]*t2 is not finite; try a lower learning rate"
    ):
        fit(model, data, TrainConfig(**{**FAST, "epochs": 3}))


def test_cli_at_a_huge_learning_rate_exits_with_an_error_not_a_result(tmp_path, capsys):
    out = tmp_path / "out.json"
    code = main(
        [
            "train",
            "--data",
            "synthetic",
            "--model",
            "shared_bottom",
            "--lr",
            "1e6",
            "--epochs",
            "3",
            "--device",
            "cpu",
            "--quiet",
            "--json",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    if code == 0:  # Adam's normalized steps may stay finite: then the result must be finite too
        assert json.loads(out.read_text())
    else:
        assert code == 2 and "lower learning rate" in err and not out.exists()


# 3. tasks --------------------------------------------------------------------------------------------


def test_duplicate_tasks_are_refused():
    with pytest.raises(DataError, match="given twice"):
        load_dataset("synthetic", tasks=["t1", "t1"], n_samples=300)
    assert main(["train", "--data", "synthetic", "--tasks", "t1,t1", "--quiet"]) == 2


def test_a_task_with_one_class_in_a_split_is_refused_at_load():
    with pytest.raises(DataError, match="no (positive|negative) label in the (train|valid|test) split"):
        load_dataset("synthetic", n_samples=60, subsample=0.05)


# 5. result files ------------------------------------------------------------------------------------


def test_a_cut_last_line_is_refused_and_never_glued_to_the_next_row(tmp_path):
    path = tmp_path / "runs.csv"
    append_rows(pd.DataFrame([{"model": "mmoe", "seed": 0, "auc": 0.9512}]), path)
    append_rows(pd.DataFrame([{"model": "ple", "seed": 0, "auc": 0.9498}]), path)
    path.write_text(path.read_text()[:-3])  # "…,0.94" cut mid-value, no end of line
    with pytest.raises(ResultsFileError, match="line 3: the last line is cut"):
        load_rows(path)
    with pytest.raises(ResultsFileError):
        append_rows(pd.DataFrame([{"model": "stem", "seed": 0, "auc": 0.95}]), path)
    assert path.read_text().endswith("0.94")  # untouched: nothing appended to a damaged file


def test_a_row_with_a_missing_field_or_a_wrong_type_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("model,seed,auc\nmmoe,0,0.95\nple,0\n")
    with pytest.raises(ResultsFileError, match="line 3: 2 fields where the header has 3"):
        load_rows(path)
    path.write_text("model,seed,auc\nmmoe,0,0.95\nple,0,0.9x5\n")
    with pytest.raises(ResultsFileError, match="line 3: 'auc' is '0.9x5', not a number"):
        load_rows(path)


def test_sweep_jobs_of_another_profile_never_count_as_done(tmp_path):
    from mtlab.experiments import get_profile

    quick, full = get_profile("quick"), get_profile("full")
    assert profile_tag(quick) != profile_tag(full)
    assert profile_tag(quick) == profile_tag(get_profile("quick", seeds=[3]))  # seeds are per job
    job = plan(["table4"], quick)[0]
    assert isinstance(job, Job) and job.kwargs["profile"].name == "quick"


# 6. command line -------------------------------------------------------------------------------------


def test_cli_refuses_bad_json_options_and_bad_ranges(capsys):
    assert main(["train", "--data", "synthetic", "--option", "bottom=[32,", "--quiet"]) == 2
    assert "--option 'bottom=[32,': the value is not JSON" in capsys.readouterr().err
    assert main(["train", "--data", "synthetic", "--model", "mmoe", "--option", "n_experts=0", "--quiet"]) == 2
    assert "n_experts must be an integer of at least 1, got 0" in capsys.readouterr().err
    assert main(["train", "--data", "synthetic", "--model", "mmoe", "--option", "n_experts=-2", "--quiet"]) == 2


def test_cli_checks_output_paths_before_training(tmp_path, capsys):
    assert main(["train", "--data", "synthetic", "--json", str(tmp_path), "--quiet"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["train", "--data", "synthetic", "--checkpoint", str(tmp_path), "--quiet"]) == 2
    assert main(["train", "--data", "synthetic", "--resume", "--quiet"]) == 2
    assert "--resume needs --checkpoint" in capsys.readouterr().err


def test_cli_sweep_seeds_and_run_params_speak_of_their_flags(tmp_path, capsys):
    assert main(["sweep", "table3", "--seeds", "a,b", "--out", str(tmp_path)]) == 2
    assert "--seeds 'a,b': give whole numbers" in capsys.readouterr().err
    assert main(["run", "--param", "profile=bogus", "--out", str(tmp_path / "r")]) == 2
    assert "set by --profile" in capsys.readouterr().err
    assert main(["run", "--param", "oops", "--out", str(tmp_path / "r")]) == 2
    assert "--param 'oops': expected KEY=VALUE" in capsys.readouterr().err


def test_run_refuses_an_out_folder_that_holds_a_run(tmp_path, capsys):
    (tmp_path / "summary.csv").write_text("notebook\n")
    assert main(["run", "--notebooks", "00_quickstart", "--out", str(tmp_path)]) == 2
    assert "already holds a run" in capsys.readouterr().err


# 4. data files ---------------------------------------------------------------------------------------


def test_a_fetched_file_cut_later_is_refused_and_fetch_verifies_again(tmp_path, monkeypatch):
    import shutil

    from mtlab.data import download
    from mtlab.data.download import data_dir, fetch, require_files
    from mtlab.data.rec_files import load_filmtrust

    real = data_dir() / "filmtrust"
    if not (real / "ratings.tab").exists():
        pytest.skip("FilmTrust not fetched (scripts/setup.sh fetches it)")
    shutil.copytree(real, tmp_path / "filmtrust")
    (tmp_path / "filmtrust" / download.STAMP).unlink(missing_ok=True)
    fetch("filmtrust", root=tmp_path, log=lambda *_: None)  # verifies the files in place, stamps them
    assert len(load_filmtrust(root=tmp_path).train) > 0
    ratings = tmp_path / "filmtrust" / "ratings.tab"
    lines = ratings.read_text().splitlines(keepends=True)
    ratings.write_text("".join(lines[: len(lines) // 2]))  # cut at a line boundary
    with pytest.raises(DataError, match="do not match the published sha256.*python -m mtlab.data fetch filmtrust"):
        require_files("filmtrust", tmp_path)

    def no_network(*args, **kwargs):
        raise RuntimeError("would fetch again")

    monkeypatch.setattr(download, "_from_registry", no_network)
    with pytest.raises(RuntimeError, match="would fetch again"):  # not "already in": the damaged file is redone
        fetch("filmtrust", root=tmp_path, log=lambda *_: None)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f[:7] + [", ".join(f[7].split(", ")[:20])] + f[8:], "line 8: too few fields"),
        (
            lambda f: f[:3] + [f[3].replace(f[3].split(", ")[0], "forty", 1)] + f[4:],
            "line 4: age is 'forty', not a number",
        ),
        (lambda f: f[:5] + [f[5].rsplit(", ", 1)[0] + ", maybe"] + f[6:], "line 6: income is 'maybe'"),
        (lambda f: f[:2] + [f[2] + ", extra, fields"] + f[3:], "Expected 42 fields in line 3"),
    ],
)
def test_a_malformed_census_row_names_its_file_and_line(census_root, damage, message):
    from mtlab.data import load_census

    path = census_root / "census-income" / "census_income_train.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(damage(lines)) + "\n")
    accept_own_copy("census-income", census_root)  # one's own copy, accepted: its rows are still checked
    with pytest.raises(DataError, match=message) as caught:
        load_census(root=census_root)
    assert "census_income_train.csv" in str(caught.value) and "fetch census-income" in str(caught.value)


def test_a_malformed_movielens_or_filmtrust_row_names_its_file_and_line(tmp_path):
    import shutil

    from mtlab.data.download import data_dir
    from mtlab.data.interactions import load_movielens
    from mtlab.data.rec_files import load_filmtrust

    for name in ("ml-100k", "filmtrust"):
        if not (data_dir() / name).exists():
            pytest.skip(f"{name} not fetched (scripts/setup.sh fetches it)")
        shutil.copytree(data_dir() / name, tmp_path / name)
        (tmp_path / name / ".fetched.json").unlink(missing_ok=True)  # hand-edited copies: no stamp
    inter = tmp_path / "ml-100k" / "ml-100k.inter"
    lines = inter.read_text().splitlines()
    inter.write_text("\n".join([*lines[:9], "196\t242\tthree\t881250949", *lines[10:]]) + "\n")
    accept_own_copy("ml-100k", tmp_path)  # one's own copy, accepted: its rows are still checked
    with pytest.raises(DataError, match="ml-100k.inter, line 10: rating:float is 'three', not a number"):
        load_movielens("ml-100k", root=tmp_path)
    ratings = tmp_path / "filmtrust" / "ratings.tab"
    lines = ratings.read_text().splitlines()
    ratings.write_text("\n".join([*lines[:6], "7", *lines[7:]]) + "\n")  # a cut line
    accept_own_copy("filmtrust", tmp_path)
    with pytest.raises(DataError, match="ratings.tab, line 7: too few fields.*fetch filmtrust"):
        load_filmtrust(root=tmp_path)


def test_a_sweep_with_failed_jobs_lists_them_in_one_line_each_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MTLAB_DATA_DIR", str(tmp_path / "empty"))  # every job fails at loading its data
    code = main(
        ["sweep", "table4", "--profile", "quick", "--seeds", "0", "--workers", "1", "--out", str(tmp_path / "out")]
    )
    out, err = capsys.readouterr()
    failed = [line for line in out.splitlines() if line.startswith("sweep: failed ")]
    assert code == 1 and len(failed) == 10 and "10 of 10 jobs failed" in err
    assert all("census-income data not found" in line and "Traceback" not in line for line in failed)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_gives_the_one_divergence_message_at_a_huge_learning_rate(data, strategy):
    """A Gramian or solver never meets non-finite gradients (IMTL's SVD, FairGrad's scipy solve raised
    their own errors): the task gradients are checked first, and every strategy stops alike."""
    seed_everything(0)
    model = build_model("mmoe", data.features, data.tasks, n_experts=2, expert=(8,), tower=(4,))
    if strategy == "pmtrec":
        pytest.skip("PMTRec weights embedding rows of a recommender (tested on MF in test_pmtrec)")
    with pytest.raises(
        DivergenceError,
        match=r"training diverged in epoch \d+: the (loss|gradient) of task\(s\) .*"
        r"try a lower learning rate \(now 10000\)",
    ):
        fit(model, data, TrainConfig(**{**FAST, "epochs": 20, "lr": 1e4, "weighting": strategy}))


def test_a_loss_that_explodes_but_stays_finite_stops_the_run(data):
    """--lr 1: BCE in the hundreds of thousands, every number finite; it ran to the end with exit 0."""
    seed_everything(0)
    model = build_model("mmoe", data.features, data.tasks, n_experts=2, expert=(8,), tower=(4,))
    with pytest.raises(DivergenceError, match=r"exploded \(over 100× the first batch's\); try a lower learning rate"):
        fit(model, data, TrainConfig(**{**FAST, "epochs": 20, "lr": 10.0}))
