"""New tasks on a frozen model (MPT-Rec Sec. 4.3): fine-tuning schemes, prompt tuning, MAML."""

import pytest
import torch
from torch import nn

from mtlab.data import FeatureSpec, make_synthetic
from mtlab.experiments import get_profile
from mtlab.experiments.new_task_tables import load_new_task_data, new_task_table, summarize_new_task
from mtlab.models import build_model
from mtlab.models.maml import inner_step
from mtlab.models.new_task_heads import PromptHead, attach_new_task
from mtlab.train import TrainConfig, count_parameters, evaluate, predict, seed_everything
from mtlab.train.new_task_protocols import fine_tune, maml, pretrain

SMALL = {
    "shared_bottom": dict(bottom=(32, 16), tower=(8,)),
    "mmoe": dict(expert=(32, 16), tower=(8,)),
    "ple": dict(expert=(32, 16), tower=(8,)),
    "mpt_rec": dict(expert=(32, 16), tower=(8,)),
}
CONFIG = TrainConfig(epochs=3, batch_size=128, quiet=True, device="cpu")


@pytest.fixture(scope="module")
def three_tasks():
    return make_synthetic(n_samples=3000, n_tasks=3, rho=0.6, dim=12, n_cat=3, seed=1)


@pytest.mark.parametrize("name", ["shared_bottom", "mmoe", "ple", "mpt_rec"])
def test_fine_tuning_leaves_existing_tasks_bit_identical(name, three_tasks):
    data2 = three_tasks.select_tasks(three_tasks.tasks[:2])
    base, _ = pretrain(name, data2, CONFIG, **SMALL[name])
    before = predict(base, three_tasks.test)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    tuned, result = fine_tune(base, three_tasks, CONFIG)
    after = predict(tuned, three_tasks.test)
    assert (after[:, :2] == before).all()  # bit-identical, not merely close
    for k, v in base.state_dict().items():
        assert torch.equal(v, state[k]), k  # no parameter, buffer or running statistic moved
    trainable = {n for n, p in tuned.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    assert count_parameters(tuned) == sum(p.numel() for p in tuned.head.parameters() if p.requires_grad)
    assert evaluate(tuned, three_tasks.test, three_tasks.tasks)["t3"]["auc"] > 0.7
    assert result.history["train_loss_t1"].eq(0).all()  # only the new task's loss trains


def test_prompt_tuning_trains_at_most_ten_percent_of_full_training():
    # Census-Income's shape with T3 = education out: 31 categorical columns × 4 + 7 numeric = 131
    # inputs (the paper reports 127), experts [256, 128], towers [64, 32]
    from mtlab.data.census import CATEGORICAL, NUMERIC

    cats = [c for c in CATEGORICAL if c not in ("marital_status", "education")]
    features = FeatureSpec(tuple(cats), (10,) * len(cats), NUMERIC)
    base = build_model("mpt_rec", features, ("income", "marital"))
    full = build_model("mpt_rec", features, ("income", "marital", "education"))
    assert base.embedding.out_dim == 131
    tuned = attach_new_task(base, "education")
    assert count_parameters(tuned) <= 0.10 * count_parameters(full)


def hand_case():
    seed_everything(0)
    data = make_synthetic(n_samples=200, n_tasks=2, dim=6, n_cat=1, seed=0)
    base = build_model("mpt_rec", data.features, data.tasks, expert=(8, 4), tower=(4,))
    with torch.no_grad():
        base.task_embedding.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]))
    return data, base


