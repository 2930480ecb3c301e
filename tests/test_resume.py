"""Exact resume for every registered strategy, on a census-style model and on the recommender: two
epochs, a checkpoint, a fresh process state, two more epochs — bit for bit the uninterrupted run."""

import pytest
import torch

from mtlab.models import build_model
from mtlab.train import TrainConfig, fit, seed_everything
from mtlab.weighting import STRATEGIES
from mtlab.weighting.gradient_based import PerElementState


def build(family, data):
    if family == "census":
        return build_model("mmoe", data.features, data.tasks, expert=(16,), tower=(8,), n_experts=3)
    return build_model("mf", data.spec, ("rec", "social", "category", "align"), dim=8)


LOG_OF_LOSSES = {"gls", "stch", "famo", "db_mtl", "moco"}


def same_state(a, b, where: str) -> None:
    """Bit for bit, NaN where NaN ("not set yet"), through the nested extra states."""
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=f"{where} differs")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where} differs"
        for key in a:
            same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where} differs"
        for k, (x, y) in enumerate(zip(a, b)):
            same_state(x, y, f"{where}[{k}]")
    else:
        assert a == b, f"{where} differs"


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("family", ["census", "recommender"])
def test_resume_equals_an_uninterrupted_run(family, strategy, tabular, interactions, tmp_path):
    if strategy == "pmtrec" and family == "census":
        pytest.skip("PMTRec weights embedding-table rows: the recommender's")
    if strategy in LOG_OF_LOSSES and family == "recommender":
        pytest.skip("logs of the losses: the recommender's align loss is negative (refused, tested apart)")
    if issubclass(STRATEGIES[strategy], PerElementState) and family == "recommender":
        pytest.skip("a running state per shared element: MF's shared rows change every batch (refused, tested apart)")
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
        same_state(a, b, f"{strategy} state {name}")
    cols = [c for c in straight.history if "seconds" not in c]
    assert straight.history[cols].equals(resumed.history[cols])
