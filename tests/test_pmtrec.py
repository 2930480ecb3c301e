"""PMTRec's per-row weighting and the multi-task MF recommender."""

import pytest
import torch

from mtlab.data.interactions import InteractionSpec, make_synthetic_interactions
from mtlab.models.mf import MFMultiTask
from mtlab.train import RankingEvaluator, TrainConfig, fit
from mtlab.weighting import build_weighting

TASKS = ("rec", "social", "category", "attribute", "align", "rating")


@pytest.fixture(scope="module")
def community_data():
    return make_synthetic_interactions(n_users=300, n_items=250, p_in=0.2, seed=0)


def mf(data, tasks=TASKS, dim=16):
    torch.manual_seed(0)
    spec = InteractionSpec(data.n_users, data.n_items, data.item_categories.shape[1], (("community", 5),))
    return MFMultiTask(spec, tasks, dim)


def test_row_weights_equal_a_per_row_loop_and_sum_to_one():
    torch.manual_seed(0)
    grads = torch.randn(3, 7, 4)
    grads[1, 2] = 0  # a row task 2 does not touch
    strategy = build_weighting("pmtrec", 3, alpha=1.3, tau=0.7)
    combined, w = strategy.combine_rows(grads, epoch=2)
    torch.testing.assert_close(w.sum(0), torch.ones(7))
    for r in range(7):  # the method-notes formulas, one row at a time, over the tasks reaching the row
        tasks = [t for t in range(3) if grads[t, r].norm() > 0]
        n = torch.stack([grads[t, r].norm() for t in tasks])
        n_tf = n * torch.tensor([1.3**2 if t == 0 else 1.0 for t in tasks])
        weights = torch.softmax(n_tf / n_tf.mean() / 0.7, dim=0)
        full = torch.zeros(3)
        full[tasks] = weights
        torch.testing.assert_close(w[:, r], full)
        expected = sum(weights[k] * grads[t, r] / n[k] for k, t in enumerate(tasks)) * n.mean()
        torch.testing.assert_close(combined[r], expected)
    assert w[1, 2] == 0  # task 1 does not reach row 2: no share of its weight


def test_pmtrec_reduces_to_ew(community_data):
    model = mf(community_data)
    rows = torch.arange(256)
    ew = build_weighting("ew", len(TASKS))
    pm = build_weighting("pmtrec", len(TASKS), task_focusing=False, tau=1e9, rescale="raw")
    grads = []
    for strategy in (ew, pm):
        model.zero_grad()
        gen = torch.Generator().manual_seed(1)
        strategy.backward(model.task_losses(rows, community_data, gen), model.embedding_tables(), epoch=3)
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_without_gmb_weights_are_proportional_to_normalized_norms():
    strategy = build_weighting("pmtrec", 2, task_focusing=False, balancing=False)
    w = strategy.row_weights(torch.tensor([[1.0, 3.0], [3.0, 1.0]]), epoch=0)
    torch.testing.assert_close(w, torch.tensor([[0.25, 0.75], [0.75, 0.25]]))


def test_every_task_loss_is_finite_and_reaches_its_head(community_data):
    model = mf(community_data)
    losses = model.task_losses(torch.arange(128), community_data)
    assert losses.shape == (len(TASKS),) and torch.isfinite(losses).all()
    losses[TASKS.index("category")].backward()
    assert model.category_head.weight.grad.abs().sum() > 0
    assert model.user.weight.grad is None or model.user.weight.grad.abs().sum() == 0  # items only


