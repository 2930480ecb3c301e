"""The notebook panels, driven without a browser (the browser test is tests/test_browser.py)."""

import pytest

pytest.importorskip("ipywidgets")

from mtlab.widgets import Explorer, QuickstartPanel  # noqa: E402


def explorer_on_synthetic(**kw):
    explorer = Explorer(device="cpu", subsample=1.0)
    explorer.dataset.value = "synthetic"
    explorer.model.value = "shared_bottom"
    explorer.tasks.value = ("t1", "t3")
    explorer.batch.value = 512
    for name, value in kw.items():
        getattr(explorer, name).value = value
    return explorer


def test_explorer_runs_in_a_thread_and_accumulates_results():
    explorer = explorer_on_synthetic(epochs=2)
    assert explorer.run(wait=False) is None
    explorer._thread.join(timeout=120)
    assert explorer.status.value.startswith("done"), explorer.status.value
    assert explorer.curve.value[:4] == b"\x89PNG" and explorer.progress.value == 2
    explorer.model.value = "mmoe"
    explorer.weighting.value = "PCGrad"
    explorer.run(wait=True)
    assert [(r["model"], r["weighting"]) for r in explorer.results] == [
        ("shared_bottom", "equal (EW)"),
        ("mmoe", "PCGrad"),
    ]
    assert "test AUC t3" in explorer.table.value and not explorer.run_button.disabled


def test_explorer_stop_ends_after_the_current_epoch():
    explorer = explorer_on_synthetic(epochs=30)
    explorer.run(wait=False)
    explorer._stop.set()  # what the Stop button does
    explorer._thread.join(timeout=120)
    assert explorer.results[-1]["epochs"] == 1 and explorer.status.value == "stopped"


def test_explorer_reports_bad_choices_in_the_panel():
    explorer = explorer_on_synthetic()
    explorer.tasks.value = ()
    explorer.run(wait=False)
    explorer._thread.join(timeout=30)
    assert explorer.status.value == "error: pick at least one task" and not explorer.results


def test_quickstart_panel_redraws_when_a_slider_moves(synthetic):
    panel = QuickstartPanel(synthetic, device="cpu", max_rows=800)
    panel.epochs.value = 1
    assert panel.runs == 1  # moving a slider retrains and redraws
    panel.hidden.value = 32
    assert panel.runs == 2 and list(panel.last_table.columns)[:2] == list(synthetic.tasks)
    assert "Δm % (mean ± std)" in panel.last_table  # Single Task ran: Δm beside the tasks


def test_a_panel_pressed_in_a_batch_puts_nothing_into_the_report(synthetic, tmp_path, monkeypatch):
    from mtlab.experiments.artifacts import ENV

    monkeypatch.setenv(ENV, str(tmp_path / "artifacts"))  # as under `mtlab run`
    panel = QuickstartPanel(synthetic, device="cpu", max_rows=800)
    panel.epochs.value = 1
    assert panel.runs == 1 and not (tmp_path / "artifacts").exists()


def test_alpha_tau_panel_retrains_when_a_slider_moves():
    import pandas as pd

    from mtlab.data.interactions import make_synthetic_interactions
    from mtlab.widgets import AlphaTauPanel

    grid = pd.DataFrame(
        [[0.1, 0.3], [0.2, 0.25]], index=pd.Index([1.0, 1.1], name="alpha"), columns=pd.Index([0.5, 1.0], name="tau")
    )
    panel = AlphaTauPanel(
        make_synthetic_interactions(n_users=200, n_items=150, seed=0), device="cpu", epochs=2, grid=grid
    )
    first = panel.run()
    assert 0 < first["ndcg@40"] <= 1 and panel.runs == 1
    panel.tau.value = 5.0  # released slider: retrains at once
    assert panel.runs == 2 and "τ = 5.00" in panel.status.value
    assert "grid best: α = 1.0, τ = 1.0" in panel.status.value


def test_explorer_trains_the_recommender_with_pmtrec():
    explorer = Explorer(device="cpu")
    explorer.dataset.value = "rec-synthetic"
    assert explorer.model.options == ("mf",) and explorer.tasks.value == ("rec", "align")
    explorer.weighting.value = "PMTRec"
    explorer.epochs.value, explorer.batch.value, explorer.lr.value = 2, 1024, 0.01
    out = explorer.run(wait=True)
    assert explorer.status.value.startswith("done"), explorer.status.value
    assert set(out["test"]["rec"]) >= {"ndcg@40", "recall@40"} and explorer.curve.value[:4] == b"\x89PNG"
    assert "test ndcg@40" in explorer.table.value