def test_prompt_weight_variants_reduce_to_their_formulas():
    data, base = hand_case()
    x = torch.randn(5, base.embedding.out_dim)
    old = base.task_embedding.weight.detach()
    fixed = PromptHead(base, prompt_weights="fixed")
    torch.testing.assert_close(fixed.task_weights(x, old), torch.full((5, 2), 0.5))  # FW: 1/K
    tes = PromptHead(base, prompt_weights="task")
    with torch.no_grad():
        tes.task_embedding.copy_(torch.tensor([1.0, 1.0, 0.0, 0.0]))
    expected = torch.softmax(torch.tensor([1.0, 2.0]), 0)  # softmax(e_new · e_k) = softmax([1, 2])
    torch.testing.assert_close(tes.task_weights(x, old), expected.expand(5, 2))
    inst = PromptHead(base, prompt_weights="instance", temperature=2.0)
    h = inst.projection(x)
    torch.testing.assert_close(inst.task_weights(x, old), torch.softmax(h @ old.T / 2.0, dim=1))
    assert not any(p.requires_grad for p in tes.projection.parameters())  # unused, not counted


def test_prompt_head_combines_as_eq_12_to_14():
    data, base = hand_case()
    head = PromptHead(base, prompt_weights="fixed", tower=(4,))
    batch, _ = data.train.rows(torch.arange(3))
    x = base.embedding(batch)
    shared, specific = base.shared_repr(batch), base.specific_repr(batch)
    aware = specific.mean(0) * head.task_embedding
    g = torch.softmax(x @ head.gate.proj.weight[0], dim=1)
    expected = head.tower(g[:, :1] * aware + g[:, 1:] * shared)[:, 0]
    torch.testing.assert_close(head(base, batch), expected)
    for use, z in (("shared", shared), ("specific", aware)):
        head.use = use
        torch.testing.assert_close(head(base, batch), head.tower(z)[:, 0])


def test_maml_inner_step_matches_hand_computation():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([0.5, -1.0]))

        def forward(self, batch):
            return (batch.num @ self.w)[:, None]

    from mtlab.data import Batch

    model = Tiny()
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    y = torch.tensor([1.0, 0.0])
    new = inner_step(model, dict(model.named_parameters()), Batch(torch.zeros(2, 0, dtype=torch.long), x), y, lr=0.1)
    # BCE gradient by hand: mean over rows of (σ(xᵀw) − y) · x
    p = torch.sigmoid(x @ torch.tensor([0.5, -1.0]))
    grad = ((p - y)[:, None] * x).mean(0)
    torch.testing.assert_close(new["w"], torch.tensor([0.5, -1.0]) - 0.1 * grad)
    assert new["w"].requires_grad and new["w"].grad_fn is not None  # second-order graph kept


def test_maml_meta_trains_then_adapts(three_tasks):
    model, result = maml(three_tasks, CONFIG, meta_epochs=1, bottom=(16,), tower=(8,))
    assert model.tasks == ("t3",)
    assert evaluate(model, three_tasks.select_tasks(["t3"]).test, ["t3"])["t3"]["auc"] > 0.7


def test_new_task_column_is_out_of_the_features_at_every_stage(census_root, monkeypatch):
    from mtlab.data import census

    monkeypatch.setattr(
        census,
        "require_files",
        lambda dataset, root=None: {
            n: census_root / "census-income" / n for n in ("census_income_train.csv", "census_income_test.csv")
        },
    )
    profile = get_profile("quick", seeds=[0], device="cpu", subsample=1)
    data3 = load_new_task_data("education", profile)
    assert data3.tasks == ("income", "marital", "education")
    stages = [data3, data3.select_tasks(data3.tasks[:2]), data3.select_tasks(["education"])]
    for stage in stages:
        assert "education" not in stage.features.cat_names and "marital_status" not in stage.features.cat_names
    with pytest.raises(ValueError, match="must differ"):
        load_new_task_data("income", profile)


def test_new_task_table_on_synthetic(three_tasks):
    profile = get_profile("quick", seeds=[0], device="cpu")
    table = new_task_table(
        three_tasks,
        profile,
        models=["shared_bottom", "mpt_rec"],
        model_options=SMALL,
        head_options={m: {"tower": (8,)} for m in SMALL},
        epochs=2,
        batch_size=128,
    )
    assert list(table["scheme"]) == ["Shared Bottom*", "MPT-Rec", "MAML"]
    tuned = table[table.model != "maml"]
    assert (tuned["t1_after"] == tuned["t1_before"]).all() and (tuned["t2_after"] == tuned["t2_before"]).all()
    assert (tuned["params_pct_of_full"] == 100 * tuned["trainable_params"] / tuned["full_params"]).all()
    assert (tuned["train_flops_per_sample"] < tuned["full_train_flops_per_sample"]).all()  # no backward into the base
    summary = summarize_new_task(table)
    assert list(summary["scheme"]) == ["Shared Bottom*", "MPT-Rec", "MAML"] and "paper_t3_auc" in summary