@pytest.mark.parametrize("strategy", ["ew", "pmtrec"])
def test_recommender_learns_the_planted_communities(strategy, community_data):
    result = fit(
        mf(community_data),
        community_data,
        TrainConfig(epochs=8, batch_size=256, lr=0.02, weighting=strategy, device="cpu", quiet=True, patience=0),
    )
    model, history, used = result.model, result.history, result.strategy
    test = RankingEvaluator()(model, community_data, "test")["rec"]
    assert test["recall@40"] > 2 * 40 / community_data.n_items, test  # random ranking: ≈ 40 / n_items
    assert list(history["epoch"]) == list(range(1, 9))
    if strategy == "pmtrec":
        user_weights = used.last_weights[0]
        assert user_weights.shape[0] == len(TASKS)
        torch.testing.assert_close(user_weights.sum(0), torch.ones(user_weights.shape[1]))
        assert user_weights.std(1).max() > 0  # personalized: rows differ


def test_pmtrec_experiment_functions_on_synthetic(tmp_path, monkeypatch):
    from mtlab.experiments import get_profile
    from mtlab.experiments.pmtrec import (
        alpha_tau_grid,
        load_rec_dataset,
        pmtrec_ablations,
        pmtrec_benchmark,
        summarize_benchmark,
        weight_summary,
        weight_trajectory,
    )
    from mtlab.experiments.store import load_rows

    profile = get_profile("quick", seeds=[0], device="cpu")
    small = dict(epochs=2, batch_size=512)
    runs = pmtrec_benchmark(["synthetic"], ["ew", "pmtrec"], profile, **small)
    assert list(runs["strategy"]) == ["ew", "pmtrec"] and runs["ndcg@40"].between(0, 1).all()
    assert "±" in summarize_benchmark(runs).iloc[0]["ndcg@40"]
    data = load_rec_dataset("synthetic")
    assert data.tasks[:2] == ("rec", "social")
    grid = alpha_tau_grid(data, profile, alphas=(1.0, 1.2), taus=(1.0,), **small)
    assert grid.shape == (2, 1) and grid.notna().all().all()
    ablations = pmtrec_ablations(data, profile, **small)
    assert list(ablations["variant"]) == ["PMTRec", "without Task Focusing", "without GMB", "single task (rec only)"]
    # a results file: a second call (a sweep's merged file) trains nothing and gives the same numbers
    stored = tmp_path / "grid.csv"
    first = alpha_tau_grid(data, profile, alphas=(1.2,), taus=(1.0,), results_path=stored, **small)
    assert first.loc[1.2, 1.0] == pytest.approx(grid.loc[1.2, 1.0], abs=1e-3)
    import mtlab.experiments.pmtrec as module

    monkeypatch.setattr(module, "train_recommenders", lambda *a, **k: pytest.fail("trained again"))
    assert alpha_tau_grid(data, profile, alphas=(1.2,), taus=(1.0,), results_path=stored).equals(first)
    monkeypatch.undo()
    part = pmtrec_ablations(data, profile, variants=("without GMB",), results_path=tmp_path / "abl.csv", **small)
    assert list(part["variant"]) == ["without GMB"] and len(load_rows(tmp_path / "abl.csv")) == 1
    trajectory = weight_trajectory(data, profile, **small)
    assert set(trajectory["epoch"]) == {1, 2} and set(trajectory["task"]) == set(data.tasks)
    summary = weight_summary(trajectory)
    assert summary.groupby("epoch")["mean"].sum().sub(1).abs().lt(1e-4).all()  # mean weights over tasks sum to one
    with pytest.raises(ValueError, match="available: ml-100k, ml-1m, filmtrust"):
        load_rec_dataset("netflix")


@pytest.mark.parametrize("name", ["pmtrec", "ew"])
def test_gathered_rows_give_the_same_update_as_whole_tables(name, community_data):
    """Per-task gradients on the shared rows (TableRows, losses as a list) give PMTRec the update of
    the whole tables (losses stacked): untouched rows have zero gradient in every task, and a row one
    task reads gets weight 1, its own gradient. (A min-norm strategy on whole tables would rescale such
    rows: the declared-sharing test covers that.)"""
    from mtlab.weighting import TableRows

    model, rows, grads = mf(community_data), torch.arange(200), []
    for gathered in (True, False):
        model.zero_grad()
        losses, touched = model.batch_losses(rows, community_data, torch.Generator().manual_seed(3))
        shared = (
            [TableRows(t, i, v) for t, (i, v) in zip(model.embedding_tables(), touched)]
            if gathered
            else model.embedding_tables()
        )
        build_weighting(name, len(TASKS)).backward(losses if gathered else torch.stack(losses), shared, epoch=2)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-7, msg=n)
    assert (grads[0]["user.weight"].abs().sum(1) > 0).sum() < community_data.n_users  # some rows untouched


