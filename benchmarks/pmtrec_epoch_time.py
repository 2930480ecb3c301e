"""Seconds of one training epoch per weighting strategy on a recommendation dataset (default
MovieLens-1M, every auxiliary task it supports), and each strategy's ratio to EW. Aim: PMTRec ≤ 2× EW.

    python benchmarks/pmtrec_epoch_time.py [--dataset ml-1m] [--strategies ew pmtrec …]
                                           [--batch-size 2048] [--repeats 2] [--device auto]
                                           [--whole-tables]

Each strategy trains the same model from the same seed for one epoch, `--repeats` times; the best
time counts (the machine's noise only ever adds). Evaluation is not timed. `--whole-tables` also
times every strategy with per-task gradients taken on the whole embedding tables instead of the
rows the batch touched (the path before `TableRows`), to show what gathering saves.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from mtlab.experiments import get_profile
from mtlab.experiments.pmtrec import BASELINES, load_rec_dataset, train_recommender
from mtlab.train import resolve_device


def epoch_seconds(data, strategy: str, profile, repeats: int, **overrides) -> float:
    times = [train_recommender(data, strategy, profile, seed=0, epochs=1, patience=0, **overrides)["seconds"]
             for _ in range(repeats)]
    return min(times)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--strategies", nargs="+", default=[*BASELINES, "pmtrec"])
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--whole-tables", action="store_true")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    profile = get_profile("quick", seeds=[0], device=str(device))
    data = load_rec_dataset(args.dataset)
    print(f"{args.dataset}: {data.n_users} users, {data.n_items} items, {len(data.train)} training pairs; "
          f"device {device}, {torch.get_num_threads()} CPU thread(s), batch {args.batch_size}")
    paths = [("touched rows", True)] + ([("whole tables", False)] if args.whole_tables else [])
    rows = []
    for strategy in args.strategies:
        for path, gather in paths:
            seconds = epoch_seconds(data, strategy, profile, args.repeats, batch_size=args.batch_size,
                                    gather_rows=gather)
            rows.append({"strategy": strategy, "gradients on": path, "epoch seconds": round(seconds, 2)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    ew = table[table["strategy"] == "ew"].set_index("gradients on")["epoch seconds"]
    table["ratio to EW"] = (table["epoch seconds"] / table["gradients on"].map(ew)).round(2)
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
