import json
import time

import nbformat
import numpy as np
import pandas as pd
import pytest

from mtlab.cli import main
from mtlab.experiments import compare_models, get_profile, summarize, summary_table
from mtlab.runner import find_notebooks, run_notebooks


def test_help_lists_models_datasets_and_tasks(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in (
        "shared_bottom",
        "single_task",
        "census-income",
        "synthetic",
        "income",
        "marital",
        "education",
        "sex",
        "quick",
        "full",
        "pcgrad",
        "cagrad",
    ):
        assert word in text


def test_train_writes_json(tmp_path, capsys):
    out = tmp_path / "out.json"
    code = main(
        [
            "train",
            "--data",
            "synthetic",
            "--model",
            "shared_bottom",
            "--tasks",
            "t1,t2",
            "--profile",
            "quick",
            "--seed",
            "0",
            "--device",
            "cpu",
            "--epochs",
            "2",
            "--option",
            "bottom=[32,16]",
            "--weighting",
            "pcgrad",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    for key in ("test", "valid", "trainable_params", "flops_per_sample", "epochs", "seconds", "device"):
        assert key in result
    assert set(result["test"]) == {"t1", "t2"} and set(result["test"]["t1"]) == {"auc", "logloss"}
    assert result["epochs"] == 2 and result["device"] == "cpu" and result["trainable_params"] > 0


def test_train_bad_input_says_what_to_do(tmp_path, capsys):
    assert main(["train", "--data", "synthetic", "--tasks", "t1,t9", "--quiet"]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["train", "--data", "synthetic", "--option", "nope=1", "--quiet"]) == 2
    assert "its options" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--model", "no_such_model"])
    assert "invalid choice" in capsys.readouterr().err


def test_profile_errors_name_allowed_values():
    with pytest.raises(ValueError, match="allowed values: quick, full"):
        get_profile("fast")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        get_profile("quick", device="gpu")
    with pytest.raises(ValueError, match="seeds"):
        get_profile("quick", seeds=[])
    with pytest.raises(ValueError, match="subsample"):
        get_profile("quick", subsample=2)
    assert get_profile("full", seeds=3, subsample=1).seeds == (3,)


def test_compare_models_tidy_frame_and_summary(synthetic):
    profile = get_profile("quick", seeds=[0, 1], device="cpu")
    results, histories = compare_models(
        synthetic, ["single_task", "shared_bottom"], profile, {"shared_bottom": {"bottom": (16,)}}, epochs=2, quiet=True
    )
    assert len(results) == 2 * 2 * 2 and results["auc"].between(0.5, 1).all()
    assert set(histories["model"]) == {"single_task", "shared_bottom"} and histories["epoch"].max() == 2
    stats = summarize(results)
    one = results[(results.model == "single_task") & (results.task == "t1")]["auc"]
    row = stats[(stats.model == "single_task") & (stats.task == "t1")].iloc[0]
    assert row["mean"] == pytest.approx(one.mean()) and row["std"] == pytest.approx(one.std())
    table = summary_table(results)
    assert list(table.index) == ["single_task", "shared_bottom"] and "±" in table.loc["single_task", "t1"]


def notebook(path, source, parameters: str = "", more=()):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"\ndevice = "auto"\n' + parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source), *map(nbformat.v4.new_code_cell, more)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_runner_goes_on_past_a_failing_notebook(tmp_path):
    good = notebook(tmp_path / "a_good.ipynb", "assert profile == 'quick'\nprint('fine')")
    bad = notebook(tmp_path / "b_bad.ipynb", "raise RuntimeError('broken on purpose')")
    also = notebook(tmp_path / "c_good.ipynb", "x = 1")
    summary, folder = run_notebooks("quick", [str(good), str(bad), str(also)], tmp_path / "run", log=lambda *_: None)
    assert list(summary["status"]) == ["ok", "failed", "ok"]
    assert summary.loc[1, "error"] == "RuntimeError: broken on purpose (cell 1)"  # the error, not a table row
    assert (folder / "a_good.ipynb").exists() and (folder / "c_good.ipynb").exists()
    assert pd.read_csv(folder / "summary.csv")["status"].tolist() == ["ok", "failed", "ok"]
    assert "1 failed" in (folder / "summary.md").read_text()


def test_runner_rejects_unknown_notebook_and_profile(tmp_path):
    with pytest.raises(ValueError, match="available: 00_quickstart"):
        find_notebooks(["99_nothing"])
    with pytest.raises(ValueError, match="allowed values"):
        run_notebooks("slow", out=tmp_path)


def test_batch_kernels_do_not_flood_the_log_and_a_hung_cell_times_out(tmp_path, capfd):
    quiet = notebook(tmp_path / "a_quiet.ipynb", "print('fine')")
    hung = notebook(tmp_path / "b_hung.ipynb", "import time\ntime.sleep(600)")
    summary, _ = run_notebooks("quick", [str(quiet), str(hung)], tmp_path / "run", log=lambda *_: None, cell_timeout=3)
    assert summary["status"].tolist() == ["ok", "failed"], summary["error"].tolist()
    # the cell and the limit, not nbclient's "CellTimeoutError: -------------------"
    assert summary["error"].iloc[1] == (
        "CellTimeoutError: cell 1 ('import time') ran past --cell-timeout 3 s; give a "
        "larger --cell-timeout if it really runs that long"
    )
    err = capfd.readouterr().err
    assert "without encryption" not in err  # kernels talk over IPC, not TCP
    assert "ZMQError" not in err and "KeyboardInterrupt caught in kernel" not in err


def test_batch_report_collects_tables_and_figures(tmp_path):
    source = (
        "import pandas as pd\n"
        "import matplotlib.pyplot as plt\n"
        "from IPython.display import display\n"
        "from mtlab.experiments import keep, titled\n"
        "keep(titled('table2_vs_paper', pd.DataFrame({'model': ['mmoe'], 'auc': [0.95], 'paper_auc': [0.9494]})))\n"
        "keep(titled('table2_vs_paper', pd.DataFrame({'model': ['ple'], 'auc': [0.94]})))\n"
        "titled('not_kept', pd.DataFrame({'model': ['stem'], 'auc': [0.93]}))  # named, not kept: not reported\n"
        "fig, ax = plt.subplots(); ax.plot([1, 2]); display(fig)"
    )
    nb = notebook(tmp_path / "a_tables.ipynb", source)
    summary, folder = run_notebooks("quick", [str(nb)], tmp_path / "run", log=lambda *_: None)
    assert summary["status"].tolist() == ["ok"], summary["error"].tolist()
    assert (folder / "a_tables" / "table2_vs_paper.csv").exists() and (
        folder / "a_tables" / "table2_vs_paper-2.csv"
    ).exists()
    manifest = json.loads((folder / "a_tables" / "manifest.json").read_text())
    assert [m["file"] for m in manifest] == ["table2_vs_paper.csv", "table2_vs_paper-2.csv"]
    assert not (folder / "a_tables" / "not_kept.csv").exists()
    report = (folder / "report.html").read_text()
    assert "0.9494" in report and "data:image/png;base64," in report and "git commit" in report
    assert "table2_vs_paper.csv" in report.split("table2_vs_paper-2.csv")[0]  # the paper comparison first
    assert "http" not in report.split("<body>")[1].replace("http-equiv", "")  # nothing fetched from elsewhere


def test_a_relative_out_folder_gets_the_tables(tmp_path, monkeypatch):
    """Each notebook runs in its own folder: a relative --out must still hold its tables (they once
    landed under the notebook's folder, outside the report)."""
    (tmp_path / "nbs").mkdir()
    nb = notebook(
        tmp_path / "nbs" / "b.ipynb",
        "import pandas as pd\nfrom mtlab.experiments import keep, titled\nkeep(titled('t', pd.DataFrame({'a': [1]})))",
    )
    monkeypatch.chdir(tmp_path)
    summary, folder = run_notebooks("quick", [str(nb)], "rel-run", log=lambda *_: None)
    assert summary["status"].tolist() == ["ok"], summary["error"].tolist()
    assert folder == tmp_path / "rel-run" and (folder / "b" / "t.csv").exists()
    assert not (tmp_path / "nbs" / "rel-run").exists()


def test_keep_is_a_no_op_outside_a_batch(tmp_path, monkeypatch):
    from mtlab.experiments.artifacts import ENV, keep, titled

    monkeypatch.delenv(ENV, raising=False)
    frame = pd.DataFrame({"a": [1]})
    assert titled("x", frame) is frame and frame.attrs["report"]["name"] == "x"
    keep(frame)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="not tables named for the report"):
        keep(pd.DataFrame({"a": [1]}))


def test_experiment_functions_and_panels_write_nothing_in_a_batch(tmp_path, monkeypatch, synthetic):
    """Under `mtlab run` ($MTLAB_ARTIFACTS set), only what a notebook keeps is reported: an experiment
    function (or a panel that calls one) writes nothing by itself."""
    from mtlab.experiments import compare_models, get_profile, label_correlation, summary_table
    from mtlab.experiments.artifacts import ENV

    monkeypatch.setenv(ENV, str(tmp_path / "artifacts"))
    data = synthetic.subsample(0.2)
    results, histories = compare_models(
        data, ["shared_bottom"], get_profile("quick", seeds=[0], device="cpu"), epochs=1, quiet=True
    )
    summary_table(results), label_correlation(data)
    assert not (tmp_path / "artifacts").exists()


def test_run_passes_notebook_parameters_with_paths_made_absolute(tmp_path, monkeypatch):
    nb = notebook(
        tmp_path / "a_params.ipynb",
        "import os\nassert os.path.isabs(results_path), results_path\n"
        "assert os.path.exists(results_path) and seeds == [1, 2]",
        "results_path = None\nseeds = None",
    )
    (tmp_path / "table.csv").write_text("x\n1\n")
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "run",
            "--notebooks",
            str(nb),
            "--out",
            str(tmp_path / "run"),
            "--param",
            "results_path=table.csv",
            "--param",
            "seeds=[1, 2]",
        ]
    )
    assert code == 0, pd.read_csv(tmp_path / "run" / "summary.csv")["error"].tolist()


