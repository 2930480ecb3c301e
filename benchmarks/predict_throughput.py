"""`python -m mtlab predict` on large files: rows per second and peak memory (RSS) of the process for
inputs of growing size (memory should stay flat: the file is read in chunks), quiet and beside a busy
training process; and the saved model's forward in torch beside ONNX Runtime on the same rows.

    python benchmarks/predict_throughput.py [--rows 100000 1000000] [--busy 1] [--epochs 3]

The model is MMoE on a 20,000-row Census-Income sample prepared as a table of one's own (income,
weeks worked, marital status: one task of each kind); the inputs repeat the census rows without their
labels. Every figure is measured in this one run, side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

BUSY = [sys.executable, "-m", "mtlab", "train", "--data", "synthetic", "--model", "mmoe", "--epochs", "100000",
        "--batch-size", "64", "--device", "cpu", "--quiet", "--profile", "quick"]  # fmt: skip


# the child reports its own peak RSS (VmHWM: reset by exec, unlike ru_maxrss, which keeps the high-water
# mark of the forked copy of this process and would report the benchmark's own memory)
CHILD = (
    "import sys\n"
    "from mtlab.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "peak = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
    "print(f'peak-kib {peak}', file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run_predict(model: Path, source: Path, out: Path, env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one `mtlab predict` process."""
    start = time.perf_counter()
    command = [sys.executable, "-c", CHILD, "predict", "--model", model, "--input", source, "--out", out, "--quiet"]
    done = subprocess.run(list(map(str, command)), env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"predict failed: {done.stderr[-2000:]}")
    peak = next(line for line in done.stderr.splitlines() if line.startswith("peak-kib"))
    return seconds, int(peak.split()[1]) / 1024


def forward_rates(model_path: Path, frame: pd.DataFrame, repeats: int = 10) -> dict:
    """Rows per second of the saved model's forward (encoded rows) in torch and in ONNX Runtime."""
    from mtlab import load_model
    from mtlab.train.export import export_onnx

    saved = load_model(model_path, device="cpu")
    batch = saved.encoding.encode(frame).batch
    rates = {}
    start = time.perf_counter()
    for _ in range(repeats):
        saved.predict_batch(batch)
    rates["torch forward, rows/s"] = repeats * len(frame) / (time.perf_counter() - start)
    try:
        import onnxruntime
    except ImportError:
        return rates
    onnx = export_onnx(saved, model_path.with_suffix(".onnx"))
    session = onnxruntime.InferenceSession(str(onnx))
    feeds = {"cat": batch.cat.numpy(), "num": batch.num.numpy()}
    start = time.perf_counter()
    for _ in range(repeats):
        session.run(None, feeds)
    rates["ONNX Runtime, rows/s"] = repeats * len(frame) / (time.perf_counter() - start)
    return rates


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--busy", type=int, default=1, help="busy training processes beside the loaded runs")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    from mtlab.data.download import data_dir

    census_root = data_dir()  # where Census-Income was fetched; the prepared table goes to a temporary folder
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "MTLAB_DATA_DIR": str(tmp / "data")}
        os.environ["MTLAB_DATA_DIR"] = env["MTLAB_DATA_DIR"]
        from mtlab.data import prepare_table
        from mtlab.data.census import write_csv
        from mtlab.experiments import get_profile, load_for_profile, train_one

        source = write_csv(tmp / "census.csv", rows=20_000, root=census_root)
        tasks = ["income:binary:50000+.", "weeks_worked_in_year:regression", "marital_status:multiclass"]
        prepare_table(source, "census-table", tasks, drop=["instance_weight"], quiet=True)
        profile = get_profile("quick", seeds=[0], device="cpu", subsample=1.0)
        data = load_for_profile("census-table", None, profile)
        model = tmp / "mmoe.safetensors"
        train_one("mmoe", data, profile, 0, epochs=args.epochs, quiet=True).save(model)
        rows = pd.read_csv(source).drop(columns=["income", "weeks_worked_in_year", "marital_status"])
        print(f"model: MMoE, 3 tasks, {model.stat().st_size / 2**20:.1f} MiB file; CPU threads: 2")
        figures = []
        for n in args.rows:
            frame = rows.iloc[np.arange(n) % len(rows)]
            for suffix in (".csv", ".parquet"):
                path = tmp / f"new-{n}{suffix}"
                frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
                for busy in sorted({0, args.busy}):
                    load = [
                        subprocess.Popen(BUSY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        for _ in range(busy)
                    ]
                    try:
                        time.sleep(3 if busy else 0)
                        seconds, rss = run_predict(model, path, tmp / f"out{suffix}", env)
                    finally:
                        for process in load:
                            process.kill()
                            process.wait()
                    figures.append({"rows": n, "input": suffix[1:], "busy processes": busy, "seconds": seconds,
                                    "rows/s": n / seconds, "peak RSS, MiB": rss})  # fmt: skip
                path.unlink()
        table = pd.DataFrame(figures)
        quiet = table[table["busy processes"] == 0].set_index(["rows", "input"])["seconds"]
        table["× quiet"] = [s / quiet[(r, i)] for r, i, s in zip(table["rows"], table["input"], table["seconds"])]
        print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
        for name, rate in forward_rates(model, rows.iloc[np.arange(65_536) % len(rows)]).items():
            print(f"{name} (65,536 encoded rows a call): {rate:,.0f}")


if __name__ == "__main__":
    main()
