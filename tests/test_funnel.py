"""The funnel models (ESMM, ESCM², AITM) and the entire-space evaluation, on generated Ali-CCP data:
their equations on hand-made cases, labels used only where they exist, and training in memory and
streamed through the one fit loop."""

import math

import pytest
import torch

from mtlab.data.funnel_shards import funnel_labels, load_aliccp
from mtlab.experiments import get_profile
from mtlab.models import build_model, task_losses
from mtlab.models.funnel import product_logit
from mtlab.train import TrainConfig, evaluate, fit, seed_everything


def test_product_logit_is_the_logit_of_the_product_and_stays_finite():
    a, b = torch.tensor([0.3, -2.0, 30.0, -40.0]), torch.tensor([-0.7, 1.0, 30.0, 5.0])
    p = torch.sigmoid(a.double()) * torch.sigmoid(b.double())
    expected = torch.log(p / (1 - p)).float()
    torch.testing.assert_close(product_logit(a, b)[:2], expected[:2])
    assert torch.isfinite(product_logit(a, b)).all()


def test_funnel_labels_hide_conversion_without_a_click_and_losses_skip_it():
    labels = funnel_labels(torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]))
    assert labels[2, 1].isnan() and labels[:, 2].tolist() == [1.0, 0.0, 0.0]
    logits = torch.tensor([[0.5, 2.0, -1.0], [0.1, -1.0, 0.0], [-0.3, 9.0, 1.0]])
    losses = task_losses(logits, labels)
    cvr = torch.nn.functional.binary_cross_entropy_with_logits(logits[:2, 1], labels[:2, 1])
    torch.testing.assert_close(losses[1], cvr)  # the third row (no click) takes no part in cvr
    plain = torch.tensor([[0.2, -0.4], [1.0, 0.3]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(
        task_losses(*plain),  # without NaNs: the plain mean, to the bit
        torch.nn.functional.binary_cross_entropy_with_logits(*plain, reduction="none").mean(0),
    )


def test_esmm_trains_ctr_and_ctcvr_over_every_impression_and_records_cvr(funnel):
    seed_everything(0)
    model = build_model("esmm", funnel.features, funnel.tasks, tower=(8,))
    batch, labels = funnel.train.rows(torch.arange(128))
    losses, extra = model.training_loss(batch, labels, None)
    logits = model(batch)
    torch.testing.assert_close(
        losses[0], torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], labels[:, 0])
    )
    torch.testing.assert_close(
        losses[2], torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 2], labels[:, 2])
    )
    assert not losses[1].requires_grad and extra is None  # ESMM has no CVR loss of its own (Eq. 5)
    torch.testing.assert_close(torch.sigmoid(logits[:, 2]), torch.sigmoid(logits[:, 0]) * torch.sigmoid(logits[:, 1]))


def test_escm2_ipw_risk_by_hand(funnel):
    seed_everything(0)
    model = build_model("escm2", funnel.features, funnel.tasks, tower=(8,), risk_weight=1.0, min_propensity=0.05)
    batch, labels = funnel.train.rows(torch.arange(64))
    losses, _ = model.training_loss(batch, labels, None)
    logits = model(batch)
    clicked = labels[:, 0] > 0
    propensity = torch.sigmoid(logits[:, 0]).clamp_min(0.05)
    errors = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[clicked, 1], labels[clicked, 1], reduction="none"
    )
    torch.testing.assert_close(losses[1], (errors / propensity[clicked]).sum() / len(labels))
    with pytest.raises(ValueError, match="variant must be 'ipw' or 'dr'"):
        build_model("escm2", funnel.features, funnel.tasks, variant="x")


def test_aitm_calibrator_and_its_cvr(funnel):
    seed_everything(0)
    model = build_model("aitm", funnel.features, funnel.tasks, tower=(8,), calibrator=1.0)
    batch, labels = funnel.train.rows(torch.arange(64))
    losses, calibration = model.training_loss(batch, labels, None)
    click, purchase = model.click_purchase(batch)
    expected = (torch.sigmoid(purchase) - torch.sigmoid(click)).clamp_min(0).mean()
    torch.testing.assert_close(calibration, expected)
    probs = torch.sigmoid(model(batch))
    torch.testing.assert_close(
        probs[:, 1], (torch.sigmoid(purchase) / torch.sigmoid(click)).clamp_max(1 - 1e-7), rtol=1e-4, atol=1e-6
    )
    with pytest.raises(ValueError, match="funnel's tasks"):
        build_model("aitm", funnel.features, ("ctr", "ctcvr"))


@pytest.mark.parametrize(
    "name,weighting",
    [("esmm", "ew"), ("escm2", "ew"), ("aitm", "ew"), ("mmoe", "ew"), ("esmm", "mgda"), ("shared_bottom", "upgrad")],
)
def test_funnel_models_learn_the_planted_signal_in_memory(funnel, name, weighting):
    seed_everything(0)
    options = (
        {"expert": (16,), "tower": (8,)}
        if name == "mmoe"
        else {"bottom": (16,), "tower": (8,)}
        if name == "shared_bottom"
        else {"tower": (16,)}
    )
    model = build_model(name, funnel.features, funnel.tasks, **options)
    result = fit(
        model, funnel, TrainConfig(epochs=4, batch_size=256, lr=5e-3, quiet=True, device="cpu", weighting=weighting)
    )
    scores = evaluate(result.model, funnel.test, funnel.tasks)
    assert scores["ctr"]["auc"] > 0.6 and scores["ctcvr"]["auc"] > 0.6, scores
    assert math.isfinite(scores["cvr"]["auc"])  # scored on the clicked impressions
    assert "train_loss_cvr" in result.history


