"""MPT-Rec Sec. 4.3: a new task T3 beside T1 = income and T2 = marital status on Census-Income (on
Ali-CCP: T1 = ctr, T2 = cvr, T3 = the business scenario, field 301, taken out of the features).

Table 3 — fine-tuning schemes on a frozen pre-trained model (and MAML): T3 AUC, trainable
parameters and training FLOPs per sample, each also as % of full training of the same model on all
three tasks, and T1/T2 AUC before and after. Table 4 / Fig. 1 — negative transfer: the change of T1
and T2 AUC when T3 joins full training.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from ..data import MultiTaskData
from ..data.census import task_def
from ..train import count_parameters, evaluate, flops_per_sample
from ..train.new_task_protocols import fine_tune, maml, pretrain_seeds
from .artifacts import titled
from .profiles import Profile
from .seed_stats import paired_p
from .single_run import load_for_profile, train_config
from .store import ResultsStore

EXISTING = ("income", "marital")
FULL_TRAINING_MODELS = ("shared_bottom", "mmoe", "ple", "stem", "mpt_rec")
FINE_TUNING_MODELS = ("shared_bottom", "mmoe", "ple", "mpt_rec")
SCHEME_NAMES = {"shared_bottom": "Shared Bottom*", "mmoe": "MMoE*", "ple": "PLE*", "mpt_rec": "MPT-Rec", "maml": "MAML"}

# MPT-Rec paper, Table 3 (Census-Income, T3 = education): AUC, trainable parameters and FLOPs, the
# last two also as % of full training.
PAPER_TABLE3 = pd.DataFrame(
    [
        ("maml", 0.8563, "26k", None, "19M", None),
        ("shared_bottom", 0.8133, "21k", 21.2, "3M", 10.8),
        ("mmoe", 0.8497, "21k", 9.4, "3M", 4.7),
        ("ple", 0.8617, "118k", 26.0, "30M", 26.2),
        ("mpt_rec", 0.8626, "27k", 9.3, "7M", 8.7),
    ],
    columns=["model", "paper_t3_auc", "paper_params", "paper_params_pct", "paper_flops", "paper_flops_pct"],
)

# Table 4: the sign of the change of T1 / T2 AUC when T3 joins full training.
PAPER_TABLE4 = pd.DataFrame(
    [
        ("education", "income", "shared_bottom", "+"),
        ("education", "income", "mmoe", "+"),
        ("education", "income", "ple", "-"),
        ("education", "income", "stem", "-"),
        ("education", "marital", "shared_bottom", "-"),
        ("education", "marital", "mmoe", "+"),
        ("education", "marital", "ple", "+"),
        ("education", "marital", "stem", "-"),
    ]
    + [("sex", task, model, "-") for task in EXISTING for model in ("shared_bottom", "mmoe", "ple", "stem")],
    columns=["new_task", "task", "model", "paper_sign"],
)
# The paper's "Education" is our `bachelors` task by its label correlations (mtlab/data/census.py); our
# `education` (at least college, as in the MMoE paper) is a related, easier task. The paper's education
# figures are shown beside both.
PAPER_TABLE4 = pd.concat(
    [PAPER_TABLE4, PAPER_TABLE4[PAPER_TABLE4["new_task"] == "education"].assign(new_task="bachelors")],
    ignore_index=True,
)
# Table 3 on Ali-CCP (T3 = the business scenario).
PAPER_TABLE3_ALICCP = pd.DataFrame(
    [
        ("maml", 0.7155, "1748k", None, "43M", None),
        ("shared_bottom", 0.6279, "6k", 0.12, "6M", 11.2),
        ("mmoe", 0.6862, "7k", 0.13, "7M", 5.1),
        ("ple", 0.6997, "33k", 0.62, "66M", 26.4),
        ("mpt_rec", 0.6968, "8k", 0.15, "17M", 9.2),
    ],
    columns=["model", "paper_t3_auc", "paper_params", "paper_params_pct", "paper_flops", "paper_flops_pct"],
)
PAPER_TABLE3_BY_DATASET = {"census-income": PAPER_TABLE3, "ali-ccp": PAPER_TABLE3_ALICCP}
# Ali-CCP's new task: a categorical field made the label, and taken out of the inputs.
FUNNEL_NEW_TASKS = {"scenario": "f301"}

# Pearson correlations the paper reports (Sec. 4.3.1).
PAPER_CORRELATIONS = {
    "education": {"T3-T1": 0.186, "T3-T2": 0.142, "T1-T2": 0.178},
    "sex": {"T3-T1": 0.158, "T3-T2": 0.063, "T1-T2": 0.178},
}
PAPER_CORRELATIONS["bachelors"] = PAPER_CORRELATIONS["education"]


def existing_tasks(dataset: str = "census-income") -> tuple[str, str]:
    """T1 and T2 of the new-task experiments on `dataset`."""
    return EXISTING if dataset == "census-income" else ("ctr", "cvr")


def load_new_task_data(new_task: str, profile: Profile, seed: int = 0, dataset: str = "census-income") -> MultiTaskData:
    """T1, T2 and the new task T3 (its column out of the features for every stage): on Census-Income
    any of its tasks; on Ali-CCP (prepared, in memory) `scenario` (field 301, its most frequent value)
    or `f<field>` for another single-valued field."""
    if dataset == "ali-ccp":
        column = FUNNEL_NEW_TASKS.get(new_task, new_task)
        data = load_for_profile(dataset, list(existing_tasks(dataset)), profile, seed=seed)
        return data.task_from_column(column, new_task).check_labels()
    if dataset != "census-income":
        raise ValueError(f"the new-task experiments run on census-income or ali-ccp, not {dataset!r}")
    if task_def(new_task).kind != "binary":  # a clear error for an unknown task before any loading
        raise ValueError(
            f"the new task {new_task!r} is {task_def(new_task).kind}; the new-task protocols (prompt tuning, "
            "fine-tuning heads, MAML) train and score a binary task: choose a binary one (e.g. education, sex)"
        )
    if new_task in EXISTING:
        raise ValueError(f"the new task must differ from the existing tasks {EXISTING}")
    return load_for_profile("census-income", [*EXISTING, new_task], profile, seed=seed)


def label_correlations(data3: MultiTaskData) -> dict[str, float]:
    """Pearson correlation of the training labels: T3–T1, T3–T2, T1–T2."""
    y = data3.train.labels.T
    corr = torch.corrcoef(y)
    return {"T3-T1": float(corr[2, 0]), "T3-T2": float(corr[2, 1]), "T1-T2": float(corr[0, 1])}


def _probe(data: MultiTaskData, device):
    return data.to(device).train.rows(torch.arange(min(256, len(data.train)), device=device))[0]


def new_task_table(
    data3: MultiTaskData,
    profile: Profile,
    models: Sequence[str] = FINE_TUNING_MODELS,
    include_maml: bool = True,
    model_options: dict | None = None,
    head_options: dict | None = None,
    results_path=None,
    **train_overrides,
) -> pd.DataFrame:
    """Table 3: one row per scheme × seed (see the module docstring).
    results_path: a CSV every finished row is appended to; rows already there are not run again."""
    data2 = data3.select_tasks(data3.tasks[:2])
    t1, t2, t3 = data3.tasks
    store = ResultsStore(results_path, ["model", "seed"])

    def keep(row):
        store.add([row])

    configs = {seed: train_config(profile, seed, quiet=True, **train_overrides) for seed in profile.seeds}
    for name in models:
        pending = store.pending((name,), profile.seeds)
        if not pending:
            continue
        options = (model_options or {}).get(name, {})
        # the pending seeds' pre-trainings in one process, seed-vectorized where the model allows
        bases = pretrain_seeds(name, data2, [configs[s] for s in pending], **options)
        fulls = pretrain_seeds(name, data3, [configs[s] for s in pending], **options)
        for seed, (base, base_fit), (full, full_fit) in zip(pending, bases, fulls):
            before = evaluate(base, data2.to(base_fit.device).test, data2.tasks)
            device = full_fit.device
            full_scores = evaluate(full, data3.to(device).test, data3.tasks)
            tuned, fit_result = fine_tune(base, data3, configs[seed], **(head_options or {}).get(name, {}))
            after = evaluate(tuned, data3.to(device).test, data3.tasks)
            probe = _probe(data3, device)
            keep(
                {
                    "scheme": SCHEME_NAMES[name],
                    "model": name,
                    "seed": seed,
                    "t3_auc": after[t3]["auc"],
                    "full_t3_auc": full_scores[t3]["auc"],
                    "trainable_params": count_parameters(tuned),
                    "full_params": count_parameters(full),
                    "train_flops_per_sample": flops_per_sample(tuned, probe, training=True),
                    "full_train_flops_per_sample": flops_per_sample(full, probe, training=True),
                    "seconds": fit_result.seconds,
                    "full_seconds": full_fit.seconds,
                    "t1_before": before[t1]["auc"],
                    "t1_after": after[t1]["auc"],
                    "t2_before": before[t2]["auc"],
                    "t2_after": after[t2]["auc"],
                    "t1_full": full_scores[t1]["auc"],
                    "t2_full": full_scores[t2]["auc"],
                }
            )
    for seed in store.pending(("maml",), profile.seeds) if include_maml else []:
        model, fit_result = maml(data3, configs[seed])
        device = fit_result.device
        scores = evaluate(model, data3.select_tasks([t3]).to(device).test, [t3])
        keep(
            {
                "scheme": "MAML",
                "model": "maml",
                "seed": seed,
                "t3_auc": scores[t3]["auc"],
                "trainable_params": count_parameters(model),
                "train_flops_per_sample": flops_per_sample(model, _probe(data3, device), training=True),
                "seconds": fit_result.seconds,
            }
        )
    table = store.frame(model=[*models, *(["maml"] if include_maml else [])], seed=profile.seeds)
    table = _maml_reference(table)
    table["params_pct_of_full"] = 100 * table["trainable_params"] / table["full_params"]
    table["flops_pct_of_full"] = 100 * table["train_flops_per_sample"] / table["full_train_flops_per_sample"]
    table["t3_auc_pct_of_full"] = 100 * table["t3_auc"] / table["full_t3_auc"]
    return titled("table3_runs", table, "new task: every scheme and seed", keys=("model", "seed"))


def _maml_reference(table: pd.DataFrame) -> pd.DataFrame:
    """MAML adapts a Shared Bottom backbone: its "full training" reference is the same seed's full
    Shared Bottom training (taken at assembly, so MAML and Shared Bottom* may run apart)."""
    columns = ["full_t3_auc", "full_params", "full_train_flops_per_sample"]
    table = table.reindex(columns=[*table.columns, *(c for c in columns if c not in table)])
    reference = table.loc[table["model"] == "shared_bottom", ["seed", *columns]].set_index("seed")
    is_maml = table["model"] == "maml"
    for column in columns:
        table.loc[is_maml, column] = table.loc[is_maml, "seed"].map(reference[column]).to_numpy()
    return table


def summarize_new_task(table: pd.DataFrame, dataset: str = "census-income") -> pd.DataFrame:
    """Table 3 as in the paper: mean ± std over seeds per scheme, with the paper's figures for
    `dataset` beside (none for a dataset the paper has no Table 3 of)."""

    def pm(col):
        g = table.groupby("model", sort=False)[col]
        return g.mean().map("{:.4f}".format) + " ± " + g.std().fillna(0).map("{:.4f}".format)

    out = pd.DataFrame(
        {
            "scheme": table.groupby("model", sort=False)["scheme"].first(),
            "T3 AUC": pm("t3_auc"),
            "trainable params": table.groupby("model", sort=False)["trainable_params"].mean().round().astype(int),
            "params % of full": table.groupby("model", sort=False)["params_pct_of_full"].mean().round(1),
            "train FLOPs/sample": table.groupby("model", sort=False)["train_flops_per_sample"]
            .mean()
            .round()
            .astype(int),
            "FLOPs % of full": table.groupby("model", sort=False)["flops_pct_of_full"].mean().round(1),
            "T3 AUC % of full": table.groupby("model", sort=False)["t3_auc_pct_of_full"].mean().round(1),
        }
    )
    if "t1_before" in table:
        for t in ("t1", "t2"):
            delta = (table[f"{t}_after"] - table[f"{t}_before"]).groupby(table["model"], sort=False)
            out[f"max |{t.upper()} AUC change|"] = delta.apply(lambda d: d.abs().max())
    paper = PAPER_TABLE3_BY_DATASET.get(dataset, PAPER_TABLE3.iloc[:0])
    return titled(
        "table3_vs_paper",
        out.reset_index().merge(paper, on="model", how="left"),
        "MPT-Rec Table 3: ours beside the paper",
        keys=("model",),
    )


def negative_transfer(
    profile: Profile,
    new_tasks: Sequence[str] = ("education", "sex"),
    models: Sequence[str] = FULL_TRAINING_MODELS,
    model_options: dict | None = None,
    results_path=None,
    **train_overrides,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 4 / Fig. 1: for each new task and model, T1 and T2 AUC of the two-task model and of
    full training with T3, per seed. Returns (runs, correlations).
    results_path: a CSV every finished run is appended to; runs already there are not run again."""
    store, corrs = ResultsStore(results_path, ["new_task", "model", "seed"]), []
    for new_task in new_tasks:
        data3 = load_new_task_data(new_task, profile)
        data2 = data3.select_tasks(data3.tasks[:2])
        corrs.append(
            {
                "new_task": new_task,
                **label_correlations(data3),
                **{f"paper {k}": v for k, v in PAPER_CORRELATIONS.get(new_task, {}).items()},
            }
        )
        for name in models:
            options = (model_options or {}).get(name, {})
            pending = store.pending((new_task, name), profile.seeds)
            if not pending:
                continue
            configs = [train_config(profile, seed, quiet=True, **train_overrides) for seed in pending]
            twos = pretrain_seeds(name, data2, configs, **options)
            threes = pretrain_seeds(name, data3, configs, **options)
            for seed, (two, fit2), (three, _) in zip(pending, twos, threes):
                s2 = evaluate(two, data2.to(fit2.device).test, data2.tasks)
                s3 = evaluate(three, data3.to(fit2.device).test, data3.tasks)
                new = [
                    {
                        "new_task": new_task,
                        "model": name,
                        "seed": seed,
                        "task": task,
                        "auc_two_tasks": s2[task]["auc"],
                        "auc_with_new_task": s3[task]["auc"],
                        "delta": s3[task]["auc"] - s2[task]["auc"],
                    }
                    for task in data2.tasks
                ]
                store.add(new)
    runs = store.frame(new_task=new_tasks, model=models, seed=profile.seeds)
    return (
        titled("table4_runs", runs, "negative transfer: every run", keys=("new_task", "model", "seed", "task")),
        titled(
            "label_correlations",
            pd.DataFrame(corrs),
            "Pearson correlation of task labels, ours and the paper's",
            keys=("new_task",),
        ),
    )


