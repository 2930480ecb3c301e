"""Gradient-combination strategies: each against a hand-computed case, and inside the trainer."""

import itertools

import pytest
import torch
from torch import nn

from mtlab.models import build_model
from mtlab.train import TrainConfig, evaluate, fit, seed_everything
from mtlab.weighting import STRATEGIES, build_weighting
from mtlab.weighting.gradient_based import min_norm_weights


def combine(name, grads, losses=None, **options):
    g = torch.tensor(grads, dtype=torch.float64)
    return build_weighting(name, len(grads), **options).combine(
        g, torch.ones(len(g), dtype=torch.float64) if losses is None else torch.tensor(losses, dtype=torch.float64)
    )


def test_pcgrad_projection_by_hand():
    combined, _ = combine("pcgrad", [[1.0, 0.0], [-1.0, 1.0]])
    # g1 · g2 = −1 < 0: g1' = g1 + ½ g2 = [0.5, 0.5]; g2' = g2 + 1·g1 = [0, 1]
    torch.testing.assert_close(combined, torch.tensor([0.5, 1.5], dtype=torch.float64))
    no_conflict, _ = combine("pcgrad", [[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(no_conflict, torch.tensor([2.0, 1.0], dtype=torch.float64))


def test_mgda_two_task_closed_form():
    combined, alpha = combine("mgda", [[1.0, 0.0], [0.0, 2.0]])
    # α = (g2·g2 − g1·g2) / ‖g1 − g2‖² = 4 / 5
    torch.testing.assert_close(alpha, torch.tensor([0.8, 0.2], dtype=torch.float64))
    torch.testing.assert_close(combined, torch.tensor([0.8, 0.4], dtype=torch.float64))


def test_min_norm_weights_match_a_grid_search():
    torch.manual_seed(0)
    grads = torch.randn(3, 5, dtype=torch.float64)
    alpha = min_norm_weights(grads @ grads.T)
    assert alpha.sum() == pytest.approx(1.0) and (alpha >= 0).all()
    steps = torch.linspace(0, 1, 101, dtype=torch.float64)
    best = min(
        (torch.stack([a, b, 1 - a - b]) @ grads).norm().item() for a, b in itertools.product(steps, steps) if a + b <= 1
    )
    assert (alpha @ grads).norm().item() <= best + 1e-3


def test_rlw_weights_sum_to_one_and_vary():
    strategy = build_weighting("rlw", 3)
    draws = [strategy.weights(torch.ones(3), 0) for _ in range(5)]
    assert all(w.sum().item() == pytest.approx(1.0) and (w > 0).all() for w in draws)
    assert not torch.equal(draws[0], draws[1])


def test_cagrad_reduces_to_mean_at_c_zero_and_follows_its_formula():
    grads = [[1.0, 0.0], [-0.5, 1.0]]
    mean, _ = combine("cagrad", grads, c=0.0)
    torch.testing.assert_close(mean, torch.tensor([0.25, 0.5], dtype=torch.float64))
    g = torch.tensor(grads, dtype=torch.float64)
    d, w = combine("cagrad", grads, c=0.5, rescale=False)
    torch.testing.assert_close(d, w @ g)  # the weights reported are d's
    simplex = (w - 0.5) / (w.sum() - 1)  # d = g₀ + k g_w with Σ w = 1 on the simplex
    assert simplex.sum().item() == pytest.approx(1.0) and (simplex >= -1e-9).all()
    g0, gw = g.mean(0), simplex @ g
    torch.testing.assert_close(d, g0 + 0.5 * g0.norm() / gw.norm() * gw)
    assert (g @ d).min() >= (g @ g0).min() - 1e-9  # the worst task improves at least as much as under g₀


def test_imtl_g_gives_equal_projections_on_unit_gradients():
    g = torch.tensor([[3.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 2.0]], dtype=torch.float64)
    combined, alpha = build_weighting("imtl_g", 3).combine(g, torch.ones(3, dtype=torch.float64))
    units = g / g.norm(dim=1, keepdim=True)
    projections = units @ combined
    torch.testing.assert_close(projections, projections[0].expand(3))
    assert alpha.sum().item() == pytest.approx(1.0)


def test_dwa_weights_by_hand():
    dwa = build_weighting("dwa", 2, temperature=2.0)
    for epoch, losses in ((0, [1.0, 1.0]), (1, [0.5, 0.9])):
        assert torch.equal(dwa.weights(torch.tensor(losses), epoch), torch.ones(2))
    w = dwa.weights(torch.tensor([0.4, 0.8]), 2)
    ratio = torch.tensor([0.5 / 1.0, 0.9 / 1.0])
    torch.testing.assert_close(w, 2 * torch.softmax(ratio / 2.0, dim=0))


def test_uw_gradient_of_log_variance():
    uw = build_weighting("uw", 2)
    losses = torch.tensor([2.0, 0.5])
    total, _ = uw.loss(losses, 0)
    total.backward()
    s = torch.tensor([-0.5, -0.5])
    torch.testing.assert_close(uw.log_variance.grad, -losses / (2 * s.exp()) + 0.5)


def test_ew_backward_equals_plain_sum():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    build_weighting("ew", 2).backward(layer(x).pow(2).mean(0), list(layer.parameters()))
    expected = torch.autograd.grad(layer(x).pow(2).mean(0).sum(), layer.weight)[0]
    torch.testing.assert_close(layer.weight.grad, expected)


def test_gradient_combination_fills_shared_and_task_specific_grads(synthetic):
    seed_everything(0)
    model = build_model("shared_bottom", synthetic.features, synthetic.tasks, bottom=(16,), tower=(8,))
    batch, labels = synthetic.train.rows(torch.arange(64))
    losses = nn.functional.binary_cross_entropy_with_logits(model(batch), labels, reduction="none").mean(0)
    shared = model.shared[0].weight
    g = [torch.autograd.grad(losses[t], shared, retain_graph=True)[0] for t in range(2)]
    tower_grad = torch.autograd.grad(losses.sum(), model.towers.head.weight, retain_graph=True)[0]
    alpha = build_weighting("mgda", 2).backward(losses, model.shared_parameters())
    torch.testing.assert_close(shared.grad, alpha[0] * g[0] + alpha[1] * g[1])
    torch.testing.assert_close(model.towers.head.weight.grad, tower_grad)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_trains_a_model(name, synthetic):
    seed_everything(0)
    model = build_model("shared_bottom", synthetic.features, synthetic.tasks, bottom=(32, 16), tower=(8,))
    result = fit(model, synthetic, TrainConfig(epochs=4, batch_size=256, quiet=True, device="cpu", weighting=name))
    assert all(m["auc"] > 0.85 for m in evaluate(result.model, synthetic.test, synthetic.tasks).values())


def test_unknown_strategy_lists_the_available_ones(synthetic):
    with pytest.raises(ValueError, match="unknown weighting 'gradnorm2'; available: ") as err:
        build_weighting("gradnorm2", 2)
    assert all(name in str(err.value) for name in ("ew", "uw", "dwa", "rlw", "pcgrad", "mgda", "cagrad", "imtl_g"))


def test_nash_mtl_solves_the_bargaining_equation():
    combined, alpha = combine("nash_mtl", [[1.0, 0.0], [0.0, 2.0]])
    # G Gᵀ = diag(1, 4): α₁ = 1/α₁ → 1; 4 α₂ = 1/α₂ → ½; combined = [1, 1]
    torch.testing.assert_close(alpha, torch.tensor([1.0, 0.5], dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(combined, torch.tensor([1.0, 1.0], dtype=torch.float64), atol=1e-5, rtol=0)
    g = torch.tensor([[1.0, 0.5, 0.0], [-0.3, 1.0, 0.2], [0.1, 0.1, 2.0]], dtype=torch.float64)
    _, alpha = build_weighting("nash_mtl", 3).combine(g, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(g @ g.T @ alpha, 1 / alpha, atol=1e-4, rtol=1e-4)


def test_gradnorm_moves_weight_to_the_task_with_the_smaller_gradient():
    strategy = build_weighting("gradnorm", 2, alpha=0.0, lr=0.1)
    losses = torch.tensor([1.0, 1.0])
    assert torch.equal(strategy.private_scale(losses), torch.ones(2))  # sets L(0) at the first step
    grads = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    _, used = strategy.combine(grads, losses)
    assert torch.equal(used, torch.ones(2))  # this step used the current weights
    w = strategy.task_weights
    assert w.sum().item() == pytest.approx(2.0) and w[0] > w[1]  # balancing ‖w_t g_t‖


def test_strategy_options_from_the_command_line_and_famo_min_losses(capsys):
    import math

    from mtlab.cli import main
    from mtlab.weighting import build_weighting

    assert (
        main(
            [
                "train",
                "--data",
                "synthetic",
                "--model",
                "mmoe",
                "--weighting",
                "dwa",
                "--weighting-option",
                "temp=2",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 2
    )
    assert "weighting 'dwa' has no option temp; its options: temperature" in capsys.readouterr().err
    famo = build_weighting("famo", 2)
    with pytest.raises(ValueError, match=r"give min_losses below every loss"):
        famo.loss(torch.tensor([0.5, -1.0]), 0)
    shifted = build_weighting("famo", 2, min_losses=[0.0, -3.0])
    total, weights = shifted.loss(torch.tensor([0.5, -1.0]), 0)
    # L − min = (0.5, 2): z = (½, ½), c = ½ / 0.5 + ½ / 2 = 1.25, weights (0.8, 0.2)
    assert torch.allclose(weights, torch.tensor([0.8, 0.2]))
    assert math.isfinite(float(total))
    assert (
        main(
            [
                "train",
                "--data",
                "rec-synthetic",
                "--model",
                "mf",
                "--tasks",
                "rec,align",
                "--weighting",
                "famo",
                "--weighting-option",
                "min_losses=-5",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
