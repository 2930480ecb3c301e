"""Many seeds for the price of one: S seeds trained seed-vectorized as one batched model
(`mtlab.train.vectorized`) against the same S seeds one after another, for MMoE on Census-Income and
MF (EW, every auxiliary task) on MovieLens-1M. Aims: on 2 CPU cores, 5 seeds vectorized at least
2.5x faster than one by one; on one H100, 5 seeds in at most 1.3x the time of one.

    python benchmarks/many_runs.py [--seeds 1 5 10] [--epochs 1] [--device auto] [--compile]
                                   [--cases census,ml-1m] [--subsample 1.0] [--busy 0 1 2]
                                   [--threads auto 2 1]

Every run trains `--epochs` epochs without early stopping (patience 0), each epoch validated, as a
table's run is; the seconds are the wall time of the fit calls (building the models and the final
test evaluation not counted), measured side by side in one process. Columns: one_by_one_s,
vectorized_s, speedup (one by one / vectorized), and vs_one_seed (vectorized S seeds / one seed).

--busy N: also with N busy processes beside (each trains an MMoE on synthetic rows with mtlab's `fit`,
one model after another, as another notebook or sweep would: mtlab's thread choice and OpenMP's
passive wait), started before and stopped after that setting's timings; a row per setting. Each cell is
one timing, vectorized first: repeat the command to see the spread. --threads: the intra-op thread policy of the timed
runs: "auto" (mtlab's: the cores free at each epoch, mtlab.train.device.usable_cores) or a number
pinned through $MTLAB_THREADS; a row per policy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import pandas as pd
import torch

from mtlab.experiments import get_profile, load_for_profile
from mtlab.experiments.pmtrec import load_rec_dataset
from mtlab.models import build_model
from mtlab.train import TrainConfig, fit, resolve_device, seed_everything
from mtlab.train.vectorized import fit_members


def census_case(subsample: float | None):
    data = load_for_profile("census-income", None, get_profile("full", subsample=subsample))
    build = lambda seed: _seeded(seed, lambda: build_model("mmoe", data.features, data.tasks))  # noqa: E731
    return data, build, dict(batch_size=256)  # the MPT-Rec release's Census-Income setup


def movielens_case(subsample: float | None):
    data = load_rec_dataset("ml-1m")
    tasks = data.tasks
    build = lambda seed: _seeded(seed, lambda: build_model("mf", data.spec, tasks, dim=64))  # noqa: E731
    return data, build, dict(batch_size=2048, lr=5e-3)  # the recommender profile's settings


CASES = {"census": ("MMoE, Census-Income", census_case), "ml-1m": ("MF (EW), MovieLens-1M", movielens_case)}


def _seeded(seed, make):
    seed_everything(seed)
    return make()


def seconds(data, build, seeds: int, vectorized: bool, compile_step: bool, **settings) -> float:
    configs = [TrainConfig(seed=s, patience=0, quiet=True, **settings) for s in range(seeds)]
    models = [build(c.seed) for c in configs]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    if vectorized:
        fit_members(models, data, configs, compile_step=compile_step)
    else:
        for model, config in zip(models, configs):
            fit(model, data, config)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def busy_worker() -> None:
    """A busy neighbour: MMoE on synthetic rows trained one model after another until killed."""
    from mtlab.data import make_synthetic

    data = make_synthetic(n_samples=20_000, rho=0.5, seed=0)
    seed = 0
    while True:
        model = _seeded(seed, lambda: build_model("mmoe", data.features, data.tasks))
        fit(model, data, TrainConfig(epochs=1, batch_size=256, patience=0, quiet=True, seed=seed))
        seed += 1


def start_busy(n: int) -> list[subprocess.Popen]:
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--busy-worker"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(n)
    ]
    time.sleep(8 if n else 0)  # imported and training before the timings start
    return procs


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="compile the vectorized step (CUDA graphs on CUDA)")
    parser.add_argument("--cases", default="census,ml-1m", help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--subsample", type=float, default=None, help="fraction of Census-Income's rows (default all)")
    parser.add_argument("--busy", type=int, nargs="+", default=[0], help="busy processes beside the timings (0: quiet)")
    parser.add_argument("--threads", nargs="+", default=["auto"], help='"auto" (mtlab\'s choice) or a pinned count')
    parser.add_argument("--busy-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.busy_worker:
        busy_worker()
    device = resolve_device(args.device)
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; allowed values: {', '.join(CASES)}")
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"{torch.get_num_threads()} CPU thread(s), {args.epochs} epoch(s) a run, torch {torch.__version__}"
    )
    rows = []
    for case in cases:
        title, make = CASES[case]
        data, build, settings = make(args.subsample)
        settings = {**settings, "epochs": args.epochs, "device": str(device)}
        print(f"{title}: {len(data.train)} training rows", flush=True)
        # warm-up: first-call costs (and with --compile the compile itself) out of the figures
        seconds(data, build, min(args.seeds), True, args.compile, **{**settings, "epochs": 1})
        for busy in args.busy:
            neighbours = start_busy(busy)
            try:
                for threads in args.threads:
                    if threads == "auto":
                        os.environ.pop("MTLAB_THREADS", None)
                    else:
                        os.environ["MTLAB_THREADS"] = threads
                    one = None
                    for n in args.seeds:
                        vectorized = seconds(data, build, n, True, args.compile, **settings)
                        one_by_one = seconds(data, build, n, False, False, **settings)
                        one = vectorized if n == 1 else one
                        rows.append(
                            {
                                "case": title,
                                "busy": busy,
                                "threads": threads,
                                "seeds": n,
                                "one_by_one_s": round(one_by_one, 2),
                                "vectorized_s": round(vectorized, 2),
                                "speedup": round(one_by_one / vectorized, 2),
                                "vs_one_seed": round(vectorized / one, 2) if one else float("nan"),
                            }
                        )
                        print(rows[-1], flush=True)
            finally:
                stop_busy(neighbours)
                os.environ.pop("MTLAB_THREADS", None)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
