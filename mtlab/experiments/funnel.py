"""The click → conversion funnel (notebook 20): the funnel models (ESMM, ESCM², AITM) beside models
that share a representation (MMoE, Shared Bottom) on Ali-CCP, AliExpress or a generated sample. Scored
on the entire space: CTR AUC over every impression, CVR AUC over the clicked impressions (the only
ones with a conversion label), CTCVR AUC over every impression; and the calibration of pCVR on the
clicked impressions (its mean against the observed conversion rate, and the expected calibration
error over quantile bins). Mean ± std over seeds, paired t-tests against ESMM."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve

from ..data import MultiTaskData
from ..models import build_model
from ..train import count_parameters, evaluate, fit, predict, seed_everything
from .artifacts import titled
from .profiles import Profile
from .seed_stats import paired_p
from .single_run import train_config
from .store import ResultsStore, companion

FUNNEL_STUDY_MODELS = ("esmm", "escm2", "aitm", "mmoe", "shared_bottom")
TASKS = ("ctr", "cvr", "ctcvr")
BINS = 10


def funnel_settings(profile: Profile) -> dict:
    """Training settings of the study: the profile's epochs and patience; batches of 256 and a learning
    rate of 2e-3 in the quick profile (a small sample: enough steps), 2048 and 1e-3 in the full one
    (millions of impressions)."""
    quick = profile.name == "quick"
    return {"batch_size": 256 if quick else 2048, "lr": 2e-3 if quick else 1e-3}


def calibration(labels: np.ndarray, probabilities: np.ndarray, bins: int = BINS) -> tuple[dict, pd.DataFrame]:
    """pCVR against conversion on the clicked impressions (rows whose label is not NaN): ({mean
    predicted, observed rate, their ratio, ECE}, the reliability curve over quantile bins). ECE =
    Σ_b n_b / n · |observed_b − predicted_b| (scikit-learn's calibration_curve gives the bins)."""
    known = ~np.isnan(labels)
    y, p = labels[known], probabilities[known]
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))  # the bins calibration_curve uses, to weight them
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=bins)
    counts = counts[counts > 0]  # calibration_curve leaves out empty bins too
    ece = float(np.sum(counts / counts.sum() * np.abs(observed - predicted)))
    summary = {
        "mean_pcvr": float(p.mean()),
        "observed_cvr": float(y.mean()),
        "pcvr_over_observed": float(p.mean() / max(y.mean(), 1e-12)),
        "ece": ece,
        "clicked": int(known.sum()),
    }
    return summary, pd.DataFrame({"predicted": predicted, "observed": observed})


