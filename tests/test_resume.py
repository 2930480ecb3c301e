"""Exact resume for every registered strategy, on a census-style model and on the recommender: two
epochs, a checkpoint, a fresh process state, two more epochs — bit for bit the uninterrupted run."""

import pytest
import torch

from mtlab.models import build_model
from mtlab.train import TrainConfig, fit, seed_everything
from mtlab.weighting import STRATEGIES


def build(family, data):
    if family == "census":
        return build_model("mmoe", data.features, data.tasks, expert=(16,), tower=(8,), n_experts=3)
    return build_model("mf", data.spec, ("rec", "social", "category", "align"), dim=8)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("family", ["census", "recommender"])
def test_resume_equals_an_uninterrupted_run(family, strategy, tabular, interactions, tmp_path):
    if strategy == "pmtrec" and family == "census":
        pytest.skip("PMTRec weights embedding-table rows: the recommender's")
    data = tabular if family == "census" else interactions
    config = dict(batch_size=128, lr=0.01, patience=0, weighting=strategy, device="cpu", quiet=True, seed=3)
    seed_everything(0)
    straight = fit(build(family, data), data, TrainConfig(epochs=4, **config))
    path = tmp_path / "run.pt"
    seed_everything(0)
    fit(build(family, data), data, TrainConfig(epochs=2, **config), checkpoint=path)
    seed_everything(99)  # a fresh process: other global state; everything must come from the checkpoint
    torch.rand(7)
    resumed = fit(build(family, data), data, TrainConfig(epochs=4, **config), checkpoint=path, resume=True)
    assert resumed.epochs == 4
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"{family}, {strategy}: {name} differs after resume"
    for (name, a), b in zip(straight.strategy.state_dict().items(), resumed.strategy.state_dict().values()):
        if isinstance(a, torch.Tensor):  # bit for bit, NaN where NaN ("not set yet")
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=f"{strategy} state {name} differs")
        else:
            assert a == b, f"{strategy} state {name} differs"
    cols = [c for c in straight.history if "seconds" not in c]
    assert straight.history[cols].equals(resumed.history[cols])