def test_streamed_training_runs_the_same_loop_and_resumes_exactly(funnel, tmp_path):
    data = load_aliccp(funnel.source, in_memory=False)
    assert hasattr(data.train, "batches") and len(data.train) == len(funnel.train)
    config = dict(batch_size=256, lr=5e-3, quiet=True, device="cpu", patience=0)
    seed_everything(0)
    straight = fit(build_model("esmm", data.features, data.tasks, tower=(8,)), data, TrainConfig(epochs=3, **config))
    seed_everything(0)
    fit(
        build_model("esmm", data.features, data.tasks, tower=(8,)),
        data,
        TrainConfig(epochs=1, **config),
        checkpoint=tmp_path / "run.pt",
    )
    resumed = fit(
        build_model("esmm", data.features, data.tasks, tower=(8,)),
        data,
        TrainConfig(epochs=3, **config),
        checkpoint=tmp_path / "run.pt",
        resume=True,
    )
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    scores = evaluate(straight.model, data.test, data.tasks)
    assert scores["ctr"]["auc"] > 0.6


def test_the_command_line_trains_a_funnel_model_on_prepared_ali_ccp(funnel, tmp_path, monkeypatch):
    import json
    import shutil

    from mtlab.cli import main

    shutil.copytree(funnel.source, tmp_path / "data" / "ali-ccp")
    monkeypatch.setenv("MTLAB_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "esmm.json"
    assert main(
        [
            "train",
            "--data",
            "ali-ccp",
            "--model",
            "esmm",
            "--tasks",
            "ctr,cvr,ctcvr",
            "--profile",
            "quick",
            "--seed",
            "0",
            "--device",
            "cpu",
            "--json",
            str(out),
        ]
    ) in (0, None)
    result = json.loads(out.read_text())
    assert set(result["test"]) == {"ctr", "cvr", "ctcvr"} and result["test"]["ctr"]["auc"] > 0.5


def test_table2_takes_the_papers_ali_ccp_settings_and_compares_with_its_column(funnel):
    from mtlab.experiments import beside_paper, paper_settings
    from mtlab.experiments.compare import compare_models
    from mtlab.experiments.table2 import TABLE2_TASKS

    options, overrides = paper_settings("ali-ccp", ["single_task", "mmoe", "mpt_rec"])
    assert options["single_task"] == {"emb_dim": 64, "bottom": (128, 64)}
    assert options["mmoe"] == options["mpt_rec"] == {"emb_dim": 64, "expert": (128, 64)} and overrides == {"lr": 1e-4}
    assert paper_settings("census-income", ["mmoe"]) == ({}, {})
    data = funnel.select_tasks(list(TABLE2_TASKS["ali-ccp"]))
    profile = get_profile("quick", seeds=[0])
    results, _ = compare_models(data, ["single_task", "mmoe"], profile, options, quiet=True, epochs=1, **overrides)
    table = beside_paper(results, "ali-ccp")
    assert set(table["task"]) == {"ctr", "cvr"} and table["paper_auc"].notna().all()
    assert table.set_index(["model", "task"]).loc[("mmoe", "cvr"), "paper_auc"] == 0.5968


def test_a_new_task_from_the_scenario_field_leaves_the_inputs_and_runs_table3(funnel):
    from mtlab.experiments.new_task_tables import (
        negative_transfer_from_table3,
        new_task_settings,
        new_task_table,
        summarize_new_task,
    )

    data3 = funnel.select_tasks(["ctr", "cvr"]).task_from_column("f301", "scenario")
    assert data3.tasks == ("ctr", "cvr", "scenario") and "f301" not in data3.features.cat_names
    assert data3.features.n_cat == funnel.features.n_cat - 1 and data3.train.cat.shape[1] == data3.features.n_cat
    scenario = data3.train.labels[:, 2]
    assert 0 < scenario.mean() < 1 and not scenario.isnan().any()
    table = new_task_table(
        data3,
        get_profile("quick", seeds=[0]),
        models=("mpt_rec",),
        include_maml=False,
        model_options={"mpt_rec": {"expert": (16,), "tower": (8,)}},
        epochs=1,
    )
    summary = summarize_new_task(table, "ali-ccp")
    assert summary.loc[0, "paper_t3_auc"] == 0.6968 and summary.loc[0, "params % of full"] > 0
    assert set(negative_transfer_from_table3(table, "scenario", ("ctr", "cvr"))["task"]) == {"ctr", "cvr"}
    options, overrides = new_task_settings("ali-ccp", beta_cls=0.2)
    assert options["mpt_rec"] == {"emb_dim": 64, "expert": (128, 64), "beta_cls": 0.2} and overrides == {"lr": 1e-4}
    assert new_task_settings("census-income", beta_cls=0.1) == ({"mpt_rec": {"beta_cls": 0.1}}, {})
