"""Seconds of one training epoch per weighting strategy on a recommendation dataset (default
MovieLens-1M, every auxiliary task it supports), and each strategy's ratio to EW. Aim: PMTRec ≤ 2× EW.

    python benchmarks/pmtrec_epoch_time.py [--dataset ml-1m] [--strategies ew pmtrec …]
                                           [--batch-size 2048] [--repeats 2] [--device auto]

Each strategy trains the same model from the same seed for one epoch, `--repeats` times; the best
time counts (the machine's noise only ever adds). Evaluation is not timed. Per-task gradients are
taken on the embedding rows two or more tasks read in the batch (`TableRows`); the whole-table path
it replaced (38 s an epoch for PMTRec on one CPU thread, against 4.5 s) is gone from the model.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from mtlab.experiments import get_profile
from mtlab.experiments.pmtrec import BASELINES, load_rec_dataset, train_recommender
from mtlab.train import resolve_device


def epoch_seconds(data, strategy: str, profile, repeats: int, **overrides) -> float:
    times = [
        train_recommender(data, strategy, profile, seed=0, epochs=1, patience=0, **overrides)["seconds"]
        for _ in range(repeats)
    ]
    return min(times)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--strategies", nargs="+", default=[*BASELINES, "pmtrec"])
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    profile = get_profile("quick", seeds=[0], device=str(device))
    data = load_rec_dataset(args.dataset)
    print(
        f"{args.dataset}: {data.n_users} users, {data.n_items} items, {len(data.train)} training pairs; "
        f"device {device}, {torch.get_num_threads()} CPU thread(s), batch {args.batch_size}"
    )
    rows = []
    for strategy in args.strategies:
        seconds = epoch_seconds(data, strategy, profile, args.repeats, batch_size=args.batch_size)
        rows.append({"strategy": strategy, "epoch seconds": round(seconds, 2)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    ew = (
        float(table.loc[table["strategy"] == "ew", "epoch seconds"].iloc[0])
        if "ew" in args.strategies
        else float("nan")
    )
    table["ratio to EW"] = (table["epoch seconds"] / ew).round(2)
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
