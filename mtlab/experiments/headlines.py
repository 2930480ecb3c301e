"""The report's front page: each paper's headline tables beside ours, a verdict per row computed from
the numbers, and the findings in words.

Every function here takes tables a batch kept (`keep`, read back from the run folder by mtlab.report)
and returns DataFrames or sentences; nothing is read or written. A notebook's tables come as
`{table name: DataFrame}`; a notebook that did not run (or failed before keeping them) gives `{}`,
and its rows say "not run in this profile".

Verdicts (`VERDICTS`), each from our per-seed values at level ALPHA = 0.05, with the 95 % confidence
interval of our mean (Eq. 3, x̄ ± t_{0.975, n−1} · s / √n) and an equivalence margin δ (MARGIN: 0.002 of
AUC or NDCG, the largest difference still called "the same"):

- a number the paper reports (an AUC): "better" or "worse" where the interval excludes it (Eq. 1, a
  one-sample t-test, t = (x̄ − μ_paper) / (s / √n)); "reproduced" where it lies inside an interval no
  wider than ±δ; "inconclusive (too few seeds)" where the interval holds it but is wider than ±δ;
- a direction the paper claims (PMTRec above the best baseline, the sign of an AUC change): the same on
  the per-seed differences d_s = a_s − b_s against 0 (Eq. 2): "reproduced" where the claimed direction
  holds significantly, "contradicted" where the opposite does, "within seed noise" where the interval
  holds 0 and is no wider than ±δ, else "inconclusive (too few seeds)";
- with one seed there is no interval: the sign of the difference, marked "(1 seed)";
- a row whose tables are missing: "not run in this profile" (mtlab.report says why: the notebook
  failed, was interrupted or was not in the batch).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
REPRODUCED, BETTER, WORSE = "reproduced", "better", "worse"
WITHIN, CONTRADICTED, NOT_RUN = "within seed noise", "contradicted", "not run in this profile"
INCONCLUSIVE = "inconclusive (too few seeds)"
VERDICTS = (REPRODUCED, BETTER, WORSE, WITHIN, CONTRADICTED, INCONCLUSIVE, NOT_RUN)
MARGIN = 0.002  # δ: AUC or NDCG differences up to this are "the same" (the bar for a speed-up's AUC)


def _half_width(values: np.ndarray) -> float:
    """Half the 95 % confidence interval of the mean (Eq. 3); inf for fewer than two values."""
    if len(values) < 2:
        return float("inf")
    return float(stats.t.ppf(1 - ALPHA / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


CLAIM_COLUMNS = ["paper", "claim", "paper's figure", "ours", "verdict", "profile", "notebook"]


def _t_p(values: np.ndarray, reference: float) -> float:
    """Two-sided one-sample t-test p (Eq. 1); NaN for fewer than two values or none of spread."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2 or np.allclose(values, values[0]):
        return float("nan")
    return float(stats.ttest_1samp(values, reference).pvalue)


def verdict_vs_number(
    values, reference: float, higher_is_better: bool = True, precision: float = 5e-5, margin: float = MARGIN
) -> str:
    """Our per-seed `values` against the paper's `reference` (Eq. 1, Eq. 3): reproduced / better /
    worse / inconclusive. Values without spread (one seed, or a count such as a parameter share) are
    "reproduced" where they equal the reference to within `precision` (half the paper's last printed
    digit), else better or worse."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values) or reference is None or np.isnan(reference):
        return NOT_RUN
    above = (values.mean() > reference) == higher_is_better
    if len(values) == 1 or np.allclose(values, values[0]):
        if abs(values.mean() - reference) <= precision:
            return REPRODUCED
        return (BETTER if above else WORSE) + (" (1 seed)" if len(values) == 1 else "")
    if _t_p(values, reference) < ALPHA:
        return BETTER if above else WORSE
    return REPRODUCED if _half_width(values) <= margin else INCONCLUSIVE


def verdict_of_direction(differences, claimed_positive: bool = True, margin: float = MARGIN) -> str:
    """Per-seed paired differences against 0 (Eq. 2, Eq. 3): reproduced where the claimed sign holds
    significantly, contradicted where the opposite does, within seed noise where the interval holds 0
    and lies within ±margin, else inconclusive."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if not len(d):
        return NOT_RUN
    holds = (d.mean() > 0) == claimed_positive
    if len(d) == 1:
        return (REPRODUCED if holds else CONTRADICTED) + " (1 seed)"
    p = _t_p(d, 0.0)
    if np.isnan(p):  # no spread: every seed moved the same way by the same amount
        p = 0.0 if d.mean() != 0 else 1.0
    if p < ALPHA:
        return REPRODUCED if holds else CONTRADICTED
    return WITHIN if _half_width(d) + abs(d.mean()) <= margin else INCONCLUSIVE


