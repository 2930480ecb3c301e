"""The multi-task model zoo of the MPT-Rec comparison (Table 2)."""

import pytest
import torch

from mtlab.experiments import get_profile, train_one
from mtlab.models import MODELS, MultiTaskModel, Step, build_model, task_losses
from mtlab.models.funnel import FUNNEL_MODELS
from mtlab.models.mpt_rec import dann_strength, reverse_gradient
from mtlab.train import TrainConfig, evaluate, fit, seed_everything
from mtlab.train.pruning import find_task_masks, prune_by_magnitude

TABULAR = sorted(n for n, c in MODELS.items() if issubclass(c, MultiTaskModel) and n not in FUNNEL_MODELS)

SMALL = dict(bottom=(32, 16), tower=(8,))
SMALL_EXPERT = dict(expert=(32, 16), tower=(8,))
OPTIONS = {
    "single_task": SMALL,
    "shared_bottom": SMALL,
    "mmoe": SMALL_EXPERT,
    "ple": SMALL_EXPERT,
    "stem": SMALL_EXPERT,
    "mpt_rec": SMALL_EXPERT,
    "sparse_sharing": {**SMALL, "prune_rounds": 5, "prune_min_sparsity": 0.3},
    "csrec": {**SMALL, "prune_rounds": 5, "prune_min_sparsity": 0.3},
}


def step_for(batch_rows, n=4000, epoch=0, progress=0.5):
    return Step(batch_rows, n, epoch, progress)


@pytest.mark.parametrize("name", TABULAR)
def test_every_model_beats_label_rate_baseline(name, synthetic):
    result = train_one(
        name, synthetic, get_profile("quick", device="cpu"), 0, OPTIONS[name], epochs=6, batch_size=128, quiet=True
    )
    # labels are 50 % positive: the label-rate baseline has AUC 0.5 and log loss ln 2 ≈ 0.693
    for task, metrics in result["test"].items():
        assert metrics["auc"] > 0.85, (name, task, metrics)
        assert metrics["logloss"] < 0.55, (name, task, metrics)


@pytest.mark.parametrize("name", TABULAR)
def test_training_loss_reaches_every_parameter(name, synthetic):
    seed_everything(0)
    model = build_model(name, synthetic.features, synthetic.tasks, **OPTIONS[name])
    rows = torch.arange(64)
    batch, labels = synthetic.train.rows(rows)
    losses, extra = model.training_loss(batch, labels, step_for(rows, progress=0.5))
    (losses.sum() + (extra if extra is not None else 0)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_gradient_reversal_flips_sign_with_strength():
    x = torch.randn(5, 3, requires_grad=True)
    reverse_gradient(x, 0.3).mul(torch.arange(3.0)).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * torch.arange(3.0).expand(5, 3))
    assert dann_strength(0.0) == 0.0 and dann_strength(1.0) == pytest.approx(0.99991, abs=1e-5)
    assert dann_strength(0.25) == pytest.approx(2 / (1 + torch.exp(torch.tensor(-2.5)).item()) - 1)


@pytest.mark.parametrize("progress", [0.1, 0.6])
def test_mpt_rec_classifier_gradient_is_reversed_with_scheduled_strength(synthetic, progress):
    seed_everything(0)
    model = build_model("mpt_rec", synthetic.features, synthetic.tasks, beta_gen=0.0, beta_cls=1.0, **SMALL_EXPERT)
    rows = torch.arange(128)
    batch, labels = synthetic.train.rows(rows)
    _, extra = model.training_loss(batch, labels, step_for(rows, progress=progress))
    params = list(model.shared_expert.parameters())
    reversed_grads = torch.autograd.grad(extra, params)
    plain = torch.nn.functional.cross_entropy(
        model.task_classifier(model.shared_repr(batch)), model.task_assignment[rows]
    )
    plain_grads = torch.autograd.grad(plain, params)
    for r, p in zip(reversed_grads, plain_grads):
        torch.testing.assert_close(r, -dann_strength(progress) * p)


def test_mpt_rec_task_assignment_em_step(synthetic):
    seed_everything(0)
    model = build_model("mpt_rec", synthetic.features, synthetic.tasks, **SMALL_EXPERT)
    rows = torch.arange(50)
    batch, labels = synthetic.train.rows(rows)
    model.training_loss(batch, labels, step_for(rows, epoch=0))
    first = model.task_assignment.clone()
    assert first.shape == (4000,) and set(first.unique().tolist()) <= {0, 1}
    model.training_loss(batch, labels, step_for(rows, epoch=1))  # a refresh epoch: argmin of BCE
    per_row = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), labels, reduction="none")
    assert torch.equal(model.task_assignment[rows], per_row.argmin(1))
    assert torch.equal(model.task_assignment[50:], first[50:])  # rows not visited keep their label


def test_mpt_rec_without_adversarial_term_is_the_plain_fused_model(synthetic):
    rows = torch.arange(64)
    batch, labels = synthetic.train.rows(rows)
    for options in ({"adversarial": False}, {"beta_gen": 0.0, "beta_cls": 0.0}):
        seed_everything(0)
        model = build_model("mpt_rec", synthetic.features, synthetic.tasks, **SMALL_EXPERT, **options)
        losses, extra = model.training_loss(batch, labels, step_for(rows))
        torch.testing.assert_close(losses, task_losses(model(batch), labels))
        assert extra is None or float(extra.detach()) == 0.0
    seed_everything(0)
    on = build_model("mpt_rec", synthetic.features, synthetic.tasks, **SMALL_EXPERT)
    assert on.training_loss(batch, labels, step_for(rows))[1] > 0


