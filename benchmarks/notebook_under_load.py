"""A notebook's quick profile alone and beside busy training processes, under each OpenMP wait
policy: seconds, and the slow-down under load. Aim: at most 2.5× the quiet time with mtlab's policy.

    python benchmarks/notebook_under_load.py [--notebook 01_mtl_benchmark] [--busy 1]
                                             [--policies default passive]

"default" is OpenMP's own spin-then-sleep behaviour as torch ships it (OMP_WAIT_POLICY set empty,
so that mtlab's default does not apply), "active" spins without end, "passive" is what `import
mtlab` sets (OMP_WAIT_POLICY=PASSIVE: a thread waiting at a barrier sleeps instead of spinning
against the other process for the same cores). A busy process is `python -m mtlab train` on synthetic data (long
enough not to end first), with the same policy. Run on a quiet machine: the figures are ratios measured
side by side in one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from mtlab.runner import run_notebooks

BUSY = [
    sys.executable,
    "-m",
    "mtlab",
    "train",
    "--data",
    "synthetic",
    "--model",
    "mmoe",
    "--epochs",
    "100000",
    "--batch-size",
    "64",
    "--device",
    "cpu",
    "--quiet",
    "--profile",
    "quick",
]


def timed_run(notebook: str, policy: str, busy: int) -> float:
    value = "" if policy == "default" else policy.upper()
    env = {**os.environ, "OMP_WAIT_POLICY": value}
    saved = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = value  # the kernel inherits it
    load = [subprocess.Popen(BUSY, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(busy)]
    try:
        with tempfile.TemporaryDirectory() as out:
            time.sleep(3 if busy else 0)  # the busy process is training before the notebook starts
            summary, _ = run_notebooks("quick", [notebook], Path(out) / "run", log=lambda *_: None)
        if summary["status"].iloc[0] != "ok":
            raise RuntimeError(f"{notebook} failed: {summary['error'].iloc[0]}")
        return float(summary["seconds"].iloc[0])
    finally:
        for process in load:
            process.kill()
            process.wait()
        if saved is None:
            os.environ.pop("OMP_WAIT_POLICY", None)
        else:
            os.environ["OMP_WAIT_POLICY"] = saved


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", default="01_mtl_benchmark")
    parser.add_argument("--busy", type=int, default=1, help="busy training processes beside the notebook")
    parser.add_argument(
        "--policies", nargs="+", default=["default", "passive"], choices=["default", "active", "passive"]
    )
    args = parser.parse_args(argv)
    rows = []
    for policy in args.policies:
        quiet = timed_run(args.notebook, policy, busy=0)
        loaded = timed_run(args.notebook, policy, busy=args.busy)
        rows.append(
            {
                "notebook": args.notebook,
                "OMP_WAIT_POLICY": policy,
                "busy processes": args.busy,
                "quiet s": round(quiet, 1),
                "loaded s": round(loaded, 1),
                "slow-down": round(loaded / quiet, 2),
            }
        )
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
