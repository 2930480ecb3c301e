"""Ali-CCP at scale, streamed: generate raw files in the exact layout, prepare them into Parquet
shards, train one ESMM epoch reading the shards by row group; print the conversion's lines/s, the
training's samples/s and the peak resident memory of each phase.

    python benchmarks/streaming.py [--impressions 10000000] [--users 200000] [--items 100000]
                                   [--batch-sizes 2048,4096] [--workdir runs/streaming-bench] [--keep]

Aims on 2 CPU cores (issue 15): conversion ≥ 200k lines/s, training ≥ 100k samples/s, peak RSS under
2 GiB. Each phase runs in its own process; the peak printed after a phase is the largest of the
phases so far (getrusage of the finished children), so a phase's own peak is at most that.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

PHASES = {
    "generate": "from mtlab.data.converters.aliccp import generate_raw; import sys; "
    "generate_raw(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))",
    "prepare": "from mtlab.data.converters.aliccp import prepare, PrepareSettings; import sys; "
    "prepare(sys.argv[1], sys.argv[2], PrepareSettings(min_count=2), quiet=True)",
    "train": "import sys, torch; from mtlab.data.funnel_shards import load_aliccp; from mtlab.models import build_model; "
    "from mtlab.train import TrainConfig, fit; data = load_aliccp(sys.argv[1], in_memory=False); "
    "model = build_model('esmm', data.features, data.tasks); "
    "r = fit(model, data, TrainConfig(epochs=1, batch_size=int(sys.argv[2]), quiet=True, diagnostics=0)); "
    "print(r.history['train_seconds'].iloc[0])",
}


def run(phase: str, *args) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB of the child, its stdout)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PHASES[phase], *map(str, args)], check=True, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far, KiB on Linux
    return seconds, peak, out.stdout.strip()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impressions", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch-sizes", default="2048,4096", help="one streamed epoch for each")
    parser.add_argument("--workdir", default="runs/streaming-bench")
    parser.add_argument("--keep", action="store_true", help="keep the generated and prepared files")
    args = parser.parse_args(argv)
    work = Path(args.workdir)
    raw, prepared = work / "raw", work / "prepared"
    seconds, peak, _ = run("generate", raw, args.impressions, args.users, args.items)
    lines = sum(1 for f in raw.glob("*.csv") for _ in open(f, "rb"))
    print(f"generate: {args.impressions} impressions ({lines} lines in 4 files) in {seconds:.1f} s", flush=True)
    seconds, peak_prepare, _ = run("prepare", raw, prepared)
    print(
        f"prepare: {lines / seconds:,.0f} lines/s ({seconds:.1f} s for three passes); peak RSS {peak_prepare:,.0f} MiB",
        flush=True,
    )
    manifest = json.loads((prepared / "manifest.json").read_text())
    rows = manifest["rows"]["train"]
    result = {
        "lines": lines,
        "prepare_lines_per_s": lines / seconds,
        "prepare_peak_rss_mib": peak_prepare,
        "train_rows": rows,
    }
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        wall, peak_train, train_seconds = run("train", prepared, batch_size)
        result[f"train_samples_per_s_batch{batch_size}"] = rows / float(train_seconds)
        result["train_peak_rss_mib"] = max(peak_train, peak_prepare)
        print(
            f"train (ESMM, one epoch, streamed, batch {batch_size}): {rows / float(train_seconds):,.0f} samples/s "
            f"({float(train_seconds):.1f} s); peak RSS of any phase so far {result['train_peak_rss_mib']:,.0f} MiB",
            flush=True,
        )
    if not args.keep:
        shutil.rmtree(work)
    return result


if __name__ == "__main__":
    main()
