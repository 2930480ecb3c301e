"""The one epoch loop (train/loop.py), the capabilities every path asks (train/capabilities.py) and the
declarations they read, and the batch sources (data/sources.py)."""

import math

import pytest
import torch

from mtlab.data.sources import InMemoryRows, StepBatch, batch_source
from mtlab.models import MODELS, build_model
from mtlab.models.base import TaskModel
from mtlab.train import TrainConfig
from mtlab.train.capabilities import capabilities
from mtlab.train.loop import EpochStats, MemberRecord, RandomStream, run_epochs
from mtlab.train.trainer import DivergenceError
from mtlab.weighting import STRATEGIES
from mtlab.weighting.base import GradientCombination, LossWeighting


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_models_declarations_match_what_it_implements(name):
    cls = MODELS[name]
    assert cls.vectorizable == (cls.member_losses is not TaskModel.member_losses)
    assert cls.one_representation == (
        callable(getattr(cls, "represent", None)) and callable(getattr(cls, "heads", None))
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_strategys_kind_is_its_base_class(name):
    cls = STRATEGIES[name]
    expected = (
        "loss" if issubclass(cls, LossWeighting) else "gradient" if issubclass(cls, GradientCombination) else None
    )
    assert cls.kind == (expected or cls.kind) and cls.kind in ("loss", "gradient", "rows", "own")
    assert cls.title and cls.registry_name == name
    if expected is None:
        assert name == "pmtrec" and cls.kind == "rows"


def test_capabilities_give_the_reason_each_path_refuses(tabular, interactions):
    quiet = dict(quiet=True, device="cpu")
    mmoe = build_model("mmoe", tabular.features, tabular.tasks)
    bottom = build_model("shared_bottom", tabular.features, tabular.tasks)
    mf = build_model("mf", interactions.spec, ("rec", "align"), dim=8)
    can = capabilities(mmoe, tabular, TrainConfig(weighting="pcgrad", **quiet))
    assert (can.train, can.vectorize, can.distribute) == (None, None, None)
    assert "shared_bottom" in can.rep_grad and capabilities(bottom, tabular, TrainConfig(**quiet)).rep_grad is None
    assert "own backward" in capabilities(mmoe, tabular, TrainConfig(weighting="pmtrec", **quiet)).vectorize
    rec = capabilities(mf, interactions, TrainConfig(weighting="pmtrec", **quiet))
    assert rec.vectorize is None and "one process" in rec.distribute
    assert "per embedding row" in capabilities(mf, interactions, TrainConfig(weighting="mgda", **quiet)).vectorize
    rep = capabilities(bottom, tabular, TrainConfig(rep_grad=True, **quiet))
    assert "representation" in rep.vectorize and "representation" in rep.distribute
    mpt = build_model("mpt_rec", tabular.features, tabular.tasks)
    assert mpt.row_state and "per training row" in capabilities(mpt, tabular, TrainConfig(**quiet)).distribute


def test_every_source_yields_step_batches(tabular, interactions):
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    table = batch_source(tabular)
    batches = list(table.epoch(256, gen(), "cpu"))
    assert all(isinstance(b, StepBatch) for b in batches) and sum(len(b) for b in batches) == len(tabular.train)
    rows = torch.cat([b.rows for b in batches])
    assert torch.equal(rows, table.order(gen()))  # the epoch is the permutation the generator draws
    inputs, labels = tabular.train.rows(batches[0].rows)
    assert torch.equal(batches[0].labels, labels) and torch.equal(batches[0].inputs.cat, inputs.cat)
    pairs = list(InMemoryRows(interactions.train).epoch(500, gen(), "cpu"))
    assert pairs[0].inputs is None and len(pairs[0]) == 500 and not table.streamed


class CountingLearner:
    """A fake learner: member s's validation score follows `scores[s]`; what the loop calls is logged."""

    def __init__(self, scores, patience=1, losses=None):
        self.size, self.tasks, self.scores = len(scores), ("a",), scores
        self.device = torch.device("cpu")
        self.configs = [
            TrainConfig(epochs=len(scores[0]), patience=patience, quiet=True, seed=s) for s in range(self.size)
        ]
        self.description, self.epoch, self.held, self.saved = "fake", 0, [], 0
        self.models = [torch.nn.Linear(1, 1) for _ in scores]
        self.losses = losses

    def train_epoch(self, epoch, first):
        self.epoch = epoch
        for m in self.models:  # the weights record the epoch they were trained in
            torch.nn.init.constant_(m.weight, float(epoch + 1))
        loss = self.losses[epoch] if self.losses else 0.5
        return EpochStats([[loss]] * self.size, [[1.0]] * self.size, [[0.7]] * self.size if first else None)

    def model(self, s):
        return self.models[s]

    def validate(self, s):
        return {"a": {"auc": self.scores[s][self.epoch]}}

    def strategy(self, s):
        return None

    def row_fields(self, s):
        return {}, {"seed": s}

    def run_name(self, s):
        return f"of seed {s} "

    def hold(self, s):
        self.held.append((s, self.epoch + 1))

    def save(self, records):
        self.saved += 1


def test_the_loop_stops_each_member_on_its_own_and_restores_its_best_weights():
    learner = CountingLearner([[0.6, 0.7, 0.65, 0.9, 0.9], [0.6, 0.5, 0.4, 0.3, 0.2]], patience=1)
    records = run_epochs(learner, "valid_auc_mean", [MemberRecord(), MemberRecord()])
    assert [r.best_epoch for r in records] == [2, 1] and [r.epoch for r in records] == [3, 2]
    assert learner.held == [(1, 2), (0, 3)] and learner.saved == 3 and all(r.stopped for r in records)
    assert [m.weight.item() for m in learner.models] == [2.0, 1.0]  # each member's best epoch
    assert (
        list(records[0].history[0])[:3] == ["epoch", "train_loss", "train_loss_a"]
        and records[0].history[0]["seed"] == 0
    )
    assert records[0].initial_loss == [0.7] and math.isclose(records[0].history[-1]["valid_auc_mean"], 0.65)


def test_the_loop_stops_a_member_whose_loss_exploded_naming_it():
    learner = CountingLearner([[0.6, 0.7]], patience=0, losses=[0.5, 1e3])
    with pytest.raises(DivergenceError, match="of seed 0 diverged in epoch 2.*exploded"):
        run_epochs(learner, "valid_auc_mean", [MemberRecord()])


def test_a_resumed_record_that_stopped_stays_stopped():
    learner = CountingLearner([[0.6, 0.7]], patience=1)
    record = MemberRecord(epoch=1, stopped=True, best_epoch=1, best_score=0.6, initial_loss=[0.7])
    run_epochs(learner, "valid_auc_mean", [record])
    assert record.epoch == 1 and learner.saved == 0


def test_a_random_stream_is_its_own_copy_of_the_global_stream():
    torch.manual_seed(5)
    expected = torch.rand(3)
    stream = RandomStream(5, torch.device("cpu"))
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with stream:
        drawn = torch.rand(3)
    assert torch.equal(drawn, expected) and torch.equal(torch.get_rng_state(), before)
    with stream:
        assert not torch.equal(torch.rand(3), expected)  # it goes on where it stopped


def test_what_a_model_trains_on_is_read_from_its_declarations():
    from mtlab.models import trains_on

    funnel = ("ctr", "cvr", "ctcvr")
    assert trains_on(MODELS["esmm"], "tabular", funnel) is None and trains_on(MODELS["mmoe"], "tabular", funnel) is None
    assert "ctr, cvr, ctcvr" in trains_on(MODELS["aitm"], "tabular", ("income", "marital"))
    assert "interactions data" in trains_on(MODELS["mf"], "tabular", ("income",))
    assert "tabular data" in trains_on(MODELS["ple"], "interactions", ("rec",))


def test_the_command_line_names_the_models_that_fit(capsys):
    from mtlab.cli import main

    assert main(["train", "--data", "census-income", "--model", "esmm", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "predicts the tasks ctr, cvr, ctcvr" in err and "mmoe" in err and "esmm," not in err


def test_rep_grad_is_refused_for_a_strategy_that_weights_in_its_own_backward(tabular):
    bottom = build_model("shared_bottom", tabular.features, tabular.tasks)
    why = capabilities(bottom, tabular, TrainConfig(rep_grad=True, weighting="pmtrec")).rep_grad
    assert "own backward" in why and "rep_grad" in why


def test_the_command_line_reports_a_task_typo_as_such(capsys):
    from mtlab.cli import main

    assert main(["train", "--data", "aliexpress-nl", "--model", "esmm", "--tasks", "ctr,cvr,ctcv", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown task(s) ['ctcv']" in err and "ctr, cvr, ctcvr" in err
    assert main(["train", "--data", "ali-ccp", "--model", "esmm", "--tasks", "ctcvr,ctr,cvr", "--quiet"]) == 2
    assert "in that order" in capsys.readouterr().err