def _p(values, reference: float = 0.0) -> str:
    """'; p = …' of Eq. 1 / Eq. 2 for a claim's `ours` cell ('' where there is no test)."""
    p = _t_p(values, reference)
    return "" if np.isnan(p) else f"; p = {p:.2g}"


def _pm(values) -> str:
    values = pd.Series(values, dtype=float).dropna()
    if not len(values):
        return "–"
    spread = values.std() if len(values) > 1 else 0.0
    return f"{values.mean():.4f} ± {spread:.4f}"


def _claim(paper, claim, figure, ours, verdict, profile, notebook) -> dict:
    return dict(zip(CLAIM_COLUMNS, (paper, claim, figure, ours, verdict, profile, notebook)))


# --- MPT-Rec -------------------------------------------------------------------------------------


def table2_headline(results: pd.DataFrame | None, dataset: str = "census-income") -> pd.DataFrame:
    """MPT-Rec Table 2 beside ours, wide: one row per design, per task the paper's AUC, ours (mean ±
    std over seeds) and the verdict (Eq. 1). `results`: 01_mtl_benchmark's per-seed table (model,
    seed, task, auc); None: every row "not run in this profile"."""
    from .table2 import DISPLAY_NAMES, PAPER_TABLE2

    paper = PAPER_TABLE2[PAPER_TABLE2["dataset"] == dataset]
    tasks = list(dict.fromkeys(paper["task"]))
    rows = []
    for model in dict.fromkeys(paper["model"]):
        row = {"method": DISPLAY_NAMES.get(model, model)}
        for task in tasks:
            reference = float(paper[(paper["model"] == model) & (paper["task"] == task)]["paper_auc"].iloc[0])
            mine = (
                results[(results["model"] == model) & (results["task"] == task)]["auc"]
                if results is not None and {"model", "task", "auc"} <= set(results.columns)
                else pd.Series(dtype=float)
            )
            row[f"{task}: paper"] = f"{reference:.4f}"
            row[f"{task}: ours"] = _pm(mine)
            row[f"{task}: verdict"] = verdict_vs_number(mine, reference)
        rows.append(row)
    return pd.DataFrame(rows)


def mpt_rec_claims(tables: dict[str, dict[str, pd.DataFrame]], profile: str) -> pd.DataFrame:
    """MPT-Rec's other headlines, one row each: Table 3 (the new task by prompt tuning: its AUC and
    its share of full training's parameters), Table 4 (the signs of the old tasks' AUC change when a
    new task joins full training). `tables`: {notebook: {table name: frame}}."""
    from .new_task_tables import PAPER_TABLE3, PAPER_TABLE4, SCHEME_NAMES

    rows = []
    t3 = tables.get("03_new_task_prompt_tuning", {}).get("table3_runs")
    where = "03_new_task_prompt_tuning"
    for model in ("mpt_rec", "ple", "maml"):
        paper = PAPER_TABLE3.set_index("model").loc[model]
        mine = t3[t3["model"] == model] if t3 is not None else None
        seeds = f"{profile} · {len(mine)} seed(s)" if mine is not None and len(mine) else profile
        rows.append(
            _claim(
                "MPT-Rec",
                f"Table 3: new task (T3) AUC, {SCHEME_NAMES[model]}",
                f"{paper['paper_t3_auc']:.4f}",
                _pm(mine["t3_auc"]) + _p(mine["t3_auc"], paper["paper_t3_auc"])
                if mine is not None and len(mine)
                else "–",
                verdict_vs_number(mine["t3_auc"], paper["paper_t3_auc"]) if mine is not None else NOT_RUN,
                seeds,
                where,
            )
        )
    paper_share = float(PAPER_TABLE3.set_index("model").loc["mpt_rec", "paper_params_pct"])
    mine = t3[t3["model"] == "mpt_rec"]["params_pct_of_full"] if t3 is not None else pd.Series(dtype=float)
    rows.append(
        _claim(
            "MPT-Rec",
            "Table 3: MPT-Rec's trainable parameters, % of full training (fewer is better)",
            f"{paper_share:.1f} %",
            f"{mine.mean():.1f} %" if len(mine) else "–",
            # a count, not a measurement: equal at the paper's one decimal, else fewer (better) or more
            verdict_vs_number(mine, paper_share, higher_is_better=False, precision=0.05),
            profile,
            where,
        )
    )
    t4 = tables.get("02_negative_transfer", {}).get("table4_runs")
    if t4 is None or not len(t4):
        rows.append(
            _claim(
                "MPT-Rec",
                "Table 4: sign of the old tasks' AUC change",
                "–",
                "–",
                NOT_RUN,
                profile,
                "02_negative_transfer",
            )
        )
    else:
        merged = t4.merge(PAPER_TABLE4, on=["new_task", "task", "model"], how="inner")
        verdicts = [
            verdict_of_direction(part["delta"], claimed_positive=sign == "+")
            for (_, _, _, sign), part in merged.groupby(["new_task", "task", "model", "paper_sign"], sort=False)
        ]
        counts = {v: sum(x.startswith(v) for x in verdicts) for v in (REPRODUCED, CONTRADICTED, WITHIN, INCONCLUSIVE)}
        # the most cells' verdict; ties go to the weaker statement (noise, then inconclusive)
        verdict = max((WITHIN, INCONCLUSIVE, REPRODUCED, CONTRADICTED), key=counts.get)
        rows.append(
            _claim(
                "MPT-Rec",
                "Table 4: sign of the old tasks' AUC change when a new task joins (the verdict of most cells' paired tests)",
                f"{len(verdicts)} signs",
                f"{counts[REPRODUCED]} same, {counts[CONTRADICTED]} opposite, {counts[WITHIN]} within seed noise"
                + (f", {counts[INCONCLUSIVE]} inconclusive" if counts[INCONCLUSIVE] else ""),
                verdict,
                f"{profile} · {t4['seed'].nunique()} seed(s)",
                "02_negative_transfer",
            )
        )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