def test_mpt_rec_representations(synthetic):
    model = build_model("mpt_rec", synthetic.features, synthetic.tasks, **SMALL_EXPERT)
    batch, _ = synthetic.train.rows(torch.arange(10))
    assert model.shared_repr(batch).shape == (10, 16)
    assert model.specific_repr(batch).shape == (2, 10, 16)


def test_stem_task_loss_sends_no_gradient_to_other_tasks_experts_or_embeddings(synthetic):
    seed_everything(0)
    model = build_model("stem", synthetic.features, synthetic.tasks, n_specific=2, **SMALL_EXPERT)
    batch, labels = synthetic.train.rows(torch.arange(64))
    task_losses(model(batch), labels)[0].backward()  # task t1 only
    d = model.emb_dim
    assert model.embedding.shared_table.weight.grad.abs().sum() > 0  # the shared copy: a table of its own
    table = model.embedding.table.weight.grad.view(-1, 2, d)  # task copies: t1, t2
    assert table[:, 0].abs().sum() > 0
    assert table[:, 1].abs().sum() == 0  # t2's embedding
    first = model.specific.net[0].weight.grad  # [T·m, in, out]: experts 0, 1 are t1's, 2, 3 are t2's
    assert first[:2].abs().sum() > 0 and first[2:].abs().sum() == 0
    # but t1's gate does read t2's experts (forward): changing them changes t1's prediction
    with torch.no_grad():
        before = model(batch)[:, 0].clone()
        model.specific.net[0].weight[2:] += 0.5
        assert not torch.allclose(model(batch)[:, 0], before)


def test_ple_levels(synthetic):
    for levels in (1, 2, 3):
        model = build_model(
            "ple", synthetic.features, synthetic.tasks, n_levels=levels, n_specific=2, n_shared=2, **SMALL_EXPERT
        )
        assert model(synthetic.train.rows(torch.arange(7))[0]).shape == (7, 2)
        assert (model.levels[-1].shared_gate is None) and all(lv.shared_gate is not None for lv in model.levels[:-1])
    with pytest.raises(ValueError, match="at least 1"):
        build_model("ple", synthetic.features, synthetic.tasks, n_levels=0)


def test_prune_by_magnitude_removes_smallest_alive():
    weight = torch.tensor([[0.1, -0.5], [2.0, -0.05]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    new = prune_by_magnitude(weight, mask, 0.34)  # 1 of the 3 alive weights: −0.05
    assert new.tolist() == [[1.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize("name", ["sparse_sharing", "csrec"])
def test_pruned_weights_stay_exactly_zero_through_training(name, synthetic):
    seed_everything(0)
    model = build_model(name, synthetic.features, synthetic.tasks, **OPTIONS[name])
    config = TrainConfig(epochs=3, batch_size=256, quiet=True, device="cpu", l2_dense=1e-3)
    log = find_task_masks(model, synthetic, config)
    assert (model.sparsity() >= 0.3).all() and log["chosen"].sum() == 2
    masks = [layer.mask.clone() for layer in model.masked_layers()]
    nobody = [m.amax(0) == 0 for m in masks]
    assert any(n.any() for n in nobody)
    fit(model, synthetic, config)
    for layer, mask, unused in zip(model.masked_layers(), masks, nobody):
        assert torch.equal(layer.mask, mask)  # masks do not move
        assert (layer.weight[unused] == 0).all()  # weights no task uses are exactly zero
        effective = layer.weight * layer.mask
        assert (effective[mask == 0] == 0).all()
    assert all(m["auc"] > 0.85 for m in evaluate(model, synthetic.test, synthetic.tasks).values())


def test_csrec_contrastive_term(synthetic):
    seed_everything(0)
    model = build_model("csrec", synthetic.features, synthetic.tasks, **OPTIONS["csrec"])
    for layer in model.masked_layers():  # hand-made masks: task 0 keeps the first half of the inputs
        layer.mask[0, : layer.mask.shape[1] // 2] = 0
    contrast = model.contrastive_masks()
    for layer, c in zip(model.masked_layers(), contrast):
        union = torch.maximum(layer.mask[0], layer.mask[1])
        torch.testing.assert_close(c[0], union - layer.mask[0] * layer.mask[1])
    rows = torch.arange(64)
    batch, labels = synthetic.train.rows(rows)
    losses, extra = model.training_loss(batch, labels, step_for(rows))
    assert extra < 0  # − Σ_t L_t(W ⊙ C)
    extra.backward()
    untouched = [
        *model.towers.parameters(),
        *model.embedding.parameters(),
        *(layer.bias for layer in model.masked_layers()),
    ]
    assert all(p.grad is None for p in untouched)  # the contrastive term reaches the masked weights W only
    w = model.masked_layers()[0]
    assert (w.weight.grad[contrast[0][0] == 0] == 0).all() and w.weight.grad.abs().sum() > 0
