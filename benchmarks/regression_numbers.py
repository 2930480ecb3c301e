"""Numbers that must not move when the core is refactored: the quick Table 2 (EW, every model, the
profile's seeds), the quick PMTRec benchmark with EW, and gradient strategies on MoE models (whose
numbers may move where the declared sharing changed them), training losses per epoch, and seeds trained one
after another beside seed-vectorized. Prints one CSV (full precision); run it before and after a
change and compare:   python benchmarks/regression_numbers.py > after.csv"""

from __future__ import annotations

import sys

import pandas as pd
import torch

from mtlab.experiments import get_profile, load_for_profile
from mtlab.experiments.compare import compare_models
from mtlab.experiments.pmtrec import pmtrec_benchmark
from mtlab.experiments.single_run import train_one, train_seeds
from mtlab.experiments.table2 import TABLE2_MODELS


def main() -> None:
    torch.set_num_threads(1)
    profile = get_profile("quick", device="cpu")
    data = load_for_profile("census-income", None, profile)
    rows = []
    results, histories = compare_models(data, TABLE2_MODELS, profile)  # seed-vectorized where allowed
    for r in results.itertuples():
        rows.append(("table2", r.model, "ew", r.seed, r.task, "auc", r.auc))
    for r in histories.itertuples():
        rows.append(("table2-history", r.model, "ew", r.seed, f"epoch{r.epoch}", "train_loss", r.train_loss))
    # the same seeds trained one after another, and seed-vectorized with a gradient-free weighting
    for model, strategy, vectorize in (("mmoe", "ew", False), ("ple", "uw", True), ("mmoe", "dwa", True)):
        for out in train_seeds(model, data, profile, vectorize=vectorize, weighting=strategy, quiet=True):
            for task, metrics in out["test"].items():
                rows.append(
                    (f"seeds-vectorized={out['vectorized']}", model, strategy, out["seed"], task, "auc", metrics["auc"])
                )
    for model in ("mmoe", "ple", "mpt_rec", "single_task"):
        for strategy in ("pcgrad", "mgda", "gradnorm", "nash_mtl"):
            out = train_one(model, data, profile, 0, quiet=True, weighting=strategy)
            for task, metrics in out["test"].items():
                rows.append(("gradient", model, strategy, 0, task, "auc", metrics["auc"]))
    bench = pmtrec_benchmark(["ml-100k", "filmtrust"], ["ew", "pmtrec"], profile)
    for r in bench.to_dict("records"):
        for metric in ("recall@40", "ndcg@40"):
            rows.append(("pmtrec", r["dataset"], r["strategy"], r["seed"], "rec", metric, r[metric]))
    pd.DataFrame(rows, columns=["suite", "model", "strategy", "seed", "task", "metric", "value"]).to_csv(
        sys.stdout, index=False, float_format="%.17g"
    )


if __name__ == "__main__":
    main()