def negative_transfer_from_table3(
    table3_runs: pd.DataFrame, new_task: str, existing: Sequence[str] = EXISTING
) -> pd.DataFrame:
    """Table 4's runs for `new_task` out of Table 3's rows (new_task_table): each of those trained the
    two-task model ("before") and full training with T3 ("full") on the same data, configuration and
    seed as negative_transfer does, so the change of T1/T2 AUC needs no training of its own."""
    rows = table3_runs[table3_runs["model"] != "maml"]
    return pd.DataFrame(
        [
            {
                "new_task": new_task,
                "model": r["model"],
                "seed": r["seed"],
                "task": task,
                "auc_two_tasks": r[f"{t}_before"],
                "auc_with_new_task": r[f"{t}_full"],
                "delta": r[f"{t}_full"] - r[f"{t}_before"],
            }
            for r in rows.to_dict("records")
            for t, task in (("t1", existing[0]), ("t2", existing[1]))
        ],
        columns=["new_task", "model", "seed", "task", "auc_two_tasks", "auc_with_new_task", "delta"],
    )


def summarize_negative_transfer(runs: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Mean ± std of the AUC change per new task, model and existing task, our sign beside the paper's.

    `p (paired t)` tests the change against zero over seeds (a paired t-test of the AUC with T3 against
    the AUC without it, seed by seed); `significant` is p < alpha. On Census-Income the changes are a few
    ten-thousandths of AUC, so a sign is only worth comparing where the change is significant.
    `same_sign` is missing where the paper gives no sign (MPT-Rec is not in its Table 4). `Δm % of T1,
    T2` is the mean relative change of both existing tasks' AUC (over the two-task model), per model."""
    groups = runs.groupby(["new_task", "task", "model"], sort=False)
    out = groups["delta"].agg(["mean", "std", "count"]).reset_index()
    out["p (paired t)"] = [
        paired_p(g.set_index("seed")["auc_with_new_task"], g.set_index("seed")["auc_two_tasks"]) for _, g in groups
    ]
    out["std"] = out["std"].fillna(0.0)
    out["change (mean ± std)"] = [f"{m:+.4f} ± {s:.4f}" for m, s in zip(out["mean"], out["std"])]
    out["our_sign"] = out["mean"].map(lambda m: "+" if m > 0 else "-")
    out["significant"] = out["p (paired t)"] < alpha
    # Δm over the two-task model: the mean relative change of T1 and T2 per seed, its mean ± std
    per_seed = (
        (100 * runs["delta"] / runs["auc_two_tasks"])
        .groupby([runs["new_task"], runs["model"], runs["seed"]], sort=False)
        .mean()
    )
    delta_m = per_seed.groupby(level=["new_task", "model"], sort=False).agg(["mean", "std"]).fillna(0.0)
    out["Δm % of T1, T2 (mean ± std)"] = [
        f"{round(delta_m.loc[(n, m), 'mean'], 3) + 0.0:+.3f} ± {delta_m.loc[(n, m), 'std']:.3f}"
        for n, m in zip(out["new_task"], out["model"])
    ]
    out = out.merge(PAPER_TABLE4, on=["new_task", "task", "model"], how="left")
    out["same_sign"] = (out["our_sign"] == out["paper_sign"]).astype("boolean").where(out["paper_sign"].notna())
    return titled(
        "table4_vs_paper",
        out,
        "MPT-Rec Table 4: change of T1/T2 AUC, our sign beside the paper's",
        keys=("new_task", "task", "model"),
    )


def new_task_settings(
    dataset: str = "census-income", beta_cls: float | None = None, models: Sequence[str] = FULL_TRAINING_MODELS
) -> tuple[dict[str, dict], dict]:
    """(model options per model, training overrides) of the new-task experiments on `dataset`: the
    paper's settings for it (Ali-CCP: experts (128, 64), embeddings of 64, learning rate 1e-4), and
    MPT-Rec's adversarial weight `beta_cls` where given."""
    from .table2 import paper_settings

    options, overrides = paper_settings(dataset, [*models, "shared_bottom"])
    if beta_cls is not None:
        options["mpt_rec"] = {**options.get("mpt_rec", {}), "beta_cls": beta_cls}
    return options, overrides