@pytest.mark.parametrize("dataset", ["ali-ccp", "aliexpress-nl", "aliexpress-us"])
def test_explorer_offers_every_funnel_dataset_the_funnel_models_and_tasks(dataset):
    explorer = Explorer(device="cpu")
    explorer.dataset.value = dataset
    assert {"esmm", "escm2", "aitm"} <= set(explorer.model.options) and explorer.model.value == "mmoe"  # kept
    assert explorer.tasks.options == ("ctr", "cvr", "ctcvr")
    explorer.model.value = "esmm"  # predicts all three funnel tasks: chosen with it
    assert explorer.tasks.value == ("ctr", "cvr", "ctcvr")
    explorer.model.value = "mmoe"
    assert explorer.tasks.value == ("ctr", "cvr")
    explorer.model.value = "aitm"
    explorer.dataset.value = "census-income"
    assert not {"esmm", "escm2", "aitm"} & set(explorer.model.options) and explorer.model.value == "mmoe"


def test_explorer_reads_the_registries():
    from mtlab.data import DATASETS, REC_DATASETS
    from mtlab.weighting import STRATEGIES

    explorer = Explorer(device="cpu")
    assert list(explorer.dataset.options) == [*DATASETS, *REC_DATASETS]
    assert list(explorer.weighting.options) == [cls.title for cls in STRATEGIES.values()] and len(STRATEGIES) == 28
    assert explorer.weighting.value == STRATEGIES["ew"].title
    explorer.dataset.value = "rec-synthetic"  # MF shares the rows each batch reads: no per-element state
    assert set(explorer.weighting.options) == {c.title for c in STRATEGIES.values() if not c.per_element_state}
    explorer.weighting.value = "MGDA"
    assert explorer._strategy() == "mgda"


def test_explorer_keeps_the_chosen_tasks_when_the_model_changes_and_checks_them_at_run():
    explorer = Explorer(device="cpu")
    explorer.tasks.value = ("income", "sex", "bachelors")
    explorer.model.value = "ple"
    assert explorer.tasks.value == ("income", "sex", "bachelors")
    explorer.dataset.value = "aliexpress-nl"
    explorer.model.value = "esmm"
    explorer.tasks.value = ("ctr", "cvr")
    with pytest.raises(ValueError, match="predicts the tasks ctr, cvr, ctcvr"):  # before loading any data
        explorer.run(wait=True)
    assert explorer.status.value.startswith("error: ") and "--tasks" not in explorer.status.value


def test_explorer_trains_a_table_of_your_own_with_mixed_kinds(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from mtlab.data import prepare_table

    monkeypatch.setenv("MTLAB_DATA_DIR", str(tmp_path / "data"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=800)
    frame = pd.DataFrame(
        {"x": x, "c": rng.choice(list("abc"), 800), "y": x > 0, "v": 3 * x + 1, "k": rng.choice(["p", "q", "r"], 800)}
    )
    prepare_table(frame, "mixed", ["y:binary", "v:regression", "k:multiclass"], quiet=True)
    explorer = Explorer(device="cpu", subsample=1.0)
    explorer.dataset.value = "mixed"
    assert set(explorer.tasks.options) == {"y", "v", "k"}
    assert "esmm" not in explorer.model.options and "mpt_rec" not in explorer.model.options
    assert "mmoe" in explorer.model.options
    explorer.model.value = "mmoe"
    explorer.tasks.value = ("y", "v", "k")
    explorer.epochs.value = 2
    explorer.run(wait=True)
    row = explorer.results[-1]
    assert {"test AUC y", "test rmse v", "test accuracy k"} <= set(row)
    # use the model: saved, loaded back as `mtlab predict` would, its predictions of test rows shown
    path, preview = explorer.save(tmp_path / "mixed.safetensors")
    assert path.is_file() and "mtlab predict --model" in explorer.use.value
    assert list(preview.columns[:3]) == ["y", "v", "k"] and len(preview) == 5
    assert set(preview.columns[3:]) == {"k=p", "k=q", "k=r"}  # the classes, most frequent first
    assert preview["k"].isin(["p", "q", "r"]).all() and preview["y"].between(0, 1).all()
