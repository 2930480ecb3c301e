"""Seconds of one training epoch per weighting strategy, and each one's ratio to EW measured in the
same run: MMoE on Census-Income with 2, 3 and 5 tasks, and MF on MovieLens-1M with its auxiliary
tasks (rec, category, attribute, rating: four; align is left out, its loss is negative and several
strategies take logs of the losses). Aim: every Gramian-based method within 2× EW for 2–5 tasks.

    python benchmarks/weighting_overhead.py [--strategies ew upgrad …] [--census-tasks 2 3 5]
        [--subsample 1.0] [--rec-dataset ml-1m] [--repeats 1] [--device auto] [--skip-census] [--skip-rec]

Each strategy trains the same model from the same seed for one epoch (diagnostics off, evaluation
not timed), `--repeats` times; the best time counts (the machine's noise only ever adds). Strategies
that cannot run on MF (a running state per shared element, while MF shares the rows each batch reads)
are listed as n/a.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from mtlab.data import CENSUS_TASKS, load_rec_dataset
from mtlab.experiments import get_profile, load_for_profile, train_one
from mtlab.experiments.gradient_lab import not_applicable, rec_tasks
from mtlab.train import resolve_device
from mtlab.weighting import STRATEGIES, GramianCombination

CENSUS_TASK_SETS = {
    2: ["income", "marital"],
    3: ["income", "marital", "education"],
    5: ["income", "marital", "education", "sex", "bachelors"],
}


def epoch_seconds(model: str, data, profile, strategy: str, repeats: int, **options) -> float:
    times = []
    for _ in range(repeats):
        out = train_one(
            model, data, profile, 0, weighting=strategy, epochs=1, patience=0, diagnostics=0, quiet=True, **options
        )
        times.append(float(out["history"]["train_seconds"].iloc[0]))
    return min(times)


def kind(strategy: str) -> str:
    cls = STRATEGIES[strategy]
    if issubclass(cls, GramianCombination):
        return "Gramian"
    return "gradients" if hasattr(cls, "combine") else "losses"


def measure(setting: str, model: str, data, profile, strategies, repeats: int, **options) -> pd.DataFrame:
    rows = []
    for strategy in strategies:
        reason = not_applicable("movielens" if model == "mf" else "census-income", strategy)
        seconds = float("nan") if reason else epoch_seconds(model, data, profile, strategy, repeats, **options)
        rows.append(
            {"setting": setting, "strategy": strategy, "kind": kind(strategy), "epoch seconds": round(seconds, 2)}
        )
        print(rows[-1] if not reason else {**rows[-1], "n/a": reason}, flush=True)
    table = pd.DataFrame(rows)
    ew = table.loc[table["strategy"] == "ew", "epoch seconds"]
    table["ratio to EW"] = (table["epoch seconds"] / float(ew.iloc[0])).round(2) if len(ew) else float("nan")
    return table


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", nargs="+", default=[s for s in STRATEGIES if s != "pmtrec"])
    parser.add_argument("--census-tasks", nargs="+", type=int, default=[2, 3, 5], choices=sorted(CENSUS_TASK_SETS))
    parser.add_argument("--subsample", type=float, default=1.0, help="fraction of Census-Income rows")
    parser.add_argument("--census-batch", type=int, default=256)
    parser.add_argument("--rec-dataset", default="ml-1m")
    parser.add_argument("--rec-batch", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-census", action="store_true")
    parser.add_argument("--skip-rec", action="store_true")
    args = parser.parse_args(argv)
    strategies = ["ew", *[s for s in args.strategies if s != "ew"]]  # EW first: every ratio is to it
    device = resolve_device(args.device)
    profile = get_profile("quick", seeds=[0], device=str(device), subsample=args.subsample)
    print(f"device {device}, {torch.get_num_threads()} CPU thread(s)")
    tables = []
    if not args.skip_census:
        assert set(CENSUS_TASKS) >= {t for ts in CENSUS_TASK_SETS.values() for t in ts}
        for n in args.census_tasks:
            data = load_for_profile("census-income", CENSUS_TASK_SETS[n], profile)
            print(f"census-income, MMoE, {n} tasks: {len(data.train)} training rows, batch {args.census_batch}")
            tables.append(
                measure(
                    f"census MMoE T={n}", "mmoe", data, profile, strategies, args.repeats, batch_size=args.census_batch
                )
            )
    if not args.skip_rec:
        data = load_rec_dataset(args.rec_dataset)
        tasks = rec_tasks(data)
        print(
            f"{args.rec_dataset}, MF, tasks {', '.join(tasks)}: {len(data.train)} training pairs, batch {args.rec_batch}"
        )
        tables.append(
            measure(
                f"{args.rec_dataset} MF T={len(tasks)}",
                "mf",
                data,
                profile,
                strategies,
                args.repeats,
                tasks=tasks,
                batch_size=args.rec_batch,
            )
        )
    table = pd.concat(tables, ignore_index=True)
    wide = table.pivot(index=["strategy", "kind"], columns="setting", values="ratio to EW")
    wide = wide.reindex(pd.MultiIndex.from_frame(table[["strategy", "kind"]].drop_duplicates()))
    seconds = table.pivot(index="strategy", columns="setting", values="epoch seconds").loc["ew"]
    print("\nEW epoch seconds:", ", ".join(f"{k}: {v:.2f}" for k, v in seconds.items()))
    print("ratio of each strategy's epoch to EW's (n/a: NaN):")
    print(wide.to_string())
    gramian = wide[wide.index.get_level_values("kind") == "Gramian"]
    over = gramian[(gramian > 2).any(axis=1)]
    print(f"\nGramian-based methods over 2× EW somewhere: {', '.join(over.index.get_level_values(0)) or 'none'}")
    return table


if __name__ == "__main__":
    main()