def test_sweep_bad_input_names_the_allowed_values(tmp_path, capsys):
    assert main(["sweep", "table9", "--out", str(tmp_path)]) == 2
    assert "allowed values: all, table2, table3, table4" in capsys.readouterr().err
    assert main(["sweep", "table3", "--workers", "0", "--out", str(tmp_path)]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_an_unknown_parameter_is_refused_before_any_notebook_runs(tmp_path, capsys):
    """`--param subsmaple=0.01` ran every notebook with the default after one log line."""
    nb = notebook(tmp_path / "a.ipynb", "x = 1", "subsample = None")
    assert main(["run", "--notebooks", str(nb), "--out", str(tmp_path / "run"), "--param", "subsmaple=0.01"]) == 2
    assert (
        "--param subsmaple: no chosen notebook has such a parameter; their parameters are: device, profile, "
        "subsample" in capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()


def test_a_parameter_goes_only_to_the_notebooks_that_declare_it(tmp_path):
    has = notebook(tmp_path / "a_has.ipynb", "assert results_path == 'x.csv'", "results_path = None")
    lacks = notebook(tmp_path / "b_lacks.ipynb", "assert 'results_path' not in globals()")
    summary, _ = run_notebooks(
        "quick", [str(has), str(lacks)], tmp_path / "run", log=lambda *_: None, parameters={"results_path": "x.csv"}
    )
    assert summary["status"].tolist() == ["ok", "ok"], summary["error"].tolist()


def test_a_cell_displaying_widgets_then_a_cell_changing_them_run_to_the_end(tmp_path):
    """The pattern of notebooks 00, 04 and 11 (`panel` shown, then `panel.run()` in the next cell)."""
    nb = notebook(
        tmp_path / "a_widgets.ipynb",
        "import ipywidgets as w\nlabel, out = w.Label('a'), w.Output()\nw.VBox([label, out])",
        more=[
            "label.value = 'b'\nwith out:\n    out.clear_output(wait=True)\n    print('b')",
            "assert label.value == 'b'",
        ],
    )
    summary, _ = run_notebooks("quick", [str(nb)], tmp_path / "run", log=lambda *_: None, cell_timeout=60)
    assert summary["status"].tolist() == ["ok"], summary["error"].tolist()


def test_a_kernel_that_stops_answering_is_caught_in_seconds_retried_once_then_reported(tmp_path, monkeypatch, capfd):
    """A kernel that takes a request (busy, then idle) but never replies: the runner sees it within
    reply_seconds instead of waiting for --cell-timeout, executes the notebook once more in a new
    kernel, then names the cell and what it saw."""
    from mtlab import kernel

    monkeypatch.setattr(kernel.WatchedNotebookClient, "reply_seconds", 2.0)
    nb = notebook(
        tmp_path / "a_mute.ipynb",
        "async def mute(*args, **kwargs):\n    pass\nget_ipython().kernel.shell_handlers['execute_request'] = mute",
        more=["print('never runs')"],
    )
    logged = []
    start = time.perf_counter()
    summary, _ = run_notebooks("quick", [str(nb)], tmp_path / "run", log=logged.append, cell_timeout=600)
    assert "never retrieved" not in capfd.readouterr().err  # nbclient's pollers for the cell are ended too
    assert time.perf_counter() - start < 120
    assert summary["status"].tolist() == ["failed"]
    assert (
        summary["error"]
        .iloc[0]
        .startswith("KernelStall: twice, at cell 2 (\"print('never runs')\"): the kernel went idle")
    ), summary["error"].iloc[0]
    assert any("stalled at cell 2" in line and "once more in a new kernel" in line for line in logged)


def test_the_level_polled_channel_receives_a_message_whose_wake_up_was_lost():
    """The mechanism behind the stalls: a ZeroMQ socket's descriptor signals an edge, and an operation
    on the socket outside the waiter (here `getsockopt(EVENTS)`) consumes it while a message sits in
    the socket. jupyter_client's asyncio channel then sleeps to its timeout; mtlab's reads the
    socket's state every POLL_SLICE seconds."""
    import asyncio

    import zmq
    import zmq.asyncio
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.session import Session

    from mtlab.kernel import LevelPolledChannel

    async def wait_with(channel_class, timeout=3.0):
        context = zmq.asyncio.Context()
        receiver, sender = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
        address = f"inproc://lost-edge-{channel_class.__name__}"
        receiver.bind(address)
        sender.connect(address)
        session = Session()
        channel = channel_class(receiver, session)

        def arrive_and_lose_the_edge():
            session.send(sender, "kernel_info_reply", {})
            time.sleep(0.05)
            receiver.getsockopt(zmq.EVENTS)

        asyncio.get_running_loop().call_later(0.1, arrive_and_lose_the_edge)
        start = time.perf_counter()
        msg = await channel.get_msg(timeout=timeout)
        took = time.perf_counter() - start
        receiver.close(0), sender.close(0)
        return msg["msg_type"], took

    kind, took = asyncio.run(wait_with(AsyncZMQSocketChannel))
    assert kind == "kernel_info_reply" and took >= 2.9  # queued all along, received only at the timeout
    kind, took = asyncio.run(wait_with(LevelPolledChannel))
    assert kind == "kernel_info_reply" and took < 1.0


def test_a_run_that_learned_nothing_says_so_in_the_output_and_the_json(tmp_path, capsys):
    """ESMM's quick run on 200,000 raw impressions ended with test CTR AUC 0.484 and log loss 0.530 (the
    base rate's: 0.22) and exit 0 without a word. A learning rate of 1e-9 learns nothing here alike."""
    out = tmp_path / "out.json"
    assert (
        main(
            [
                "train",
                "--data",
                "synthetic",
                "--model",
                "shared_bottom",
                "--profile",
                "quick",
                "--epochs",
                "1",
                "--lr",
                "1e-9",
                "--device",
                "cpu",
                "--json",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    warnings = json.loads(out.read_text())["warnings"]
    assert warnings and all("the model learned nothing useful for it" in w for w in warnings)
    assert "the model learned nothing useful for it" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--data",
                "synthetic",
                "--model",
                "shared_bottom",
                "--profile",
                "quick",
                "--epochs",
                "3",
                "--subsample",
                "1",
                "--device",
                "cpu",
                "--json",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["warnings"] == []  # a run that learned says nothing


def test_no_skill_rules_on_hand_made_predictions():
    from mtlab.train.metrics import no_skill

    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.1).astype(float)
    good = np.clip(0.1 + 0.5 * (y - 0.1) + rng.normal(0, 0.05, len(y)), 0.01, 0.99)
    constant = np.full(len(y), 0.1)
    coin = rng.random(len(y))
    labels = np.stack([y, y, y], 1)
    found = no_skill(labels, np.stack([good, constant, coin], 1), ["good", "constant", "coin"], base_rates=[0.1] * 3)
    assert [w.split(":")[0] for w in found] == ["task constant", "task coin"]
    assert "AUC 0.5000 is within noise of 0.5" in found[0] and "no better than predicting the base rate" in found[1]


def test_train_json_is_written_even_when_stdout_is_closed(tmp_path):
    """`train … --json out.json | head -3`: the JSON was printed first, so a closed pipe lost the file."""
    import subprocess
    import sys

    out = tmp_path / "out.json"
    done = subprocess.run(
        f"{sys.executable} -m mtlab train --data synthetic --model shared_bottom --profile quick "
        f"--epochs 1 --device cpu --quiet --json {out} | head -3",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(out.read_text())["epochs"] == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_ctrl_c_on_a_batch_writes_the_summary_and_says_how_to_go_on(tmp_path):
    import signal
    import subprocess
    import sys

    # a kernel slow to exit (its atexit sleeps) leaves time for nbclient's poller to see it die while
    # the shutdown waits: before the cell's tasks were ended first, that cancelled the shutdown in
    # about one run in four (exit 1 and a traceback instead of 130)
    slow = notebook(tmp_path / "a_slow.ipynb", "import atexit, time\natexit.register(time.sleep, 8)\ntime.sleep(120)")
    later = notebook(tmp_path / "b_later.ipynb", "x = 1")
    process = subprocess.Popen(
        [sys.executable, "-m", "mtlab", "run", "--notebooks", str(slow), str(later), "--out", str(tmp_path / "run")],
        stderr=subprocess.PIPE,
        text=True,
    )

    def running() -> bool:  # papermill saves the notebook as each cell starts: the sleep has begun
        try:
            cells = nbformat.read(str(tmp_path / "run" / "a_slow.ipynb"), as_version=4).cells
        except Exception:  # not written yet, or being written
            return False
        return any(c.metadata.get("papermill", {}).get("status") == "running" for c in cells)

    deadline = time.time() + 120
    while not running() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err and "Kernel died" not in err, err
    assert "interrupted (Ctrl-C); what ran is in" in err and "run again with a new --out" in err
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert summary["status"].tolist() == ["interrupted", "not run"]
    assert "0 ok, 0 failed, 1 interrupted, 1 not run" in (tmp_path / "run" / "summary.md").read_text()


def test_an_abandoned_cell_ends_its_pollers_and_never_the_shutdown():
    """What the cleanup after Ctrl-C cancels: nbclient's per-cell pollers, not another task in the loop
    (the kernel's shutdown), which the cell's ending used to take with it."""
    import asyncio

    from mtlab.kernel import cell_pollers, end_tasks
    from mtlab.runner import after_ctrl_c

    async def _async_poll_kernel_alive():
        await asyncio.sleep(60)

    async def shutdown():
        await asyncio.sleep(0.05)
        return "shut down"

    async def main():
        poller = asyncio.ensure_future(_async_poll_kernel_alive())
        other = asyncio.ensure_future(shutdown())
        await asyncio.sleep(0)
        assert cell_pollers() == [poller]
        await end_tasks(cell_pollers())
        return poller.cancelled(), await other

    assert asyncio.run(main()) == (True, "shut down")

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise asyncio.CancelledError  # noqa: B904 (the implicit context is what is tested)
    except asyncio.CancelledError as err:
        assert after_ctrl_c(err)
    assert not after_ctrl_c(asyncio.CancelledError())


def test_a_pipe_in_an_error_keeps_summary_md_a_table(tmp_path):
    nb = notebook(tmp_path / "a.ipynb", "raise ValueError('a | b')")
    _, folder = run_notebooks("quick", [str(nb)], tmp_path / "run", log=lambda *_: None)
    row = (folder / "summary.md").read_text().splitlines()[-1]
    assert row.count(" | ") == 4 and "a \\| b" in row


def test_run_refuses_bad_timeouts_repeats_and_broken_notebooks_before_running(tmp_path, capsys):
    nb = notebook(tmp_path / "a.ipynb", "x = 1")
    out = str(tmp_path / "run")
    for args, said in (
        (["--cell-timeout", "nan"], "--cell-timeout must be a positive, finite number"),
        (["--cell-timeout", "inf"], "--cell-timeout must be a positive, finite number"),
        (["--notebooks", str(nb)], "--notebooks names a notebook twice"),
        (["--param", "seeds=[0]", "--param", "seeds=[1]"], "--param seeds=… is given twice"),
    ):
        assert main(["run", "--notebooks", str(nb), "--out", out, *args]) == 2
        assert said in capsys.readouterr().err
    broken = tmp_path / "b_broken.ipynb"
    broken.write_text('{"cells": [')
    assert main(["run", "--notebooks", str(nb), str(broken), "--out", out]) == 2
    assert f"{broken} is not a readable notebook" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_fractional_cell_timeout_and_a_notebook_without_parameters_run(tmp_path, capfd):
    bare = nbformat.v4.new_notebook()
    bare.cells = [nbformat.v4.new_code_cell("x = 1")]
    bare.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "a_bare.ipynb"
    nbformat.write(bare, path)
    summary, _ = run_notebooks("quick", [str(path)], tmp_path / "run", log=lambda *_: None, cell_timeout=2.5)
    assert summary["status"].tolist() == ["ok"], summary["error"].tolist()
    err = capfd.readouterr().err
    assert "unknown parameter" not in err and "does not contain a cell with tag" not in err
    with pytest.raises(ValueError, match="their parameters are: none \\(they have no cell tagged 'parameters'\\)"):
        run_notebooks("quick", [str(path)], tmp_path / "run2", parameters={"seeds": [1]})


def test_the_report_skips_a_notebook_cut_short(tmp_path):
    from mtlab.report import write_report

    (tmp_path / "a.ipynb").write_text("")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "manifest.json").write_text('[{"file": "t.csv", "ti')
    summary = pd.DataFrame(
        [
            {
                "notebook": "a.ipynb",
                "status": "interrupted",
                "seconds": 1.0,
                "output": str(tmp_path / "a.ipynb"),
                "error": "interrupted (Ctrl-C)",
            }
        ]
    )
    assert write_report(tmp_path, summary, "quick").exists()


def test_warnings_to_a_closed_pipe_do_not_fail_the_run(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out.json"
    done = subprocess.run(
        [
            "bash",
            "-c",
            f"set -o pipefail; {sys.executable} -m mtlab train --data synthetic --model "
            f"shared_bottom --profile quick --epochs 1 --lr 1e-9 --device cpu --quiet --json {out} "
            "2>&1 | head -1",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.startswith("warning"), (done.returncode, done.stdout, done.stderr)
    assert json.loads(out.read_text())["warnings"]
