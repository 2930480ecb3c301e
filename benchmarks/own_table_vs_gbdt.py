"""A table of one's own against a single-task gradient-boosting model on the same split.

Writes a Census-Income sample (the fetched files; `python -m mtlab.data fetch census-income` first) as a
CSV with a mixed task set, prepares it with `python -m mtlab.data prepare table` into a temporary data
folder, trains MMoE on it through `python -m mtlab train`, and fits scikit-learn's
HistGradientBoosting, one model per task, on the very rows and encoded features mtlab trained on
(categorical codes as categorical features). Prints both test results side by side.

    python benchmarks/own_table_vs_gbdt.py [--rows 60000] [--epochs 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["income:binary:50000+.", "weeks worked:regression", "marital status:multiclass"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mtlab.data.census import read_raw
    from mtlab.data.download import require_files

    raw = read_raw(require_files("census-income")["census_income_train.csv"])
    sample = raw.sample(min(args.rows, len(raw)), random_state=args.seed).rename(
        columns={"marital_status": "marital status", "weeks_worked_in_year": "weeks worked"}
    )
    work = Path(tempfile.mkdtemp(prefix="mtlab-own-table-"))
    csv = work / "census_sample.csv"
    sample.to_csv(csv, index=False)
    env = {**os.environ, "MTLAB_DATA_DIR": str(work / "data"), "PYTHONPATH": str(ROOT)}
    prepare = [sys.executable, "-m", "mtlab.data", "prepare", "table", "--name", "census-sample", "--train", str(csv)]
    prepare += [a for t in TASKS for a in ("--task", t)] + ["--drop", "instance_weight", "--seed", str(args.seed)]
    subprocess.run(prepare, check=True, env=env, stdout=subprocess.DEVNULL)
    tasks = ",".join(t.split(":")[0] for t in TASKS)
    out = work / "mmoe.json"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mtlab", "train", "--data", "census-sample", "--model", "mmoe", "--tasks", tasks]
        + ["--profile", "full", "--epochs", str(args.epochs), "--device", "cpu", "--quiet", "--json", str(out)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    mmoe_seconds = time.perf_counter() - start
    mmoe = json.loads(out.read_text())["test"]

    os.environ["MTLAB_DATA_DIR"] = str(work / "data")
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from mtlab.data import load_dataset
    from mtlab.train.metrics import task_metrics

    data = load_dataset("census-sample")

    def features(split):
        return np.concatenate([split.cat.numpy().astype(np.float64), split.num.numpy()], 1)

    categorical = list(range(data.features.n_cat))
    x_train, x_test = features(data.train), features(data.test)  # HistGB early-stops on 10 % of train
    predictions = []
    start = time.perf_counter()
    for t, kind in enumerate(data.kinds):
        y = data.train.labels[:, t].numpy()
        known = ~np.isnan(y)
        common = dict(categorical_features=categorical, random_state=args.seed, early_stopping=True)
        if kind.kind == "regression":
            model = HistGradientBoostingRegressor(**common).fit(x_train[known], y[known])
            predictions.append(model.predict(x_test)[:, None] * kind.std + kind.mean)
        else:
            model = HistGradientBoostingClassifier(**common).fit(x_train[known], y[known].astype(int))
            p = model.predict_proba(x_test)
            predictions.append(p[:, 1:2] if kind.kind == "binary" else p)
    gbdt_seconds = time.perf_counter() - start
    gbdt = task_metrics(data.test.labels.numpy(), np.concatenate(predictions, 1), data.tasks, data.kinds)
    print(f"Census-Income sample: {len(data.train):,} train / {len(data.valid):,} valid / {len(data.test):,} test rows")
    print(f"{'task':16s} {'metric':9s} {'MMoE (mtlab)':>13s} {'HistGB (1 per task)':>20s}")
    for task in data.tasks:
        for metric in mmoe[task]:
            if metric == "score":
                continue
            print(f"{task:16s} {metric:9s} {mmoe[task][metric]:13.4f} {gbdt[task][metric]:20.4f}")
    print(f"seconds: MMoE {mmoe_seconds:.1f} ({args.epochs} epochs, CPU, incl. start-up), HistGB {gbdt_seconds:.1f}")


if __name__ == "__main__":
    main()