# --- PMTRec --------------------------------------------------------------------------------------


def _pmtrec_defaults() -> tuple[float, float]:
    """(α, τ) as PMTRec's constructor defaults them (one source of truth)."""
    import inspect

    from ..weighting.pmtrec import PMTRec

    parameters = inspect.signature(PMTRec.__init__).parameters
    return float(parameters["alpha"].default), float(parameters["tau"].default)


def pmtrec_claims(tables: dict[str, dict[str, pd.DataFrame]], profile: str, metric: str = "ndcg@40") -> pd.DataFrame:
    """PMTRec's headline on each dataset we ran (PMTRec above the best baseline by `metric`, paired
    over seeds, Eq. 2; the paper: up to +11.58 % NDCG@40, on Amazon Office, which is not available
    offline) and the α × τ grid's best cell against the default (α = 1.1, τ = 1)."""
    from .pmtrec import SINGLE_TASK

    rows = []
    runs = tables.get("10_pmtrec_benchmark", {}).get("pmtrec_benchmark")
    if runs is None or "pmtrec" not in set(runs.get("strategy", [])):
        rows.append(
            _claim(
                "PMTRec",
                f"{metric}: PMTRec above the best baseline",
                "+11.58 % (Office)",
                "–",
                NOT_RUN,
                profile,
                "10_pmtrec_benchmark",
            )
        )
    else:
        for dataset, part in runs.groupby("dataset", sort=False):
            wide = part.pivot_table(index="seed", columns="strategy", values=metric)
            baselines = wide.drop(columns=["pmtrec", SINGLE_TASK], errors="ignore")
            if "pmtrec" not in wide or baselines.empty:
                continue
            best = baselines.mean().idxmax()
            change = 100 * (wide["pmtrec"].mean() / wide[best].mean() - 1)
            rows.append(
                _claim(
                    "PMTRec",
                    f"{dataset}: PMTRec's {metric} above the best baseline ({best})",
                    "up to +11.58 % (Amazon Office)",
                    f"{change:+.2f} % ({wide['pmtrec'].mean():.4f} vs {wide[best].mean():.4f}"
                    f"{_p(wide['pmtrec'] - wide[best])})",
                    verdict_of_direction(wide["pmtrec"] - wide[best]),
                    f"{profile} · {len(wide)} seed(s)",
                    "10_pmtrec_benchmark",
                )
            )
    grid_runs = tables.get("11_alpha_tau_sensitivity", {}).get("alpha_tau_runs")
    if grid_runs is None or not len(grid_runs):
        rows.append(_claim("PMTRec", "α × τ: best cell", "–", "–", NOT_RUN, profile, "11_alpha_tau_sensitivity"))
    else:
        wide = grid_runs.pivot_table(index="seed", columns=["alpha", "tau"], values=metric)
        best = wide.mean().idxmax()
        default = _pmtrec_defaults()
        claim = f"α × τ: the default (α = {default[0]:g}, τ = {default[1]:g}) against the grid's best cell"
        if default not in wide.columns:
            verdict, ours = NOT_RUN, f"the grid has no default cell; best α = {best[0]:g}, τ = {best[1]:g}"
        elif default == best:
            verdict, ours = WITHIN, f"the default is the best cell: {wide[best].mean():.4f}"
        else:
            # the default's shortfall from the best cell, paired over seeds: "worse" where significant
            shortfall = wide[default] - wide[best]
            verdict = verdict_of_direction(shortfall, claimed_positive=False)
            verdict = {REPRODUCED: WORSE, CONTRADICTED: BETTER}.get(verdict.split(" (")[0], verdict)
            ours = (
                f"default {wide[default].mean():.4f}; best α = {best[0]:g}, τ = {best[1]:g}: {wide[best].mean():.4f}"
                f"{_p(shortfall)}"
            )
        rows.append(
            _claim(
                "PMTRec",
                claim,
                "– (the paper's sensitivity figure gives no numbers)",
                ours,
                verdict,
                f"{profile} · {len(wide)} seed(s)",
                "11_alpha_tau_sensitivity",
            )
        )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