def test_item_links_train_the_coview_task(community_data):
    from dataclasses import replace

    data = replace(community_data, item_links=torch.tensor([[0, 1], [2, 3], [4, 5]]))
    model = MFMultiTask(InteractionSpec(data.n_users, data.n_items), ("rec", "coview"), 8)
    losses = model.task_losses(torch.arange(64), data)
    losses[1].backward()
    assert model.user.weight.grad is None or model.user.weight.grad.abs().sum() == 0  # item–item only
    assert model.item.weight.grad[:6].abs().sum() > 0


def test_bilinear_score_equals_torch_bilinear():
    from mtlab.models.mf import BilinearScore

    torch.manual_seed(0)
    ours, reference = BilinearScore(6), torch.nn.Bilinear(6, 6, 1)
    with torch.no_grad():
        reference.weight.copy_(ours.weight[None])
        reference.bias.copy_(ours.bias)
    a, b = torch.randn(10, 6), torch.randn(10, 6)
    torch.testing.assert_close(ours(a, b), reference(a, b).squeeze(1))


def test_weight_trajectory_tracks_users_and_the_study_helpers(community_data):
    import pandas as pd

    from mtlab.experiments import get_profile
    from mtlab.experiments.pmtrec import (
        SINGLE_TASK,
        auxiliary_task_study,
        best_cell,
        headline_statement,
        pmtrec_benchmark,
        weight_trajectory,
    )

    profile = get_profile("quick", seeds=[0], device="cpu")
    trajectory = weight_trajectory(community_data, profile, epochs=2, batch_size=512)
    per_user = trajectory.groupby(["epoch", "user"])["weight"].sum()
    torch.testing.assert_close(torch.tensor(per_user.to_numpy()), torch.ones(len(per_user)))
    assert trajectory["user"].between(0, community_data.n_users - 1).all() and "ndcg@40" in trajectory.attrs["test"]
    grid = pd.DataFrame([[0.1, 0.4], [0.2, 0.3]], index=[1.0, 1.1], columns=[0.5, 2.0])
    assert best_cell(grid) == {"alpha": 1.0, "tau": 2.0, "score": 0.4}
    study = auxiliary_task_study(community_data, profile, epochs=2, batch_size=512)
    assert list(study["tasks"])[0] == "rec alone" and study.iloc[0]["ndcg@40 change vs rec alone"] == "+0.0 %"
    assert {"rec + social", "rec + all"} <= set(study["tasks"])
    runs = pd.DataFrame(
        {
            "dataset": "d",
            "strategy": ["ew", "mgda", "pmtrec", SINGLE_TASK],
            "seed": 0,
            "ndcg@40": [0.10, 0.20, 0.22, 0.30],
        }
    )
    statement = headline_statement(runs)
    assert "best baseline mgda 0.2000 (+10.00 %; PMTRec ranks 1 of 3 strategies" in statement
    assert "without auxiliary tasks: 0.3000" in statement
    assert len(pmtrec_benchmark(["synthetic"], [SINGLE_TASK], profile, epochs=1, batch_size=512)) == 1


def test_a_link_task_without_links_says_so():
    data = make_synthetic_interactions(n_users=50, n_items=40, seed=0)
    model = MFMultiTask(InteractionSpec(data.n_users, data.n_items), ("rec", "coview"), 8)
    with pytest.raises(ValueError, match="'coview' needs item links"):
        model.task_losses(torch.arange(16), data)
