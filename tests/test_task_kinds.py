"""Task kinds (mtlab.data.task_kinds): binary, regression and multi-class tasks through every model,
strategy and table that takes them; the models that cannot refuse them."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mtlab.data import make_synthetic
from mtlab.data.task_kinds import TaskKind, outputs, task_losses
from mtlab.experiments.compare import delta_m_table, summary_table
from mtlab.models import build_model
from mtlab.models.layers import Towers
from mtlab.train import TrainConfig, fit
from mtlab.train.metrics import evaluate
from mtlab.weighting import STRATEGIES

MIXED_MODELS = ["shared_bottom", "mmoe", "ple", "stem", "single_task", "sparse_sharing"]


def mixed_data(n_samples=3000, seed=0):
    """Synthetic data whose t2 is a regression target (mean 5, std 3) and t3 a 3-class task, both
    planted in the numeric features."""
    data = make_synthetic(n_samples=n_samples, n_tasks=3, seed=seed)

    def convert(split):
        labels = split.labels.clone()
        labels[:, 1] = split.num[:, :2].sum(1)  # standardized: target = 5 + 3 · this
        labels[:, 2] = ((split.num[:, 2] > 0.5).long() + (split.num[:, 2] > -0.5).long()).float()
        labels[::17, 1] = float("nan")  # rows without a label stay out of the loss and the metrics
        return replace(split, labels=labels)

    kinds = {"t2": TaskKind("regression", mean=5.0, std=3.0), "t3": TaskKind("multiclass", classes=("lo", "mid", "hi"))}
    return replace(
        data,
        features=replace(data.features, targets=kinds),
        train=convert(data.train),
        valid=convert(data.valid),
        test=convert(data.test),
    )


@pytest.fixture(scope="module")
def mixed():
    return mixed_data()


def test_task_losses_of_each_kind():
    logits = torch.randn(6, 5)
    labels = torch.tensor(
        [[1, 0.3, 0], [0, -1.2, 2], [1, float("nan"), 1], [0, 2.0, 2], [float("nan"), 0.1, 0], [1, 0.0, 1]]
    )
    kinds = (TaskKind(), TaskKind("regression", mean=2, std=4), TaskKind("multiclass", classes=("a", "b", "c")))
    got = task_losses(logits, labels, kinds)
    y0 = labels[:, 0]
    keep = ~y0.isnan()
    assert torch.allclose(got[0], F.binary_cross_entropy_with_logits(logits[keep, 0], y0[keep]))
    keep = ~labels[:, 1].isnan()
    assert torch.allclose(got[1], ((logits[keep, 1] - labels[keep, 1]) ** 2).mean())
    assert torch.allclose(got[2], F.cross_entropy(logits[:, 2:5], labels[:, 2].long()))
    # binary only: one BCE over [B, T], the plain mean to the bit
    binary = torch.randint(0, 2, (6, 3)).float()
    assert torch.equal(
        task_losses(logits[:, :3], binary),
        F.binary_cross_entropy_with_logits(logits[:, :3], binary, reduction="none").mean(0),
    )
    # predictions: probabilities, the target in its units, class probabilities summing to one
    out = outputs(logits, kinds)
    assert out.dtype == torch.float64  # a value in the target's units is float64 (the probabilities stay exact)
    assert torch.equal(out[:, 0], torch.sigmoid(logits[:, 0]).double())
    assert torch.allclose(out[:, 1], logits[:, 1].double() * 4 + 2)
    assert torch.allclose(out[:, 2:].sum(1), torch.ones(6, dtype=torch.float64))


def test_towers_give_each_task_its_width_and_binary_towers_are_unchanged():
    torch.manual_seed(0)
    plain = Towers(3, 8, (4,))
    torch.manual_seed(0)
    ones = Towers(3, 8, (4,), widths=(1, 1, 1))
    x = torch.randn(5, 8)
    assert torch.equal(plain(x), ones(x))
    wide = Towers(3, 8, (4,), widths=(1, 4, 1))
    out = wide(x)
    assert out.shape == (5, 6)
    full = wide.head(wide.body(x))  # [T, B, 4]
    assert (
        torch.equal(out[:, 0], full[0, :, 0])
        and torch.equal(out[:, 1:5], full[1])
        and torch.equal(out[:, 5], full[2, :, 0])
    )


@pytest.mark.parametrize("model", MIXED_MODELS)
def test_every_tabular_architecture_learns_mixed_kinds(mixed, model):
    options = {"prune_rounds": 1} if model == "sparse_sharing" else {}
    net = (
        build_model(model, mixed.features, mixed.tasks, expert=(32,), tower=(16,), **options)
        if model
        in (
            "mmoe",
            "ple",
            "stem",
        )
        else build_model(model, mixed.features, mixed.tasks, bottom=(32,), tower=(16,), **options)
    )
    result = fit(net, mixed, TrainConfig(epochs=8, lr=1e-2, quiet=True, device="cpu", seed=0))
    assert result.monitor == "valid_score_mean"
    test = evaluate(net, mixed.test, mixed.tasks)
    assert set(test["t1"]) == {"auc", "logloss", "score"}
    assert set(test["t2"]) == {"rmse", "mae", "score"}
    assert set(test["t3"]) == {"accuracy", "macro_f1", "logloss", "score"}
    labels = mixed.test.labels
    target = labels[:, 1][~labels[:, 1].isnan()] * 3 + 5
    assert test["t2"]["rmse"] < 0.5 * float(target.std())  # in the target's units: it learned the sum
    majority = float(torch.bincount(labels[:, 2].long()).max()) / len(labels)
    assert test["t3"]["accuracy"] > majority + 0.2
    assert test["t1"]["auc"] > 0.8


def test_rmse_is_in_the_target_units(mixed):
    net = build_model("shared_bottom", mixed.features, mixed.tasks, bottom=(16,), tower=(8,))
    from mtlab.train.metrics import labelled_predictions

    labels, predictions = labelled_predictions(net, mixed.test)
    known = ~np.isnan(labels[:, 1])
    expected = np.sqrt(np.mean((predictions[known, 1] - (labels[known, 1] * 3 + 5)) ** 2))
    assert evaluate(net, mixed.test, mixed.tasks)["t2"]["rmse"] == pytest.approx(expected, rel=1e-6)
    assert predictions.shape == (len(labels), 1 + 1 + 3)


@pytest.mark.parametrize("model", ["esmm", "mpt_rec", "csrec"])
def test_models_for_binary_tasks_refuse_other_kinds_naming_why(mixed, model):
    from mtlab.models import MODELS
    from mtlab.models.base import trains_on

    net = build_model(model, mixed.features, mixed.tasks) if model != "esmm" else None
    if net is not None:
        with pytest.raises(ValueError, match=r"trains binary tasks only, not t2 \(regression\), t3 \(multiclass\)"):
            fit(net, mixed, TrainConfig(epochs=1, quiet=True, device="cpu"))
    why = trains_on(MODELS[model], "tabular", ("ctr", "cvr", "ctcvr"), ["binary", "regression", "binary"])
    assert "binary tasks only" in why and "mmoe" in why


def test_every_strategy_runs_on_mixed_kinds():
    small = mixed_data(n_samples=600, seed=1)
    for name in sorted(STRATEGIES):
        net = build_model("mmoe", small.features, small.tasks, expert=(8,), tower=(4,))
        result = fit(net, small, TrainConfig(epochs=1, quiet=True, device="cpu", weighting=name, batch_size=128))
        row = result.history.iloc[-1]
        assert np.isfinite(row["train_loss"]) and np.isfinite(row["valid_score_mean"]), name


def test_seeds_trained_as_one_batched_model_match_separate_runs_on_mixed_kinds(mixed):
    from mtlab.train.vectorized import fit_members

    configs = [TrainConfig(epochs=2, quiet=True, device="cpu", seed=s, batch_size=256) for s in (0, 1)]
    models = []
    for s in (0, 1):
        torch.manual_seed(s)
        models.append(build_model("mmoe", mixed.features, mixed.tasks, expert=(16,), tower=(8,)))
    separate = []
    for s in (0, 1):
        torch.manual_seed(s)
        net = build_model("mmoe", mixed.features, mixed.tasks, expert=(16,), tower=(8,))
        separate.append(fit(net, mixed, configs[s]).history)
    together = fit_members(models, mixed, configs)
    for s in (0, 1):
        a, b = separate[s]["valid_score_mean"].to_numpy(), together[s].history["valid_score_mean"].to_numpy()
        assert np.allclose(a, b, atol=1e-4)


def test_summary_and_delta_m_take_each_metric_with_its_sign():
    rows = []
    for seed in range(3):
        for model, auc, rmse in (("single_task", 0.80, 10.0), ("mmoe", 0.80, 8.0)):
            rows.append({"model": model, "seed": seed, "task": "a", "auc": auc + 0.001 * seed, "rmse": np.nan})
            rows.append({"model": model, "seed": seed, "task": "b", "auc": np.nan, "rmse": rmse + 0.01 * seed})
    results = pd.DataFrame(rows)
    table = summary_table(results)
    assert list(table.columns[:2]) == ["a", "b (rmse)"]
    delta = delta_m_table(results, metrics={"auc": True, "rmse": False}).set_index("model")
    # a lower RMSE is better: (10 − 8) / 10 on task b, nothing on task a → Δm = +10 %
    assert delta.loc["mmoe", "delta_m_mean"] == pytest.approx(10.0, abs=0.05)
    shown = float(table.loc["mmoe", "Δm % (mean ± std)"].split(" ± ")[0])
    assert shown == pytest.approx(delta.loc["mmoe", "delta_m_mean"], abs=0.01)


def test_census_offers_regression_and_multiclass_tasks(census_root):
    from mtlab.data import load_census

    data = load_census(tasks=("income", "weeks_worked", "marital_status", "education_level"), root=census_root)
    assert [k.kind for k in data.kinds] == ["binary", "regression", "multiclass", "multiclass"]
    assert "weeks_worked_in_year" not in data.features.num_names
    assert "marital_status" not in data.features.cat_names and "education" not in data.features.cat_names
    assert data.kinds[2].classes[0] == "Never married" and len(data.kinds[3].classes) == 5
    weeks = data.train.labels[:, 1]
    assert abs(float(weeks.mean())) < 1e-5 and abs(float(weeks.std()) - 1) < 1e-2  # standardized
    assert set(data.train.labels[:, 2].unique().tolist()) <= set(range(7))


def test_the_new_task_protocols_refuse_a_task_that_is_not_binary():
    from mtlab.experiments import get_profile
    from mtlab.experiments.new_task_tables import load_new_task_data

    with pytest.raises(ValueError, match=r"the new task 'weeks_worked' is regression; .* choose a binary one"):
        load_new_task_data("weeks_worked", get_profile("quick"))
