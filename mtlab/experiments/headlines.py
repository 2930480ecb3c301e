"""The report's front page: each paper's headline tables beside ours, a verdict per row computed from
the numbers, and the findings in words.

Every function here takes tables a batch kept (`keep`, read back from the run folder by mtlab.report)
and returns DataFrames or sentences; nothing is read or written. A notebook's tables come as
`{table name: DataFrame}`; a notebook that did not run (or failed before keeping them) gives `{}`,
and its rows say "not run in this profile".

Verdicts (`VERDICTS`), each from a test over seeds at level ALPHA = 0.05:

- a number the paper reports (an AUC): one-sample t-test of our per-seed values against it (Eq. 1,
  t = (x̄ − μ_paper) / (s / √n), n − 1 degrees of freedom): "reproduced" where p ≥ ALPHA (within seed
  noise), else "better" or "worse" (for a metric where higher is better);
- a direction the paper claims (PMTRec above the best baseline, the sign of an AUC change): paired
  t-test of the per-seed differences against 0 (Eq. 2, the same t on differences d_s = a_s − b_s):
  "reproduced" where the claimed direction holds with p < ALPHA, "contradicted" where the opposite
  does, "within seed noise" otherwise;
- with one seed there is no noise estimate: the sign of the difference, marked "(1 seed)".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
REPRODUCED, BETTER, WORSE = "reproduced", "better", "worse"
WITHIN, CONTRADICTED, NOT_RUN = "within seed noise", "contradicted", "not run in this profile"
VERDICTS = (REPRODUCED, BETTER, WORSE, WITHIN, CONTRADICTED, NOT_RUN)
CLAIM_COLUMNS = ["paper", "claim", "paper's figure", "ours", "verdict", "profile", "notebook"]


def _t_p(values: np.ndarray, reference: float) -> float:
    """Two-sided one-sample t-test p (Eq. 1); NaN for fewer than two values or none of spread."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2 or np.allclose(values, values[0]):
        return float("nan")
    return float(stats.ttest_1samp(values, reference).pvalue)


def verdict_vs_number(values, reference: float, higher_is_better: bool = True, precision: float = 5e-5) -> str:
    """Our per-seed `values` against the paper's `reference` (Eq. 1): reproduced / better / worse.
    Values without spread (one seed, or a count such as a parameter share) are "reproduced" where they
    equal the reference to within `precision` (half the paper's last printed digit)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values) or reference is None or np.isnan(reference):
        return NOT_RUN
    above = (values.mean() > reference) == higher_is_better
    if len(values) == 1 or np.allclose(values, values[0]):
        if abs(values.mean() - reference) <= precision:
            return REPRODUCED
        return (BETTER if above else WORSE) + (" (1 seed)" if len(values) == 1 else "")
    if _t_p(values, reference) >= ALPHA:
        return REPRODUCED
    return BETTER if above else WORSE


def verdict_of_direction(differences, claimed_positive: bool = True) -> str:
    """Per-seed paired differences against 0 (Eq. 2): reproduced where the claimed sign holds
    significantly, contradicted where the opposite does, else within seed noise."""
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
    if p >= ALPHA:
        return WITHIN
    return REPRODUCED if holds else CONTRADICTED


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
        counts = {v: sum(x.startswith(v) for x in verdicts) for v in (REPRODUCED, CONTRADICTED, WITHIN)}
        verdict = max((WITHIN, REPRODUCED, CONTRADICTED), key=counts.get)  # the most cells' verdict; ties: noise
        rows.append(
            _claim(
                "MPT-Rec",
                "Table 4: sign of the old tasks' AUC change when a new task joins (the verdict of most cells' paired tests)",
                f"{len(verdicts)} signs",
                f"{counts[REPRODUCED]} same, {counts[CONTRADICTED]} opposite, {counts[WITHIN]} within seed noise",
                verdict,
                f"{profile} · {t4['seed'].nunique()} seed(s)",
                "02_negative_transfer",
            )
        )
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


# --- PMTRec --------------------------------------------------------------------------------------


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
        default = (1.1, 1.0)
        if default in wide.columns and default != best:
            verdict = verdict_of_direction(wide[best] - wide[default])
            ours = (
                f"best α = {best[0]:g}, τ = {best[1]:g}: {wide[best].mean():.4f}; default α = 1.1, τ = 1: "
                f"{wide[default].mean():.4f}{_p(wide[best] - wide[default])}"
            )
            claim = "α × τ: the best cell above the default (α = 1.1, τ = 1)"
        else:
            verdict, ours = REPRODUCED, f"best α = {best[0]:g}, τ = {best[1]:g}: {wide[best].mean():.4f}"
            claim = "α × τ: the best cell is the default (α = 1.1, τ = 1)" if default == best else "α × τ: best cell"
        rows.append(
            _claim(
                "PMTRec",
                claim,
                "α > 1 and a moderate τ (sensitivity figure)",
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
            verdict_of_direction(wide[low] - wide[high]),
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
                    f"ρ = {rho:g}: does a strategy beat Single Task (Δm, paired over seeds)?",
                    "–",
                    f"{len(better)} above, {len(worse)} below, {len(part) - len(better) - len(worse)} within noise"
                    + (f"; top: {top['strategy']} ({top['delta_m_mean']:+.2f} %)" if top is not None else ""),
                    BETTER if len(better) else WORSE if len(worse) else WITHIN,
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


def front_page(tables: dict[str, dict[str, pd.DataFrame]], profile: str) -> dict:
    """Everything the front page shows: {"table2": wide Table 2, "claims": {section: rows}, "findings":
    sentences}."""
    return {
        "table2": table2_headline(tables.get("01_mtl_benchmark", {}).get("results")),
        "claims": {
            "MPT-Rec": mpt_rec_claims(tables, profile),
            "PMTRec": pmtrec_claims(tables, profile),
            "the funnel (ESMM, ESCM², AITM)": funnel_claims(tables, profile),
            "the gradient lab": gradient_lab_claims(tables, profile),
        },
        "findings": findings(tables),
    }