# --- beyond the papers -----------------------------------------------------------------------------


FUNNEL_CHALLENGERS = ("escm2", "aitm")  # the funnel models whose papers claim to beat ESMM


def funnel_claims(tables: dict[str, dict[str, pd.DataFrame]], profile: str, baseline: str = "esmm") -> pd.DataFrame:
    """The funnel's headline: ESCM² and AITM (FUNNEL_CHALLENGERS) against ESMM, AUC per task, paired over
    seeds (Eq. 2); the other models of the notebook (MMoE, Shared Bottom) are in its own tables."""
    results = tables.get("20_funnel", {}).get("funnel_results")
    if results is None or baseline not in set(results.get("model", [])):
        return pd.DataFrame(
            [_claim("funnel", f"models above {baseline.upper()}", "–", "–", NOT_RUN, profile, "20_funnel")],
            columns=CLAIM_COLUMNS,
        )
    wide = results.pivot_table(index="seed", columns=["task", "model"], values="auc")
    rows = []
    for task in dict.fromkeys(results["task"]):
        for model in FUNNEL_CHALLENGERS:
            if (task, model) not in wide or (task, baseline) not in wide:
                continue
            d = wide[(task, model)] - wide[(task, baseline)]
            rows.append(
                _claim(
                    "funnel",
                    f"{task} AUC: {model} above {baseline}",
                    "–",
                    f"{d.mean():+.4f} ± {d.std() if len(d) > 1 else 0.0:.4f}{_p(d)}",
                    verdict_of_direction(d),
                    f"{profile} · {len(d)} seed(s)",
                    "20_funnel",
                )
            )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def gradient_lab_claims(tables: dict[str, dict[str, pd.DataFrame]], profile: str) -> pd.DataFrame:
    """The gradient lab's headlines: conflicts more frequent at the lowest task correlation ρ than at
    the highest (paired over strategy × seed, Eq. 2); the strategies with Δm above / below Single Task."""
    lab = tables.get("13_gradient_lab", {})
    runs, delta = lab.get("conflict_runs"), lab.get("delta_m")
    if runs is None or "conflict_mean" not in runs:
        return pd.DataFrame(
            [_claim("gradient lab", "conflicts rise as ρ falls", "–", "–", NOT_RUN, profile, "13_gradient_lab")],
            columns=CLAIM_COLUMNS,
        )
    shared = runs[runs["strategy"] != "single_task"].drop_duplicates(["rho", "strategy", "seed"])
    wide = shared.pivot_table(index=["strategy", "seed"], columns="rho", values="conflict_mean").dropna()
    high, low = wide.columns.max(), wide.columns.min()
    rows = [
        _claim(
            "gradient lab",
            f"conflicting gradients more frequent at ρ = {low:g} than at ρ = {high:g}",
            "–",
            f"{wide[low].mean():.1%} vs {wide[high].mean():.1%}{_p(wide[low] - wide[high])}",
            verdict_of_direction(wide[low] - wide[high], margin=0.02),  # a share of steps: 2 points
            f"{profile} · {len(wide)} strategy × seed runs",
            "13_gradient_lab",
        )
    ]
    if delta is not None and {"strategy", "p_paired", "delta_m_mean"} <= set(delta.columns):
        for rho, part in delta.groupby("rho", sort=False):
            part = part[part["strategy"] != "single_task"]
            better = part[(part["p_paired"] < ALPHA) & (part["delta_m_mean"] > 0)]["strategy"]
            worse = part[(part["p_paired"] < ALPHA) & (part["delta_m_mean"] < 0)]["strategy"]
            top = part.loc[part["delta_m_mean"].idxmax()] if len(part) else None
            rows.append(
                _claim(
                    "gradient lab",
                    f"ρ = {rho:g}: more strategies above Single Task than below (Δm, paired over seeds)?",
                    "–",
                    f"{len(better)} above, {len(worse)} below, {len(part) - len(better) - len(worse)} within noise"
                    + (f"; top: {top['strategy']} ({top['delta_m_mean']:+.2f} %)" if top is not None else ""),
                    BETTER if len(better) > len(worse) else WORSE if len(worse) > len(better) else WITHIN,
                    f"{profile} · {int(part['seeds'].max()) if 'seeds' in part and len(part) else '?'} seed(s)",
                    "13_gradient_lab",
                )
            )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


