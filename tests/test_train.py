import pytest
import torch
from torch import nn

from mtlab.data import Batch, FeatureSpec
from mtlab.models import MultiTaskModel, build_model
from mtlab.train import (
    TrainConfig,
    count_parameters,
    evaluate,
    fit,
    flops_per_sample,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
    seed_everything,
)
from mtlab.train import checkpoint as checkpoint_module

FAST = dict(epochs=3, batch_size=256, quiet=True, device="cpu")


def train(data, name="shared_bottom", seed=0, **kw):
    seed_everything(seed)
    model = build_model(name, data.features, data.tasks, bottom=(32, 16), tower=(8,))
    return fit(model, data, TrainConfig(**{**FAST, "seed": seed, **kw}))


@pytest.mark.parametrize("name", ["single_task", "shared_bottom"])
def test_fit_beats_label_rate_baseline(synthetic, name):
    result = train(synthetic, name, epochs=6)
    test = evaluate(result.model, synthetic.test, synthetic.tasks)
    assert all(m["auc"] > 0.8 for m in test.values()), test  # the label-rate baseline has AUC 0.5
    assert list(result.history["epoch"]) == list(range(1, result.epochs + 1))
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]


def test_deterministic_under_seed(synthetic):
    a, b, c = train(synthetic, seed=1), train(synthetic, seed=1), train(synthetic, seed=2)
    cols = [col for col in a.history.columns if "seconds" not in col]
    assert a.history[cols].equals(b.history[cols])
    for (_, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(p, q)
    assert not a.history[cols].equals(c.history[cols])


@pytest.mark.parametrize("name", ["mmoe", "mpt_rec"])
def test_the_thread_count_changes_the_time_not_the_weights(synthetic, name, monkeypatch):
    """Each epoch runs on the cores free at its start (device.usable_cores): a busy machine may train on
    one thread where a quiet one trains on two, and a seed must give the same model either way."""
    from mtlab.train.vectorized import fit_members

    before = torch.get_num_threads()
    torch.set_num_threads(max(2, before))  # two threads possible: MTLAB_THREADS never exceeds torch's setting
    weights = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("MTLAB_THREADS", threads)
        seed_everything(0)
        single = fit(
            build_model(name, synthetic.features, synthetic.tasks),
            synthetic,
            TrainConfig(**{**FAST, "batch_size": 2048, "epochs": 2}),
        )
        stacked = []
        for seed in (0, 1):
            seed_everything(seed)
            stacked.append(build_model(name, synthetic.features, synthetic.tasks))
        fit_members(
            stacked, synthetic, [TrainConfig(**{**FAST, "seed": s, "batch_size": 2048, "epochs": 2}) for s in (0, 1)]
        )
        weights[threads] = [single.model.state_dict(), stacked[0].state_dict(), stacked[1].state_dict()]
        assert torch.get_num_threads() == max(2, before)  # each epoch's choice was undone after it
    torch.set_num_threads(before)
    for one, two in zip(weights["1"], weights["2"]):
        assert all(torch.equal(one[k], two[k]) for k in one)


def test_training_threads_follow_the_free_cores_or_mtlab_threads(monkeypatch):
    from mtlab.train import device

    monkeypatch.setenv("MTLAB_THREADS", "1")
    assert device.training_threads() == 1
    monkeypatch.setenv("MTLAB_THREADS", "zero")
    with pytest.raises(ValueError, match="positive number of threads"):
        device.training_threads()
    monkeypatch.delenv("MTLAB_THREADS")
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(device.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(device, "_cpu_quota", lambda: None)
    loads = iter(["0.50 0.40 0.30 3/200 1", "0.50 0.40 0.30 3/200 1", "0.50 0.40 0.30 1/200 1"] * 3)
    monkeypatch.setattr(device, "open", lambda *a, **k: __import__("io").StringIO(next(loads)), raising=False)
    monkeypatch.setattr(device, "_own_running", lambda: 1)  # the reader alone (its own spinning threads excluded)
    assert device.usable_cores(samples=3, interval=0) == 1  # two others running: one core left (never zero)
    loads = iter(["0.5 0.4 0.3 1/200 1"] * 3)
    assert device.usable_cores(samples=3, interval=0) == 2  # only the reader itself running
    loads = iter(["0.5 0.4 0.3 9/200 1"] * 3)  # 8 others on a 64-CPU host, of which we may use 2
    monkeypatch.setattr(device.os, "cpu_count", lambda: 64)
    assert device.usable_cores(samples=3, interval=0) == 2  # our share of them: 8 · 2/64, rounded to 0
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setenv("MTLAB_THREADS", "8")
        assert device.training_threads() == 2  # never more than torch's own setting (a sweep worker's 1 stays 1)
        monkeypatch.setenv("MTLAB_THREADS", "1")
        first, second = device.epoch_threads(torch.device("cpu")), device.epoch_threads(torch.device("cpu"))
        assert first.__enter__() == 1 and torch.get_num_threads() == 1
        assert second.__enter__() == 1  # an epoch beside it (a panel's thread) changes nothing
        first.__exit__(None, None, None)
        assert torch.get_num_threads() == 1  # the other epoch still runs
        second.__exit__(None, None, None)
        assert torch.get_num_threads() == 2  # restored when the last epoch ends
    finally:
        torch.set_num_threads(before)


def test_early_stopping_restores_best_weights(synthetic):
    result = train(synthetic, epochs=12, patience=2, lr=0.05)  # a high lr makes validation AUC wobble
    hist = result.history
    assert result.best_epoch == int(hist.loc[hist["valid_auc_mean"].idxmax(), "epoch"])
    valid = evaluate(result.model, synthetic.valid, synthetic.tasks)
    mean_auc = sum(v["auc"] for v in valid.values()) / len(valid)
    assert mean_auc == pytest.approx(hist["valid_auc_mean"].max(), abs=1e-9)
    if result.epochs < 12:
        assert result.epochs - result.best_epoch == 2


def test_checkpoint_resume_equals_uninterrupted_run(synthetic, tmp_path):
    straight = train(synthetic, epochs=4, patience=0)
    path = tmp_path / "ckpt.pt"
    seed_everything(0)
    model = build_model("shared_bottom", synthetic.features, synthetic.tasks, bottom=(32, 16), tower=(8,))
    fit(model, synthetic, TrainConfig(**{**FAST, "epochs": 2, "patience": 0}), checkpoint=path)
    assert load_checkpoint(path)["epoch"] == 2
    seed_everything(123)  # a fresh process: different global state, weights come from the checkpoint
    fresh = build_model("shared_bottom", synthetic.features, synthetic.tasks, bottom=(32, 16), tower=(8,))
    resumed = fit(fresh, synthetic, TrainConfig(**{**FAST, "epochs": 4, "patience": 0}), checkpoint=path, resume=True)
    assert resumed.epochs == 4 and len(resumed.history) == 4
    for (_, p), (_, q) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(p, q)


def test_checkpoint_of_other_model_is_refused(synthetic, tmp_path):
    path = tmp_path / "ckpt.pt"
    seed_everything(0)
    fit(
        build_model("shared_bottom", synthetic.features, synthetic.tasks),
        synthetic,
        TrainConfig(**{**FAST, "epochs": 1}),
        checkpoint=path,
    )
    with pytest.raises(ValueError, match="model: 'SharedBottom' in the checkpoint, 'SingleTask' now"):
        fit(
            build_model("single_task", synthetic.features, synthetic.tasks),
            synthetic,
            TrainConfig(**{**FAST, "epochs": 2}),
            checkpoint=path,
            resume=True,
        )


def test_checkpoint_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    assert load_checkpoint(path)["epoch"] == 1

    def crash(obj, fh):
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1  # the old checkpoint survives intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_on_epoch_callback_can_stop(synthetic):
    seen = []
    seed_everything(0)
    model = build_model("shared_bottom", synthetic.features, synthetic.tasks)
    out = fit(
        model,
        synthetic,
        TrainConfig(**{**FAST, "epochs": 5}),
        on_epoch=lambda row, strategy: seen.append(row) or len(seen) == 2,
    )  # a Stop button after epoch 2
    assert out.epochs == 2 and [r["epoch"] for r in seen] == [1, 2]


def test_config_and_device_errors(synthetic):
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="task_weights has 3 entries for 2 tasks"):
        train(synthetic, task_weights=[1, 1, 1])
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    assert resolve_device("auto").type in ("cpu", "cuda")


def test_task_weights_zero_stops_learning_that_task(synthetic):
    result = train(synthetic, task_weights=[1.0, 0.0], epochs=2, patience=0)
    test = evaluate(result.model, synthetic.test, synthetic.tasks)
    assert test["t1"]["auc"] > 0.75
    # t2's tower never received a gradient: its weights are still the initial ones
    seed_everything(0)
    init = build_model("shared_bottom", synthetic.features, synthetic.tasks, bottom=(32, 16), tower=(8,))
    torch.testing.assert_close(result.model.towers.head.weight[1], init.towers.head.weight[1])


def test_flops_and_parameter_count():
    class Linear(MultiTaskModel):
        def __init__(self):
            super().__init__(FeatureSpec((), (), tuple(f"x{i}" for i in range(10))), ("a", "b", "c"))
            self.fc = nn.Linear(10, 3)

        def forward(self, batch):
            return self.fc(batch.num)

    model = Linear()
    batch = Batch(torch.zeros(8, 0, dtype=torch.long), torch.randn(8, 10))
    assert flops_per_sample(model, batch) == 2 * 10 * 3
    # a training step: the forward matmul and, backward, the weight gradient (the input needs none)
    assert flops_per_sample(model, batch, training=True) == 2 * (2 * 10 * 3)
    assert model.fc.weight.grad is None  # counting a training step leaves no gradients behind
    assert count_parameters(model) == 33
    model.fc.bias.requires_grad_(False)
    assert count_parameters(model) == 30 and count_parameters(model, trainable_only=False) == 33


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_cuda_matches_cpu_quality(synthetic):
    result = train(synthetic, device="cuda", epochs=4)
    assert result.device.startswith("cuda")
    assert next(result.model.parameters()).is_cuda
    test = evaluate(result.model, synthetic.test.to("cuda"), synthetic.tasks)
    assert all(m["auc"] > 0.8 for m in test.values())
