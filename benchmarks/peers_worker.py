"""One timing for benchmarks/peers.py, in a fresh process: train one library's model for a few epochs on
the shared Census-Income rows with that library's own training loop, and print one JSON line with each
epoch's training seconds and the test AUC of each task.

    python benchmarks/peers_worker.py LIB MODEL BATCH EPOCHS ROWS.npz DEVICE

LIB: mtlab (run with the project's Python), torch-rechub or deepctr-torch (run with the peers'
environment's Python: this file imports nothing of mtlab's for them). MODEL: mmoe or ple, at the peers'
usual size: embeddings of 4, experts [16], towers [8]; MMoE with 8 experts, PLE with one level of one
shared and one specific expert per task. Only the training epochs are timed: no validation inside them.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np
import torch

EMB, EXPERT, TOWER, N_EXPERTS = 4, 16, 8, 8


def auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_mtlab(model_name, batch, epochs, rows, device):
    from mtlab.experiments import get_profile, load_for_profile
    from mtlab.models import build_model
    from mtlab.train import TrainConfig, fit, seed_everything

    data = load_for_profile("census-income", ["income", "marital"], get_profile("full"))
    assert len(data.train) == len(rows["train_cat"]), "the shared rows are not mtlab's Census-Income split"
    seed_everything(0)
    options = (
        dict(emb_dim=EMB, n_experts=N_EXPERTS, expert=(EXPERT,), tower=(TOWER,))
        if model_name == "mmoe"
        else dict(emb_dim=EMB, n_levels=1, n_shared=1, n_specific=1, expert=(EXPERT,), tower=(TOWER,))
    )
    model = build_model(model_name, data.features, data.tasks, **options)
    result = fit(model, data, TrainConfig(epochs=epochs, batch_size=batch, patience=0, device=device, quiet=True))
    from mtlab.train import evaluate

    test = evaluate(model, data.to(result.device).test, data.tasks)
    return list(result.history["train_seconds"]), {t: test[t]["auc"] for t in data.tasks}


def _columns(rows, split):
    cat, num = rows[f"{split}_cat"], rows[f"{split}_num"]
    x = {f"c{i}": cat[:, i] for i in range(cat.shape[1])}
    x.update({f"n{j}": num[:, j] for j in range(num.shape[1])})
    return x


def run_rechub(model_name, batch, epochs, rows, device):
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import MMOE, PLE
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import DataGenerator

    torch.manual_seed(0)
    vocab = rows["vocab"]
    features = [SparseFeature(f"c{i}", vocab_size=int(v), embed_dim=EMB) for i, v in enumerate(vocab)]
    features += [DenseFeature(f"n{j}") for j in range(rows["train_num"].shape[1])]
    types = ["classification", "classification"]
    towers = [{"dims": [TOWER]}, {"dims": [TOWER]}]
    if model_name == "mmoe":
        model = MMOE(features, types, n_expert=N_EXPERTS, expert_params={"dims": [EXPERT]}, tower_params_list=towers)
    else:
        model = PLE(features, types, 1, 1, 1, expert_params={"dims": [EXPERT]}, tower_params_list=towers)
    generator = DataGenerator(_columns(rows, "train"), rows["train_y"])
    train, _, test = generator.generate_dataloader(
        x_val=_columns(rows, "test"),
        y_val=rows["test_y"],
        x_test=_columns(rows, "test"),
        y_test=rows["test_y"],
        batch_size=batch,
    )
    with tempfile.TemporaryDirectory() as folder:
        trainer = MTLTrainer(
            model,
            types,
            optimizer_params={"lr": 1e-3, "weight_decay": 0.0},
            n_epoch=epochs,
            device=device,
            model_path=folder,
        )
        seconds = []
        for _ in range(epochs):
            sync(device)
            start = time.perf_counter()
            trainer.train_one_epoch(train)
            sync(device)
            seconds.append(time.perf_counter() - start)
        scores = trainer.evaluate(trainer.model, test)  # its own AUC per task
    return seconds, {t: float(scores[i]) for i, t in enumerate(("income", "marital"))}


def run_deepctr(model_name, batch, epochs, rows, device):
    from deepctr_torch.inputs import DenseFeat, SparseFeat
    from deepctr_torch.models import MMOE, PLE

    torch.manual_seed(0)
    columns = [SparseFeat(f"c{i}", vocabulary_size=int(v), embedding_dim=EMB) for i, v in enumerate(rows["vocab"])]
    columns += [DenseFeat(f"n{j}", 1) for j in range(rows["train_num"].shape[1])]
    common = dict(
        expert_dnn_hidden_units=(EXPERT,),
        gate_dnn_hidden_units=(),
        tower_dnn_hidden_units=(TOWER,),
        task_types=("binary", "binary"),
        task_names=("income", "marital"),
        device=device,
    )
    if model_name == "mmoe":
        model = MMOE(columns, num_experts=N_EXPERTS, **common)
    else:
        model = PLE(columns, shared_expert_num=1, specific_expert_num=1, num_levels=1, **common)
    model.compile("adam", loss=["binary_crossentropy", "binary_crossentropy"])
    x, y = _columns(rows, "train"), rows["train_y"].astype(np.float32)
    seconds = []
    for _ in range(epochs):  # fit's own loop, one epoch a call, no validation
        sync(device)
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        sync(device)
        seconds.append(time.perf_counter() - start)
    scores = model.predict(_columns(rows, "test"), batch_size=8192)
    return seconds, {t: auc(rows["test_y"][:, i], scores[:, i]) for i, t in enumerate(("income", "marital"))}


RUNNERS = {"mtlab": run_mtlab, "torch-rechub": run_rechub, "deepctr-torch": run_deepctr}


def main(argv) -> None:
    lib, model, batch, epochs, path, device = argv
    with np.load(path) as archive:
        rows = dict(archive)
    seconds, aucs = RUNNERS[lib](model, int(batch), int(epochs), rows, device)
    print(json.dumps({"lib": lib, "model": model, "batch": int(batch), "epoch_seconds": seconds, "auc": aucs}))


if __name__ == "__main__":
    main(sys.argv[1:])
