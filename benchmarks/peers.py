"""mtlab against the peer libraries' own training loops, side by side in one run: torch-rechub 0.9.0
(MMOE / PLE + MTLTrainer.train_one_epoch) and DeepCTR-Torch 0.3.0 (MMOE / PLE + fit), on the same
Census-Income rows (mtlab's split: 199,523 training rows, tasks income and marital), at the peers' usual
size (embeddings of 4, experts [16], towers [8]; MMoE with 8 experts, PLE one level), Adam lr 1e-3.

    python benchmarks/peers.py [--batch-sizes 1024 4096] [--models mmoe ple] [--repeats 2] [--epochs 2]
                               [--device cpu|cuda] [--libs mtlab torch-rechub deepctr-torch]

The peers live in an environment of their own, made once under benchmarks/.peers/ (git-ignored) with the
project's torch version; nothing is installed into the project's environment. Every timing is a fresh
process (benchmarks/peers_worker.py) that trains `--epochs` epochs; the libraries take turns within a
repeat (the order rotating), and each figure is the median over repeats × epochs of one training epoch's
seconds (validation not included). Prints one row per model, batch size and library: seconds an epoch,
the test AUC of both tasks (the last repeat's), and how many times faster mtlab is than that library.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "benchmarks" / ".peers"
WORKER = ROOT / "benchmarks" / "peers_worker.py"
PEERS = {"torch-rechub": "0.9.0", "deepctr-torch": "0.3.0"}
UNDECLARED = ("requests",)  # deepctr-torch imports it (a version check) without declaring it
LIBS = ("mtlab", *PEERS)


def peer_python() -> Path:
    """The peers' environment's Python, made (once) with the project's torch version and the pinned peers."""
    env = STATE / "venv"
    python, stamp = env / "bin" / "python", env / "mtlab-peers.json"
    want = {"torch": torch.__version__.split("+")[0], **PEERS}
    try:
        if json.loads(stamp.read_text()) == want and python.exists():
            check = subprocess.run([str(python), "-c", "import torch_rechub, deepctr_torch"], capture_output=True)
            if check.returncode == 0:  # a broken environment is made again
                return python
    except (OSError, ValueError):
        pass
    print(f"making the peers' environment in {env} (once): {want}", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            *(f"{name}=={version}" for name, version in want.items()),
            *UNDECLARED,
        ],
        check=True,
    )
    stamp.write_text(json.dumps(want))
    return python


def peers_from_wheels(wheels: Path) -> dict:
    """Offline (a GPU machine that reaches no package index): install the peers' wheels found in
    `wheels` (`pip download --no-deps torch-rechub==0.9.0 deepctr-torch==0.3.0 -d DIR`) into
    benchmarks/.peers/site without their dependencies, and return the environment for a worker run by
    this Python (whose torch, pandas, scikit-learn, tqdm and requests they then use)."""
    site = STATE / "site"
    found = sorted(Path(wheels).glob("*.whl"))
    if not found:
        raise SystemExit(f"--peers-from {wheels}: no .whl files there")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--target",
            str(site),
            *map(str, found),
        ],
        check=True,
    )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def shared_rows() -> Path:
    """Census-Income's training and test rows as mtlab splits them (full profile), as arrays in one .npz
    every library reads: categorical codes, numeric columns, the two labels, each field's vocabulary."""
    from mtlab.data.download import data_dir
    from mtlab.experiments import get_profile, load_for_profile

    raw = sorted((data_dir() / "census-income").glob("*.csv"))
    key = hashlib.sha256(repr([(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in raw]).encode()).hexdigest()
    path = STATE / f"census-income-{key[:12]}.npz"  # made again when the raw files (or their folder) change
    if path.exists():
        return path

    data = load_for_profile("census-income", ["income", "marital"], get_profile("full"))
    arrays = {"vocab": np.asarray(data.features.cat_cardinalities, dtype=np.int64)}
    for split in ("train", "test"):
        part = data.split(split)
        arrays[f"{split}_cat"] = part.cat.numpy()
        arrays[f"{split}_num"] = part.num.numpy()
        arrays[f"{split}_y"] = part.labels.numpy()
    STATE.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=STATE, suffix=".npz")
    os.close(handle)
    np.savez(temporary, **arrays)
    os.replace(temporary, path)
    return path


def worker_env(threads: int, base: dict | None = None) -> dict:
    """The same threads and OpenMP wait policy for every library's process (mtlab's import would set
    PASSIVE and choose its threads from the free cores; the peers would keep OpenMP's defaults)."""
    return {
        **(base or os.environ),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": "PASSIVE",
        "MTLAB_THREADS": str(threads),
    }