def funnel_study(
    data: MultiTaskData,
    profile: Profile,
    models: Sequence[str] = FUNNEL_STUDY_MODELS,
    model_options: dict[str, dict] | None = None,
    results_path: str | Path | None = None,
    **train_overrides,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every model × seed of the profile on funnel data (tasks ctr, cvr, ctcvr). Returns (results: one
    row per model, seed and task with the test AUC and log loss; calibration: one row per model and
    seed; curves: the reliability curve per model and seed).
    results_path: a CSV every finished run is appended to (calibration and curves beside it); runs
    already there are not trained again."""
    if tuple(data.tasks) != TASKS:
        raise ValueError(f"the funnel study needs the tasks {list(TASKS)}; the data have {list(data.tasks)}")
    paths = _paths(results_path)
    stores = {k: ResultsStore(p, ["model", "seed"]) for k, p in paths.items()}  # runs are done by their results
    settings = {**funnel_settings(profile), **train_overrides}
    for model in models:
        for seed in stores["results"].pending((model,), profile.seeds):
            new = _one_run(data, profile, model, seed, (model_options or {}).get(model, {}), settings)
            for key, frame in new.items():
                stores[key].add(frame)
    out = {key: store.frame(model=models, seed=profile.seeds) for key, store in stores.items()}
    return (
        titled(
            "funnel_results",
            out["results"],
            "test AUC and log loss per model, seed and funnel task",
            keys=("model", "seed", "task"),
        ),
        titled(
            "funnel_calibration",
            out["calibration"],
            "pCVR calibration on the clicked test impressions",
            keys=("model", "seed"),
        ),
        titled(
            "funnel_curves", out["curves"], "pCVR reliability curves (quantile bins)", keys=("model", "seed", "bin")
        ),
    )


def _paths(results_path) -> dict:
    return {"results": results_path, **{k: companion(results_path, k) for k in ("calibration", "curves")}}


def _one_run(data, profile, model_name, seed, options, settings) -> dict[str, pd.DataFrame]:
    seed_everything(seed)
    model = build_model(model_name, data.features, data.tasks, **options)
    config = train_config(profile, seed, quiet=True, **settings)
    result = fit(model, data, config)
    test = data.to(result.device).test
    scores = evaluate(model, test, data.tasks)
    common = {"model": model_name, "seed": seed}
    results = pd.DataFrame(
        [
            {
                **common,
                "task": task,
                **scores[task],
                "trainable_params": count_parameters(model),
                "seconds": result.seconds,
                "epochs": result.epochs,
            }
            for task in data.tasks
        ]
    )
    labels = test.labels.cpu().numpy()  # a streamed split reads its label columns only
    probabilities = predict(model, test, config.eval_batch_size)
    cvr = data.tasks.index("cvr")
    summary, curve = calibration(labels[:, cvr], probabilities[:, cvr])
    return {
        "results": results,
        "calibration": pd.DataFrame([{**common, **summary}]),
        "curves": curve.assign(**common, bin=range(len(curve))),
    }


def funnel_summary(results: pd.DataFrame, calib: pd.DataFrame, baseline: str = "esmm") -> pd.DataFrame:
    """One row per model: each task's test AUC (mean ± std over seeds) with the paired t-test against
    `baseline` over the seeds both ran, and pCVR's calibration (mean ± std)."""
    wide = results.pivot_table(index="seed", columns=["task", "model"], values="auc")
    rows = []
    for model in dict.fromkeys(results["model"]):
        row = {"model": model}
        for task in TASKS:
            values = wide[(task, model)].dropna()
            row[f"{task} AUC"] = f"{values.mean():.4f} ± {values.std() if len(values) > 1 else 0.0:.4f}"
            row[f"p {task} vs {baseline}"] = (
                paired_p(wide[(task, model)], wide[(task, baseline)])
                if model != baseline and (task, baseline) in wide
                else float("nan")
            )
        mine = calib[calib["model"] == model]
        for column, label in (("pcvr_over_observed", "pCVR / observed CVR"), ("ece", "pCVR ECE")):
            row[label] = f"{mine[column].mean():.3f} ± {mine[column].std() if len(mine) > 1 else 0.0:.3f}"
        rows.append(row)
    return titled(
        "funnel_summary",
        pd.DataFrame(rows),
        f"funnel tasks' test AUC and pCVR calibration, mean ± std over seeds, paired t-tests against {baseline}",
        keys=("model",),
    )


def funnel_statement(results: pd.DataFrame, baseline: str = "esmm", alpha: float = 0.05) -> str:
    """Per task, which models differ from `baseline` by a paired t-test over seeds (p < alpha); the
    others are said to be within seed noise."""
    wide = results.pivot_table(index="seed", columns=["task", "model"], values="auc")
    lines = []
    for task in TASKS:
        better, worse, same = [], [], []
        for model in dict.fromkeys(results["model"]):
            if model == baseline or (task, baseline) not in wide:
                continue
            p = paired_p(wide[(task, model)], wide[(task, baseline)])
            diff = (wide[(task, model)] - wide[(task, baseline)]).mean()
            (better if p < alpha and diff > 0 else worse if p < alpha else same).append(model)
        lines.append(
            f"{task}: better than {baseline} (paired p < {alpha}): {', '.join(better) or 'none'}; worse: "
            f"{', '.join(worse) or 'none'}; within seed noise: {', '.join(same) or 'none'}."
        )
    return "\n".join(lines)


def funnel_overview(data: MultiTaskData) -> pd.DataFrame:
    """Per split: impressions, click rate, conversion rate over impressions and over clicks (the labels
    the three tasks train on; cvr has none where there was no click)."""
    rows = []
    for split in ("train", "valid", "test"):
        part = data.split(split)
        labels = part.labels.double()  # a streamed split reads its label columns only
        click, cvr, ctcvr = labels[:, 0], labels[:, 1], labels[:, 2]
        rows.append(
            {
                "split": split,
                "impressions": len(labels),
                "click rate": float(click.mean()),
                "conversion rate (ctcvr)": float(ctcvr.mean()),
                "conversion given click (cvr)": float(cvr.nanmean()),
                "cvr labels (clicked)": int((~cvr.isnan()).sum()),
            }
        )
    return titled("funnel_overview", pd.DataFrame(rows), "impressions and label rates per split", keys=("split",))