def test_separation_measures_on_hand_made_clusters():
    import numpy as np

    from mtlab.experiments.ablations import separation

    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0, 0, 0], [5, 0, 0, 0], [0, 5, 0, 0]])  # shared at the origin
    apart = np.concatenate([c + rng.normal(0, 0.1, (60, 4)) for c in centres])
    kinds = np.repeat(["shared", "specific: a", "specific: b"], 60)
    far = separation(apart, kinds)
    assert far["silhouette"] > 0.9 and far["probe_balanced_accuracy"] == 1.0
    mixed = separation(rng.normal(0, 1, (180, 4)), kinds)
    assert abs(mixed["silhouette"]) < 0.1 and mixed["probe_balanced_accuracy"] < 0.7


@pytest.mark.parametrize("name", ["mpt_rec", "ple", "stem"])
def test_representations_for_tsne(name, three_tasks):
    from mtlab.experiments.ablations import representations

    data2 = three_tasks.select_tasks(three_tasks.tasks[:2])
    model = build_model(name, data2.features, data2.tasks, **SMALL.get(name, dict(expert=(32, 16), tower=(8,))))
    vectors, kinds = representations(model, data2, n=50)
    assert vectors.shape == (150, 16) and list(dict.fromkeys(kinds)) == ["shared", "specific: t1", "specific: t2"]


def test_new_task_table_resumes_from_results_file(three_tasks, tmp_path, monkeypatch):
    import mtlab.experiments.new_task_tables as module

    calls = []
    real = module.pretrain_seeds
    monkeypatch.setattr(module, "pretrain_seeds", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    profile = get_profile("quick", seeds=[0], device="cpu")
    path = tmp_path / "table3.csv"
    options = dict(models=["shared_bottom"], include_maml=False, model_options=SMALL, epochs=1, batch_size=256)
    first = new_task_table(three_tasks, profile, results_path=path, **options)
    assert calls == ["shared_bottom", "shared_bottom"]  # the two-task model and full training
    again = new_task_table(three_tasks, profile, results_path=path, **options)
    assert len(calls) == 2 and again["t3_auc"].tolist() == pytest.approx(first["t3_auc"].tolist())


def test_negative_transfer_summary_tests_the_change_against_zero():
    import pandas as pd

    from mtlab.experiments.new_task_tables import summarize_negative_transfer

    changes = {"shared_bottom": (1e-3, 2e-3, 3e-3), "mpt_rec": (-1e-3, 1e-3, 0.0)}  # SB: t = 2√3, df = 2
    rows = [
        ("education", "income", model, seed, 0.9, 0.9 + d, d)
        for model, deltas in changes.items()
        for seed, d in enumerate(deltas)
    ]
    table = summarize_negative_transfer(
        pd.DataFrame(rows, columns=["new_task", "task", "model", "seed", "auc_two_tasks", "auc_with_new_task", "delta"])
    )
    sb, mpt = (table[table["model"] == m].iloc[0] for m in ("shared_bottom", "mpt_rec"))
    # Two-sided p of Student's t with 2 degrees of freedom: 1 - |t| / sqrt(t² + 2).
    t = 2e-3 / (1e-3 / 3**0.5)
    assert sb["p (paired t)"] == pytest.approx(1 - t / (t * t + 2) ** 0.5)
    assert not sb["significant"] and sb["same_sign"]  # the paper's sign for SB is "+"
    assert mpt["p (paired t)"] == pytest.approx(1.0) and pd.isna(mpt["same_sign"])  # not in the paper's table
