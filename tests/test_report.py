"""The batch report's front page (headlines and their verdicts), the comparison of two runs, and the
`mtlab report` command, on run folders written through `keep` as a batch writes them."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlab.cli import main
from mtlab.experiments import headlines as hl
from mtlab.experiments import keep, titled
from mtlab.experiments.artifacts import ENV
from mtlab.experiments.changes import table_changes
from mtlab.experiments.new_task_tables import PAPER_TABLE3, PAPER_TABLE4
from mtlab.experiments.table2 import PAPER_TABLE2
from mtlab.report import compare_runs, write_report

SEEDS = (0, 1, 2)


def noise(scale: float, *key) -> float:
    """Seed noise that depends on the row alone (not on which other rows a run has)."""
    return float(np.random.default_rng(zlib.crc32(repr(key).encode())).normal(0, scale))


# --- verdicts ----------------------------------------------------------------------------------------


def test_a_number_is_reproduced_within_seed_noise_else_better_or_worse():
    assert hl.verdict_vs_number([0.9490, 0.9500, 0.9495], 0.9494) == hl.REPRODUCED  # t ≈ 0.2
    assert hl.verdict_vs_number([0.9600, 0.9610, 0.9605], 0.9494) == hl.BETTER
    assert hl.verdict_vs_number([0.9300, 0.9310, 0.9305], 0.9494) == hl.WORSE
    assert hl.verdict_vs_number([0.9300, 0.9310], 0.9494, higher_is_better=False) == hl.BETTER  # e.g. a log loss
    assert hl.verdict_vs_number([0.95], 0.9494) == "better (1 seed)"  # no spread to test against
    # two seeds 0.0066 apart: the paper's number is inside a ±0.04 interval, which says nothing
    assert hl.verdict_vs_number([0.8757, 0.8823], 0.8563) == hl.INCONCLUSIVE
    assert hl.verdict_vs_number([9.3, 9.3], 9.3, higher_is_better=False, precision=0.05) == hl.REPRODUCED
    assert hl.verdict_vs_number([5.0, 5.0], 9.3, higher_is_better=False, precision=0.05) == hl.BETTER  # fewer params
    assert hl.verdict_vs_number([], 0.9494) == hl.NOT_RUN


def test_a_claimed_direction_is_reproduced_contradicted_or_within_noise():
    assert hl.verdict_of_direction([0.010, 0.012, 0.011]) == hl.REPRODUCED
    assert hl.verdict_of_direction([-0.010, -0.012, -0.011]) == hl.CONTRADICTED
    assert hl.verdict_of_direction([-0.010, -0.012, -0.011], claimed_positive=False) == hl.REPRODUCED
    assert hl.verdict_of_direction([0.0001, -0.0002, 0.0001]) == hl.WITHIN  # no effect, and a tight interval
    assert hl.verdict_of_direction([0.010, -0.012, 0.004]) == hl.INCONCLUSIVE  # no effect shown, none excluded
    assert hl.verdict_of_direction([-0.08, -0.03]) == hl.INCONCLUSIVE  # −5.5 points on two seeds: p = 0.27
    assert hl.verdict_of_direction([0.01]) == "reproduced (1 seed)"
    assert hl.verdict_of_direction([0.01, 0.01]) == hl.REPRODUCED  # the same shift on every seed: no noise at all


# --- a run folder as a batch writes it --------------------------------------------------------------


def _results(shift: float = 0.0, seeds=SEEDS) -> pd.DataFrame:
    """01's per-seed results: the paper's AUC plus seed noise (MPT-Rec's income shifted by `shift`)."""
    paper = PAPER_TABLE2[PAPER_TABLE2["dataset"] == "census-income"]
    rows = []
    for r in paper.itertuples():
        for seed in seeds:
            auc = (
                r.paper_auc
                + noise(3e-4, r.model, r.task, seed)
                + (shift if (r.model, r.task) == ("mpt_rec", "income") else 0)
            )
            rows.append({"model": r.model, "seed": seed, "task": r.task, "auc": auc, "logloss": 0.1})
    return titled("results", pd.DataFrame(rows), "test metrics", keys=("model", "seed", "task"))


def kept_run(folder: Path, shift: float = 0.0, seeds=SEEDS, failed: str | None = None) -> Path:
    """A run folder with the tables the front page reads, kept by `keep` under $MTLAB_ARTIFACTS as in a batch."""
    tables = {
        "01_mtl_benchmark": [
            _results(shift, seeds),
            titled(
                "synthetic_gains",
                pd.DataFrame(
                    [
                        {"rho": rho, "model": m, "seed": s, "task": t, "auc": 0.8, "gain_vs_single_task": g}
                        for rho in (0.9, 0.1)
                        for m in ("single_task", "mmoe")
                        for s in seeds
                        for t in ("t1", "t2")
                        for g in [
                            0.0 if m == "single_task" else (0.01 if rho == 0.9 else -0.005) + noise(1e-3, rho, m, s, t)
                        ]
                    ]
                ),
                keys=("rho", "model", "seed", "task"),
            ),
        ],
        "02_negative_transfer": [
            titled(
                "table4_runs",
                pd.DataFrame(
                    [
                        {"new_task": r.new_task, "model": r.model, "seed": s, "task": r.task, "auc_two_tasks": 0.95}
                        | {"delta": (1 if r.paper_sign == "+" else -1) * (0.002 + noise(1e-4, r.Index, s))}
                        for r in PAPER_TABLE4[PAPER_TABLE4["new_task"] != "bachelors"].itertuples()
                        for s in seeds
                    ]
                ),
                keys=("new_task", "model", "seed", "task"),
            )
        ],
        "03_new_task_prompt_tuning": [
            titled(
                "table3_runs",
                pd.DataFrame(
                    [
                        {"model": r.model, "seed": s, "t3_auc": r.paper_t3_auc - 0.05 + noise(1e-3, r.model, s)}
                        | {"params_pct_of_full": 6.0}
                        for r in PAPER_TABLE3.itertuples()
                        for s in seeds
                    ]
                ),
                keys=("model", "seed"),
            )
        ],
        "10_pmtrec_benchmark": [
            titled(
                "pmtrec_benchmark",
                pd.DataFrame(
                    [
                        {"dataset": "filmtrust", "strategy": st, "seed": s, "ndcg@40": v + noise(1e-3, st, s)}
                        for st, v in (("ew", 0.30), ("rlw", 0.31), ("pmtrec", 0.33), ("single_task", 0.29))
                        for s in seeds
                    ]
                ),
                keys=("dataset", "strategy", "seed"),
            )
        ],
        "11_alpha_tau_sensitivity": [
            titled(
                "alpha_tau_runs",
                pd.DataFrame(
                    [
                        {"alpha": a, "tau": t, "seed": s, "ndcg@40": 0.3 + 0.01 * (a == 1.2) + noise(1e-4, a, t, s)}
                        for a in (1.0, 1.1, 1.2)
                        for t in (0.5, 1.0)
                        for s in seeds
                    ]
                ),
                keys=("alpha", "tau", "seed"),
            )
        ],
        "13_gradient_lab": [
            titled(
                "conflict_runs",
                pd.DataFrame(
                    [
                        {"rho": rho, "strategy": st, "seed": s, "task": "t1", "auc": 0.8}
                        | {"conflict_mean": (0.1 if rho == 0.9 else 0.4) + noise(0.01, rho, st, s)}
                        for rho in (0.9, 0.0)
                        for st in ("single_task", "ew", "pcgrad")
                        for s in seeds
                    ]
                ),
                keys=("rho", "strategy", "seed", "task"),
            )
        ],
    }
    summary = []
    previous = os.environ.get(ENV)
    try:
        for stem, frames in tables.items():
            os.environ[ENV] = str(folder / stem)
            if stem != failed:
                keep(*frames)
            summary.append(
                {
                    "notebook": f"{stem}.ipynb",
                    "status": "failed" if stem == failed else "ok",
                    "seconds": 1.0,
                    "output": "",
                    "error": "RuntimeError: boom (cell 3)" if stem == failed else "",
                }
            )
    finally:
        os.environ.pop(ENV) if previous is None else os.environ.__setitem__(ENV, previous)
    pd.DataFrame(summary).to_csv(folder / "summary.csv", index=False)
    (folder / "run.json").write_text(json.dumps({"profile": "quick", "device": "cpu", "git commit": "abc123"}))
    return folder


def _tables(folder: Path) -> dict:
    from mtlab.report import read_summary, run_tables

    return run_tables(folder, read_summary(folder))


def test_table2_rows_carry_the_paper_ours_and_a_verdict(tmp_path):
    table = hl.table2_headline(_results(shift=0.01))
    mpt = table.set_index("method").loc["MPT-Rec"]
    assert mpt["income: paper"] == "0.9517" and mpt["income: verdict"] == hl.BETTER  # shifted by +0.01
    assert mpt["marital: verdict"] == hl.REPRODUCED  # seed noise around the paper's own number
    assert (table["income: verdict"] != hl.NOT_RUN).all() and len(table) == 8
    assert (hl.table2_headline(None)["income: verdict"] == hl.NOT_RUN).all()


def test_claims_read_the_kept_tables_and_say_what_did_not_run(tmp_path):
    tables = _tables(kept_run(tmp_path / "run"))
    mpt = hl.mpt_rec_claims(tables, "quick").set_index("claim")
    assert mpt.loc["Table 3: new task (T3) AUC, MPT-Rec", "verdict"] == hl.WORSE  # 0.05 below the paper
    share = mpt.filter(like="trainable parameters", axis=0).iloc[0]
    assert share["paper's figure"] == "9.3 %" and share["ours"] == "6.0 %" and share["verdict"] == hl.BETTER
    table4 = mpt.filter(like="Table 4", axis=0).iloc[0]
    assert table4["verdict"] == hl.REPRODUCED and table4["ours"].startswith("16 same, 0 opposite")
    pmtrec = hl.pmtrec_claims(tables, "quick")
    gain = pmtrec[pmtrec["claim"].str.contains("filmtrust")].iloc[0]
    assert "(rlw)" in gain["claim"] and gain["verdict"] == hl.REPRODUCED and gain["ours"].startswith("+6.")
    cell = pmtrec[pmtrec["claim"].str.startswith("α × τ")].iloc[0]
    assert "best α = 1.2" in cell["ours"] and cell["verdict"] == hl.WORSE  # the default (1.1, 1) is below it
    lab = hl.gradient_lab_claims(tables, "quick").iloc[0]
    assert "ρ = 0 than at ρ = 0.9" in lab["claim"] and lab["verdict"] == hl.REPRODUCED
    funnel = hl.funnel_claims(tables, "quick").iloc[0]  # 20_funnel did not run here
    assert funnel["verdict"] == hl.NOT_RUN and funnel["notebook"] == "20_funnel"
    sentences = hl.findings(tables)
    assert any("sharing pays significantly more on the more correlated tasks" in s for s in sentences)
    assert any(s.startswith("Share of measured steps with conflicting") for s in sentences)


def test_the_report_opens_with_the_front_page_and_folds_the_raw_tables(tmp_path):
    folder = kept_run(tmp_path / "run", failed="13_gradient_lab")
    report = write_report(folder).read_text()
    body = report.split("<body>")[1]
    order = [
        body.index("Not every notebook ran to the end"),  # failures first, with the reason
        body.index("RuntimeError: boom (cell 3)"),
        body.index("not the papers' setting"),  # a quick profile says so
        body.index("MPT-Rec (Table 2"),
        body.index("PMTRec"),
        body.index("Key figures"),
        body.index("Findings"),
        body.index("id='notebooks'"),
        body.index("<details class='notebook' id='01_mtl_benchmark'>"),  # folded: no `open`
    ]
    assert order == sorted(order)
    assert "conflicts rise as ρ falls" in body and "notebook failed" in body  # 13 failed: its rows say so
    assert body.count("data:image/png;base64,") >= 2  # gain bars and the α × τ grid, drawn from the tables
    # a long table shows its first rows and links its CSV
    assert "the first 12 shown, all 48 in <a href='01_mtl_benchmark/results.csv'>" in body
    assert "http" not in body.replace("http-equiv", "")  # nothing fetched from elsewhere


def test_table_changes_pair_seeds_and_list_new_and_missing_rows():
    a = _results(0.0)
    b = _results(0.02)  # MPT-Rec's income AUC moved by +0.02 on every seed, nothing else
    found = table_changes(a, b, ["model", "seed", "task"])
    moved = found.changes[found.changes["moved"]]
    assert moved[["model", "task", "column"]].values.tolist() == [["mpt_rec", "income", "auc"]]
    assert moved["Δ"].iloc[0] == pytest.approx(0.02) and moved["p"].iloc[0] == 0.0  # same shift on every seed
    assert found.unchanged == 8 * 2 * 2 - 1 and found.new.empty and found.missing.empty
    fewer = table_changes(a, _results(0.0, seeds=(0, 1, 3)), ["model", "seed", "task"])
    assert set(fewer.new["seed"]) == {3} and set(fewer.missing["seed"]) == {2} and len(fewer.new) == 16
    same = table_changes(a, a.copy(), ["model", "seed", "task"])
    assert same.changes.empty and same.moved == 0
    # without seeds: cell by cell; without keys: row by row, said so
    plain = table_changes(
        pd.DataFrame({"k": ["x", "y"], "v": [1.0, 2.0]}), pd.DataFrame({"k": ["x", "z"], "v": [1.5, 2.0]}), ["k"]
    )
    assert plain.changes[["k", "Δ"]].values.tolist() == [["x", 0.5]]
    assert plain.new["k"].tolist() == ["z"] and plain.missing["k"].tolist() == ["y"]
    unkeyed = table_changes(pd.DataFrame({"v": [1.0]}), pd.DataFrame({"v": [1.0]}))
    assert "row by row" in unkeyed.note and unkeyed.changes.empty
    with pytest.raises(ValueError, match="no key column"):
        table_changes(a, b.drop(columns="seed"), ["model", "seed", "task"])


def test_mtlab_report_compares_two_runs_and_rewrites_one(tmp_path, capsys):
    a = kept_run(tmp_path / "A")
    b = kept_run(tmp_path / "B", shift=0.02)  # MPT-Rec's income AUC +0.02, nothing else
    assert main(["report", str(a), str(b)]) == 0
    page = (b / "compare-A.html").read_text()
    assert "1 moved, 0 changed within noise, 31 same" in page  # 8 models × 2 tasks × (auc, logloss) − 1
    assert "<details open><summary><b>01_mtl_benchmark · results</b>" in page  # a table that moved is unfolded
    assert page.count("0 moved, 0 changed within noise") == 2 * 6  # the other tables did not move (overview, section)
    c = kept_run(tmp_path / "C", seeds=(0, 1, 2, 3))  # one seed more: new rows, the shared seeds the same
    page = compare_runs(a, c).read_text()
    assert "0 moved, 16 changed within noise, 16 same; 16 new rows" in page and "Rows new in B" in page
    assert main(["report", str(a)]) == 0 and (a / "report.html").exists()
    assert main(["report", str(a), str(a)]) == 2 and "two different run folders" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere"), str(b)]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2 and "no readable summary.csv" in capsys.readouterr().err
    out = tmp_path / "moved.html"
    assert compare_runs(a, b, out) == out and out.exists()


def test_keys_must_be_columns():
    with pytest.raises(ValueError, match=r"keys \['seed'\] are not columns"):
        titled("x", pd.DataFrame({"model": ["a"]}), keys=("model", "seed"))


def test_damaged_or_partial_tables_are_named_never_fatal(tmp_path):
    """A failed notebook's partial tables give no verdict; an unreadable manifest or a table of another
    shape is named on the page; nothing raises."""
    folder = kept_run(tmp_path / "run", failed="10_pmtrec_benchmark")
    os.environ.pop(ENV, None)
    (folder / "10_pmtrec_benchmark").mkdir(exist_ok=True)
    keep_path = folder / "10_pmtrec_benchmark" / "manifest.json"
    assert not keep_path.exists()  # the failed notebook kept nothing here; give it a partial table
    table = folder / "10_pmtrec_benchmark" / "pmtrec_benchmark.csv"
    table.write_text("dataset,strategy,seed,ndcg@40\nfilmtrust,pmtrec,0,0.9\nfilmtrust,ew,0,0.1\n")
    keep_path.write_text(json.dumps([{"file": "pmtrec_benchmark.csv", "name": "pmtrec_benchmark", "title": "x"}]))
    (folder / "13_gradient_lab" / "manifest.json").write_text("{not json")
    results = folder / "03_new_task_prompt_tuning" / "table3_runs.csv"
    pd.read_csv(results).drop(columns="model").to_csv(results, index=False)
    body = write_report(folder).read_text().split("<body>")[1]
    assert "notebook failed" in body  # PMTRec's row: not the partial table's +800 %
    assert "+800" not in body.split("id='notebooks'")[0]
    assert "13_gradient_lab/manifest.json is unreadable" in body
    assert "table unreadable" in body and "KeyError" in body  # 03's table has no model column
    assert (folder / "report.html").stat().st_mode & 0o044  # readable by others, as a plain write is
    (folder / "notes.html").write_text("my own notes")
    with pytest.raises(ValueError, match="not a page mtlab wrote"):
        compare_runs(folder, kept_run(tmp_path / "B"), folder / "notes.html")
    assert (folder / "notes.html").read_text() == "my own notes"


def test_a_text_column_with_missing_values_compares():
    a = pd.DataFrame({"strategy": ["ew", "mgda"], "seed": [0, 0], "task": ["rec", None], "skipped": [None, "n/a"]})
    b = a.assign(skipped=[None, "other reason"])
    found = table_changes(a.assign(v=[1.0, 2.0]), b.assign(v=[1.0, 2.0]), ["strategy", "seed", "task"])
    assert found.changes[["strategy", "column", "B"]].values.tolist() == [["mgda", "skipped", "other reason"]]
