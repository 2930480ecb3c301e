"""The trained model afterwards (mtlab.train.saved, mtlab.train.export): save the reported model,
predict new rows, export for serving; predictions scored by scikit-learn give the JSON's test metrics."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, roc_auc_score
from test_table import own_frame

from mtlab.data import DataError, load_dataset, prepare_table
from mtlab.experiments import get_profile, train_one
from mtlab.models import MODELS, trains_on
from mtlab.train.saved import FORMAT_VERSION, ModelFileError, load_model, predict_file

TASKS = ["clicked:binary:yes", "dwell time:regression", "genre:multiclass"]
MIXED = [m for m, cls in MODELS.items() if cls.data_kind == "tabular" and cls.required_tasks is None]
FUNNEL = [m for m, cls in MODELS.items() if cls.required_tasks == ("ctr", "cvr", "ctcvr")]
TOL = 1e-6


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A table of one's own with a test file of its own: (data folder, train CSV, test CSV)."""
    root = tmp_path_factory.mktemp("saved")
    frame = own_frame(n=1500, seed=3)
    train, test = root / "train.csv", root / "test.csv"
    frame.iloc[:1100].to_csv(train, index=False)
    frame.iloc[1100:].to_csv(test, index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTLAB_DATA_DIR", str(root / "data"))
        prepare_table(train, "mine", TASKS, test=test, drop=["user id"], quiet=True)
        prepare_table(train, "mine-binary", TASKS[:1], test=test, drop=["user id"], quiet=True)
    return root / "data", train, test


def scores(predictions: pd.DataFrame, raw: pd.DataFrame, kinds: dict) -> dict:
    """Each task's test metrics computed by scikit-learn from the prediction file and the raw labels."""
    out = {}
    for task, kind in kinds.items():
        known = raw[task].notna().to_numpy()
        y, p = raw[task][known], predictions[known]
        if kind["kind"] == "binary":
            truth = (y.astype(str).str.casefold() == kind["positive"].casefold()).astype(int)
            out[task] = {
                "auc": roc_auc_score(truth, p[task]),
                "logloss": log_loss(truth, np.clip(p[task], 1e-7, 1 - 1e-7), labels=[0, 1]),
            }
        elif kind["kind"] == "regression":
            out[task] = {"rmse": float(np.sqrt(np.mean((p[task] - y) ** 2))), "mae": mean_absolute_error(y, p[task])}
        else:
            classes = kind["classes"]
            probs = p[[f"{task}={c}" for c in classes]].to_numpy()
            with warnings.catch_warnings():  # probabilities written as float32 sum to 1 within 1e-7
                warnings.simplefilter("ignore", UserWarning)
                loss = log_loss(y, np.clip(probs, 1e-7, 1), labels=classes)
            out[task] = {
                "accuracy": accuracy_score(y, p[task]),
                "macro_f1": f1_score(y, p[task], labels=classes, average="macro", zero_division=0),
                "logloss": loss,
            }
    return out


def assert_same_metrics(reported: dict, recomputed: dict) -> None:
    for task, metrics in recomputed.items():
        for name, value in metrics.items():
            assert value == pytest.approx(reported[task][name], abs=TOL), (task, name)


def train_and_save(name, data, path, epochs=2, **options):
    result = train_one(name, data, get_profile("quick", seeds=[0], device="cpu"), 0, options, epochs=epochs, quiet=True)
    result.save(path)
    return result


@pytest.mark.parametrize("model", MIXED)
def test_predicting_the_test_file_reproduces_the_reported_test_metrics(model, table, tmp_path, monkeypatch):
    root, _, test = table
    monkeypatch.setenv("MTLAB_DATA_DIR", str(root))
    name = "mine" if MODELS[model].task_kinds >= {"regression", "multiclass"} else "mine-binary"
    data = load_dataset(name)
    result = train_and_save(model, data, tmp_path / "m.safetensors")
    saved = load_model(tmp_path / "m.safetensors")
    summary = predict_file(saved, test, tmp_path / "p.csv", id_columns=["user id"], quiet=True)
    predictions = pd.read_csv(tmp_path / "p.csv", dtype={"user id": str})
    raw = pd.read_csv(test, dtype={"user id": str})
    assert summary["rows"] == len(raw) == len(predictions) == result["rows"]["test"]
    assert list(predictions.columns) == ["user id", *saved.output_columns()]
    assert (predictions["user id"] == raw["user id"]).all()
    assert_same_metrics(result["test"], scores(predictions, raw, saved.info["kinds"]))


@pytest.mark.parametrize("model", FUNNEL)
def test_a_funnel_model_predicts_pctr_pcvr_pctcvr_of_raw_aliexpress_rows(model, tmp_path):
    from mtlab.data.converters.aliexpress import PrepareSettings, generate_raw, prepare
    from mtlab.data.funnel_shards import load_aliexpress

    generate_raw(tmp_path / "raw", "NL", n_impressions=5000, seed=1)
    prepare(tmp_path / "raw", "NL", tmp_path / "prep", PrepareSettings(min_count=2), quiet=True)
    data = load_aliexpress("NL", tmp_path / "prep", in_memory=True)
    result = train_and_save(model, data, tmp_path / "m.safetensors")
    saved = load_model(tmp_path / "m.safetensors")
    raw_test = tmp_path / "raw" / "AliExpress_NL" / "test.csv"
    predict_file(saved, raw_test, tmp_path / "p.parquet", id_columns=["search_id"], quiet=True)
    p = pd.read_parquet(tmp_path / "p.parquet")
    raw = pd.read_csv(raw_test)
    clicked = raw["click"] == 1
    recomputed = {
        "ctr": roc_auc_score(raw["click"], p["ctr"]),
        "cvr": roc_auc_score(raw["conversion"][clicked], p["cvr"][clicked]),
        "ctcvr": roc_auc_score(raw["conversion"], p["ctcvr"]),
    }
    for task, auc in recomputed.items():
        assert auc == pytest.approx(result["test"][task]["auc"], abs=TOL), task
    assert list(p.columns) == ["search_id", "ctr", "cvr", "ctcvr"]


def test_the_recommender_gives_each_users_top_k_unseen_items_as_evaluated(interactions, tmp_path):
    result = train_and_save("mf", interactions, tmp_path / "mf.safetensors", epochs=3)
    saved = load_model(tmp_path / "mf.safetensors")
    ids = np.asarray(interactions.user_ids)
    test_users = ids[np.unique(interactions.test[:, 0].numpy())]
    users = pd.DataFrame({"user": [*test_users, "somebody new"]})
    prediction = saved.prediction(users, top_k=40)
    top = prediction.frame
    assert prediction.unknown_users == 1 and set(top["user"]) == set(test_users)
    twice = saved.predict(pd.DataFrame({"user": [test_users[0], test_users[1], test_users[0]]}), top_k=40)
    first = top[top["user"] == test_users[0]]["item"].tolist()
    assert twice["item"].tolist()[:40] == twice["item"].tolist()[80:] == first  # a user named twice: alike
    code = {u: i for i, u in enumerate(interactions.user_ids)}
    item_code = {v: i for i, v in enumerate(interactions.item_ids)}
    pairs = set(zip(top["user"].map(code), top["item"].map(item_code)))
    seen = {tuple(p) for p in torch.cat([interactions.train, interactions.valid]).tolist()}
    assert not pairs & seen  # the items a user had are never recommended again
    relevant = pd.DataFrame(interactions.test.numpy(), columns=["user", "item"])
    recall, ndcg = [], []
    discount = 1 / np.log2(np.arange(2, 42))
    for user, items in relevant.groupby("user")["item"]:
        mine = top[top["user"] == interactions.user_ids[user]].sort_values("rank")
        hits = mine["item"].map(item_code).isin(set(items)).to_numpy().astype(float)
        recall.append(hits.sum() / len(items))
        ndcg.append((hits * discount).sum() / discount[: min(40, len(items))].sum())
    assert np.mean(recall) == pytest.approx(result["test"]["rec"]["recall@40"], abs=TOL)
    assert np.mean(ndcg) == pytest.approx(result["test"]["rec"]["ndcg@40"], abs=TOL)


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mtlab", *map(str, args)], capture_output=True, text=True, env=env)


def test_train_save_predict_export_from_the_command_line_and_bad_inputs(table, tmp_path):
    import os

    root, _, test = table
    env = {**os.environ, "MTLAB_DATA_DIR": str(root)}
    model, out = tmp_path / "m.safetensors", tmp_path / "out.json"
    done = run_cli("train", "--data", "mine", "--model", "mmoe", "--epochs", "2", "--quiet", "--json", out,
                   "--save-model", model, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    reported = json.loads(out.read_text())
    assert f"saved the model of epoch {reported['best_epoch']}" in done.stderr
    info = load_model(model).info
    assert info["metrics"]["test"] == reported["test"] and info["dataset"]["version"]
    assert info["encoding"]["numeric"]["x value"]["missing_indicator"]  # the numbers' training mean and std
    assert {"mtlab", "torch"} <= set(info["versions"]) and info["training"]["epochs"] == 2

    new = pd.read_csv(test).head(5).drop(columns=["clicked", "dwell time", "genre"])
    new.loc[0, "city"] = "Atlantis"  # never seen in training: the unknown code, counted
    new["comment"] = "extra"
    new.to_csv(tmp_path / "new.csv", index=False)
    done = run_cli("predict", "--model", model, "--input", tmp_path / "new.csv", "--out", tmp_path / "p.csv",
                   "--id-column", "user id", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "city: 1" in done.stderr and "were ignored: comment" in done.stderr
    p = pd.read_csv(tmp_path / "p.csv")
    assert len(p) == 5 and p["clicked"].between(0, 1).all() and set(p["genre"]) <= {"drama", "comedy", "news"}
    assert np.allclose(p[[c for c in p.columns if c.startswith("genre=")]].sum(axis=1), 1, atol=1e-5)

    # a missing feature column stops with the list of what is missing, before anything is written
    new.drop(columns=["z", "city"]).to_csv(tmp_path / "lacking.csv", index=False)
    done = run_cli("predict", "--model", model, "--input", tmp_path / "lacking.csv", "--out", tmp_path / "q.csv")
    assert done.returncode == 2 and "'city', 'z'" in done.stderr and not (tmp_path / "q.csv").exists()
    assert "Traceback" not in done.stderr

    # damaged, foreign and other-version files
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(model.read_bytes()[: len(model.read_bytes()) // 2])
    foreign = tmp_path / "notes.safetensors"
    foreign.write_text("these are my notes")
    for path, said in ((damaged, "not a readable mtlab model"), (foreign, "not a readable mtlab model")):
        done = run_cli("predict", "--model", path, "--input", tmp_path / "new.csv", "--out", tmp_path / "q.csv")
        assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr

    if (onnx := _onnx()) is not None:
        done = run_cli("export", "--model", model, "--onnx", tmp_path / "m.onnx", "--encoding", tmp_path / "enc.json")
        assert done.returncode == 0, done.stderr
        serving = json.loads((tmp_path / "enc.json").read_text())
        assert serving["inputs"] == ["cat", "num"] and serving["columns"][0] == "clicked"
        assert onnx.InferenceSession(str(tmp_path / "m.onnx")) is not None


def test_another_format_version_and_a_checkpoint_are_refused_clearly(table, tmp_path, monkeypatch):
    from safetensors import safe_open
    from safetensors.torch import save_file

    root, _, _ = table
    monkeypatch.setenv("MTLAB_DATA_DIR", str(root))
    path = tmp_path / "m.safetensors"
    train_and_save("shared_bottom", load_dataset("mine"), path, epochs=1)
    with safe_open(str(path), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    save_file(tensors, tmp_path / "v99.safetensors", {**metadata, "format_version": "99"})
    with pytest.raises(ModelFileError, match=f"format version 99, and this mtlab reads version {FORMAT_VERSION}"):
        load_model(tmp_path / "v99.safetensors")
    save_file(tensors, tmp_path / "plain.safetensors")
    with pytest.raises(ModelFileError, match="not an mtlab model"):
        load_model(tmp_path / "plain.safetensors")
    torch.save({"model": {}}, tmp_path / "run.pt")
    with pytest.raises(ModelFileError, match="training checkpoint"):
        load_model(tmp_path / "run.pt")
    with pytest.raises(ModelFileError, match="no model file"):
        load_model(tmp_path / "absent.safetensors")


def test_a_bad_cell_midway_leaves_no_half_written_predictions(table, tmp_path, monkeypatch):
    root, _, test = table
    monkeypatch.setenv("MTLAB_DATA_DIR", str(root))
    path = tmp_path / "m.safetensors"
    train_and_save("shared_bottom", load_dataset("mine"), path, epochs=1)
    saved = load_model(path)
    frame = pd.read_csv(test)
    frame["z"] = frame["z"].astype(object)
    frame.loc[350, "z"] = "twelve"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    (tmp_path / "p.csv").write_text("the previous predictions\n")
    with pytest.raises(DataError, match=r"bad.csv, line 352: numeric column 'z' holds 'twelve'"):
        predict_file(saved, tmp_path / "bad.csv", tmp_path / "p.csv", quiet=True, chunk_rows=100)
    assert (tmp_path / "p.csv").read_text() == "the previous predictions\n"  # untouched, no temporary file left
    left = sorted(f.name for f in tmp_path.iterdir() if not f.name.endswith(".lock"))  # the writers' locks stay
    assert left == ["bad.csv", "m.safetensors", "p.csv"]


def test_a_second_writer_of_the_same_predictions_stops(table, tmp_path, monkeypatch):
    import fcntl

    root, _, test = table
    monkeypatch.setenv("MTLAB_DATA_DIR", str(root))
    train_and_save("shared_bottom", load_dataset("mine"), tmp_path / "m.safetensors", epochs=1)
    saved = load_model(tmp_path / "m.safetensors")
    with open(tmp_path / ".p.csv.lock", "w") as held:  # another process is writing p.csv
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DataError, match="another process is writing"):
            predict_file(saved, test, tmp_path / "p.csv", quiet=True)
    assert not (tmp_path / "p.csv").exists()
    predict_file(saved, test, tmp_path / "p.csv", quiet=True)  # the lock released: it goes ahead
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(pd.read_csv(test))


def test_bad_new_rows_and_edited_model_files_are_refused_or_noticed(table, tmp_path, monkeypatch):
    from safetensors import safe_open
    from safetensors.torch import save_file

    root, _, test = table
    monkeypatch.setenv("MTLAB_DATA_DIR", str(root))
    path = tmp_path / "m.safetensors"
    train_and_save("shared_bottom", load_dataset("mine"), path, epochs=1)
    saved = load_model(path)
    rows = pd.read_csv(test, dtype=str, keep_default_na=False).head(20)
    with pytest.raises(DataError, match="the predictions have a column of that name"):
        saved.predict(rows, id_columns=["clicked"])  # a label kept beside its prediction needs another name
    with pytest.raises(DataError, match=r"the column\(s\) \['z'\] twice"):
        saved.predict(pd.concat([rows, rows[["z"]]], axis=1))
    dated = rows.assign(z=pd.Timestamp("2026-01-01"))
    with pytest.raises(DataError, match="holds dates or times"):
        saved.predict(dated)
    empty = saved.predict(rows.assign(z=""))  # a whole numeric column missing: the mean, said so
    assert "numeric values missing, filled with the training mean, rows per column: z: 20" in " ".join(
        empty.attrs["notices"]
    )
    assert saved.predict(rows, id_columns=["user id", "user id"]).columns[1] == "clicked"  # one copy

    with safe_open(str(path), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}
    document = json.loads(metadata["mtlab"])
    document["encoding"]["categorical"]["city"]["values"].reverse()  # edited by hand: codes would move
    save_file(tensors, tmp_path / "edited.safetensors", {**metadata, "mtlab": json.dumps(document)})
    with pytest.raises(ModelFileError, match="changed after it was saved"):
        load_model(tmp_path / "edited.safetensors")
    tensors[next(iter(tensors))].view(-1)[0] = float("nan")
    save_file(tensors, tmp_path / "nan.safetensors", metadata)
    with pytest.raises(ModelFileError, match="changed after it was saved"):
        load_model(tmp_path / "nan.safetensors")


def test_a_failed_save_loses_no_result_and_flags_may_not_share_a_file(table, tmp_path):
    import fcntl
    import os

    root, _, _ = table
    env = {**os.environ, "MTLAB_DATA_DIR": str(root)}
    same = run_cli("train", "--data", "mine", "--json", tmp_path / "a", "--save-model", tmp_path / "a", env=env)
    assert same.returncode == 2 and "name the same file" in same.stderr
    with open(tmp_path / ".m.safetensors.lock", "w") as held:  # another process is saving there
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = run_cli("train", "--data", "mine", "--model", "shared_bottom", "--epochs", "1", "--quiet",
                       "--json", tmp_path / "r.json", "--save-model", tmp_path / "m.safetensors", env=env)  # fmt: skip
    assert done.returncode == 1 and "could not save the model" in done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["test"]  # the run's result is kept


def test_a_large_regression_target_is_predicted_in_its_units_to_the_reported_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLAB_DATA_DIR", str(tmp_path / "data"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=900)
    frame = pd.DataFrame({"x": x, "c": rng.choice(list("abc"), 900), "price": 2.5e6 + 1e5 * x + rng.normal(size=900)})
    frame.iloc[:700].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[700:].to_csv(tmp_path / "test.csv", index=False)
    prepare_table(tmp_path / "train.csv", "prices", ["price:regression"], test=tmp_path / "test.csv", quiet=True)
    result = train_and_save("mmoe", load_dataset("prices"), tmp_path / "m.safetensors", epochs=3)
    predict_file(load_model(tmp_path / "m.safetensors"), tmp_path / "test.csv", tmp_path / "p.csv", quiet=True)
    p, y = pd.read_csv(tmp_path / "p.csv")["price"], frame.iloc[700:]["price"].to_numpy()
    # to 1e-7 of the metric: the reported labels are stored standardized as float32 (7 digits)
    assert np.sqrt(np.mean((p - y) ** 2)) == pytest.approx(result["test"]["price"]["rmse"], rel=1e-7)
    assert mean_absolute_error(y, p) == pytest.approx(result["test"]["price"]["mae"], rel=1e-7)


def test_the_checkpoints_best_state_is_the_reported_model(table, tmp_path, monkeypatch):
    from mtlab.models import build_model
    from mtlab.train import evaluate, load_checkpoint

    root, _, _ = table
    monkeypatch.setenv("MTLAB_DATA_DIR", str(root))
    data = load_dataset("mine")
    profile = get_profile("quick", seeds=[0], device="cpu")
    result = train_one("mmoe", data, profile, 0, epochs=4, lr=0.05, checkpoint=tmp_path / "c.pt", quiet=True)
    saved = load_checkpoint(tmp_path / "c.pt")
    net = build_model("mmoe", data.features, data.tasks)
    net.load_state_dict(saved["best_state"])
    assert saved["best_epoch"] == result["best_epoch"]
    assert_same_metrics(result["test"], evaluate(net, data.test, data.tasks))


def _onnx():
    try:
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError:
        return None
    return onnxruntime


@pytest.mark.skipif(_onnx() is None, reason="the export extra (onnx, onnxscript, onnxruntime) is not installed")
def test_onnx_export_gives_mtlabs_predictions(table, interactions, tmp_path, monkeypatch):
    from mtlab.train.export import export_onnx

    root, _, test = table
    monkeypatch.setenv("MTLAB_DATA_DIR", str(root))
    train_and_save("ple", load_dataset("mine"), tmp_path / "t.safetensors", epochs=1)
    saved = load_model(tmp_path / "t.safetensors")
    export_onnx(saved, tmp_path / "t.onnx")
    batch = saved.encoding.encode(pd.read_csv(test)).batch
    graph = _onnx().InferenceSession(str(tmp_path / "t.onnx"))
    ours = saved.predict_batch(batch).numpy()
    theirs = graph.run(None, {"cat": batch.cat.numpy(), "num": batch.num.numpy()})[0]
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)

    train_and_save("mf", interactions, tmp_path / "mf.safetensors", epochs=1)
    saved = load_model(tmp_path / "mf.safetensors")
    export_onnx(saved, tmp_path / "mf.onnx")
    users = torch.arange(17)
    theirs = _onnx().InferenceSession(str(tmp_path / "mf.onnx")).run(None, {"users": users.numpy()})[0]
    np.testing.assert_allclose(theirs, saved.model.scores(users).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_every_mixed_kind_model_is_listed(table):
    assert {"mmoe", "ple", "shared_bottom", "stem", "single_task", "sparse_sharing", "mpt_rec", "csrec"} <= set(MIXED)
    assert "esmm" in FUNNEL and trains_on(MODELS["esmm"], "tabular", ["ctr", "cvr", "ctcvr"]) is None