def load_now() -> float:
    """Other processes' threads running right now, between two timings (the median of five readings of
    /proc/loadavg's running count, less this process's own; 0 where /proc is absent). Not the load
    average, which our own timing processes raise to about 1."""
    from mtlab.train.device import _own_running

    readings = []
    for _ in range(5):
        try:
            readings.append(int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - _own_running())
        except (OSError, ValueError, IndexError):
            return 0.0
        time.sleep(0.05)
    return float(max(0, sorted(readings)[2]))


def machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_one(
    python: Path, lib: str, model: str, batch: int, epochs: int, rows: Path, device: str, env: dict | None = None
) -> dict:
    """One timing in a fresh process: {"epoch_seconds", "auc", ...}, or {"error": ...} where it failed
    (the run goes on: a broken library costs its rows, not the table)."""
    command = [str(python), str(WORKER), lib, model, str(batch), str(epochs), str(rows), device]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=3600, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "ran past an hour"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        last = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or [""]
        return {"error": f"exit {done.returncode}: {last[0][:300]}"}
    return json.loads(lines[-1])


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--models", nargs="+", default=["mmoe", "ple"], choices=["mmoe", "ple"])
    parser.add_argument("--libs", nargs="+", default=list(LIBS), choices=list(LIBS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--peers-from",
        type=Path,
        default=None,
        help="a folder of the peers' wheels: offline, run them with this Python",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="intra-op threads of every library (all the same)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    rows = shared_rows()
    pythons = {lib: Path(sys.executable) for lib in args.libs}
    envs: dict = {}
    if set(args.libs) & set(PEERS) and args.peers_from:
        envs = dict.fromkeys(PEERS, peers_from_wheels(args.peers_from))
    elif set(args.libs) & set(PEERS):
        peer = peer_python()
        pythons.update({lib: peer for lib in args.libs if lib in PEERS})
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else machine()
    print(
        f"{date.today()} · {args.device} ({device_name}) · {os.cpu_count()} cores, {args.threads} thread(s) for every "
        f"library · torch {torch.__version__} · {args.repeats} repeats × {args.epochs} epochs a timing, median",
        flush=True,
    )
    records, failures, loads = [], [], []
    for model in args.models:
        for batch in args.batch_sizes:
            for repeat in range(args.repeats):
                order = args.libs[repeat % len(args.libs) :] + args.libs[: repeat % len(args.libs)]
                for lib in order:
                    loads.append(load_now())
                    env = worker_env(args.threads, envs.get(lib))
                    out = time_one(pythons[lib], lib, model, batch, args.epochs, rows, args.device, env)
                    if "error" in out:
                        failures.append(f"{lib} {model} batch {batch}: {out['error']}")
                        print(f"  {model} batch {batch} {lib}: FAILED {out['error']}", flush=True)
                        continue
                    records += [{**out, "repeat": repeat, "epoch_s": s} for s in out["epoch_seconds"]]
                    print(
                        f"  {model} batch {batch} {lib}: {' '.join(f'{s:.2f}' for s in out['epoch_seconds'])} s",
                        flush=True,
                    )
    if not records:
        raise SystemExit("no timing succeeded:\n" + "\n".join(failures))
    frame = pd.DataFrame(records)
    table = frame.groupby(["model", "batch", "lib"], sort=False).agg(s_per_epoch=("epoch_s", "median")).reset_index()
    last = frame.drop_duplicates(["model", "batch", "lib"], keep="last").set_index(["model", "batch", "lib"])["auc"]
    table["auc_income"] = [last[tuple(k)]["income"] for k in table[["model", "batch", "lib"]].values]
    table["auc_marital"] = [last[tuple(k)]["marital"] for k in table[["model", "batch", "lib"]].values]
    ours = table[table["lib"] == "mtlab"].set_index(["model", "batch"])["s_per_epoch"]
    table["mtlab_is_x_faster"] = [
        ours.get((m, b), np.nan) and s / ours.get((m, b), np.nan)
        for m, b, s in table[["model", "batch", "s_per_epoch"]].values
    ]
    print(table.round(4).to_string(index=False))
    for (model, batch), part in table[table["lib"] != "mtlab"].groupby(["model", "batch"]):
        fastest = part.loc[part["s_per_epoch"].idxmin()]
        print(
            f"{model}, batch {batch}: fastest peer {fastest['lib']} {fastest['s_per_epoch']:.2f} s/epoch; mtlab "
            f"{ours.get((model, batch), np.nan):.2f} s/epoch = {fastest['mtlab_is_x_faster']:.1f}x (aim: 10x)"
        )
    if failures:
        print("failed timings (left out of the table):\n  " + "\n  ".join(failures))
    busy = float(np.mean(loads)) if loads else 0.0
    if busy >= 0.5:
        print(
            f"NOTE: other processes were running between timings ({busy:.1f} threads on average): these are "
            "not a quiet machine's figures (every library met the same load, in turns)"
        )
    return table


if __name__ == "__main__":
    main()