# --- findings in words ------------------------------------------------------------------------------


def findings(tables: dict[str, dict[str, pd.DataFrame]]) -> list[str]:
    """One sentence (or a few) per finding, from the paired tests the notebooks print; a finding whose
    tables are missing is left out (its claim row says "not run in this profile")."""
    from .funnel import funnel_statement
    from .gradient_lab import conflict_statement, delta_m_statement
    from .pmtrec import headline_statement
    from .table2 import correlation_statement, ordering_agreement, ordering_statement

    out = []

    def add(notebook, name, make):
        frame = tables.get(notebook, {}).get(name)
        if frame is None or not len(frame):
            return
        try:
            text = make(frame)
        except (KeyError, ValueError, TypeError, IndexError):  # a table of another shape (an older run)
            return
        out.extend(line for line in text.splitlines() if line.strip())

    add("01_mtl_benchmark", "results", lambda r: ordering_statement(ordering_agreement(r)))
    add("01_mtl_benchmark", "synthetic_gains", correlation_statement)
    add("02_negative_transfer", "table4_vs_paper", _table4_sentence)
    add("10_pmtrec_benchmark", "pmtrec_benchmark", headline_statement)
    add("13_gradient_lab", "conflict_runs", conflict_statement)
    add("13_gradient_lab", "delta_m", delta_m_statement)
    add("20_funnel", "funnel_results", funnel_statement)
    return out


def _table4_sentence(table: pd.DataFrame) -> str:
    compared = table.dropna(subset=["paper_sign"])
    agree = compared["same_sign"].astype(str).str.lower().eq("true")
    significant = compared["significant"].astype(str).str.lower().eq("true")
    return (
        f"Table 4: our sign of the old tasks' AUC change agrees with the paper's in {int(agree.sum())} of "
        f"{len(compared)} cells; among the {int(significant.sum())} significant changes (paired t-test over seeds, "
        f"p < {ALPHA}), {int((agree & significant).sum())} agree."
    )


UNREADABLE = "table unreadable"
SHAPE_ERRORS = (KeyError, ValueError, TypeError, IndexError, AttributeError)  # a kept table of another shape


def front_page(tables: dict[str, dict[str, pd.DataFrame]], profile: str) -> dict:
    """Everything the front page shows: {"table2": wide Table 2, "claims": {section: rows}, "findings":
    sentences}. A table of another shape than the code expects (an older run, a file edited by hand)
    gives its section one row saying so ("table unreadable", with the error), never an exception."""

    def guarded(section, notebook, make):
        try:
            return make()
        except SHAPE_ERRORS as err:
            why = f"{type(err).__name__}: {err}"[:200]
            return pd.DataFrame(
                [
                    _claim(
                        section, f"the tables of {notebook} could not be read", "–", why, UNREADABLE, profile, notebook
                    )
                ],
                columns=CLAIM_COLUMNS,
            )

    try:
        table2 = table2_headline(tables.get("01_mtl_benchmark", {}).get("results"))
    except SHAPE_ERRORS:
        table2 = table2_headline(None).replace(NOT_RUN, UNREADABLE)
    return {
        "table2": table2,
        "claims": {
            "MPT-Rec": guarded("MPT-Rec", "02_negative_transfer", lambda: mpt_rec_claims(tables, profile)),
            "PMTRec": guarded("PMTRec", "10_pmtrec_benchmark", lambda: pmtrec_claims(tables, profile)),
            "the funnel (ESMM, ESCM², AITM)": guarded("funnel", "20_funnel", lambda: funnel_claims(tables, profile)),
            "the gradient lab": guarded(
                "gradient lab", "13_gradient_lab", lambda: gradient_lab_claims(tables, profile)
            ),
        },
        "findings": findings(tables),
    }
