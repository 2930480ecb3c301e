"""The batch report (report.html in a run folder) and the page comparing two runs.

report.html opens with a front page: notebooks that failed, with the reason; each paper's headline
tables beside ours, with a verdict per row computed from the numbers (mtlab.experiments.headlines);
the key figures drawn from the kept tables; the findings in words. Below it, folded: each notebook's
kept tables (the first rows, the whole table a link to its CSV) and figures, a link to the executed
notebook rendered as HTML (nbconvert), and the environment.

`compare_runs(A, B)` writes B/compare-<A>.html: every table both runs kept, joined on its keys
(mtlab.experiments.changes): metric deltas with their seed spread and paired test, new and missing
rows.

Everything is inlined (tables as HTML, figures as base64 PNG, a little CSS), so the files open offline
and can be mailed around. Files are written whole (a temporary file renamed over the old one).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd

SHOWN_ROWS = 12  # rows of a kept table shown in the report; the whole table is its CSV, linked
RUN_INFO = "run.json"  # profile, device and environment of a batch, written when it starts

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:.8rem auto;max-width:1380px;color:#222;
padding:0 .8rem}
h1{font-size:1.25rem;margin:.2rem 0}h2{font-size:1.1rem;border-bottom:1px solid #ccc;padding-bottom:.15rem;
margin:1.4rem 0 .5rem}h3{font-size:.95rem;margin:.6rem 0 .2rem}.meta{font-size:.78rem;color:#555;margin:.1rem 0 .4rem}
table{border-collapse:collapse;font-size:.76rem;margin:.3rem 0 .7rem}th,td{border:1px solid #ddd;padding:2px 6px;
text-align:right;vertical-align:top}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
td.text{text-align:left}.failed,.interrupted{color:#b00;font-weight:bold}.ok{color:#070}
.banner{background:#fff7d6;border:1px solid #e6cf7a;padding:.35rem .6rem;font-size:.82rem;margin:.3rem 0 .6rem}
.alert{background:#fde8e8;border:1px solid #e3a3a3;padding:.35rem .6rem;font-size:.82rem;margin:.3rem 0 .6rem}
.front{display:grid;grid-template-columns:1fr 1fr;gap:1rem}.front section{min-width:0}
.front h2{margin-top:.2rem}.v{white-space:nowrap;font-weight:600}.nowrap{white-space:nowrap}
.v-reproduced{color:#06702b}.v-better{color:#0a4fa8}.v-worse,.v-contradicted{color:#b3261e}
.v-within{color:#666}.v-notrun{color:#999;font-weight:normal;font-style:italic}
.figures{display:grid;grid-template-columns:repeat(3,1fr);gap:.6rem}.figures img{max-width:100%;max-height:330px;object-fit:contain}figure{margin:0}
.table2 th[colspan]{text-align:center}
img{max-width:100%;border:1px solid #eee;margin:.3rem 0}summary{margin:.4rem 0;cursor:pointer}
details.notebook>summary{font-size:1rem;font-weight:600}details.notebook{border-top:1px solid #eee}
.scroll{overflow:auto;max-height:28rem;max-width:100%}.note{font-size:.78rem;color:#555}
ul.findings{font-size:.85rem}ul.findings li{margin:.2rem 0}
"""


def environment() -> dict[str, str]:
    """Device, versions and git commit of this run."""
    import torch

    import mtlab

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parents[1]
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({platform.processor() or platform.machine()})"
    )
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pandas": pd.__version__,
        "mtlab": mtlab.__version__,
        "git commit": (git("rev-parse", "--short", "HEAD") or "unknown") + dirty,
        "host": platform.node(),
    }


def write_run_info(run_dir: Path, profile: str, device: str) -> None:
    """run.json: the profile, device and environment of a batch (read by the report and comparisons)."""
    _write_atomic(
        Path(run_dir) / RUN_INFO, json.dumps({"profile": profile, "device": device, **environment()}, indent=1)
    )


def run_info(run_dir: Path) -> dict:
    """A run folder's run.json; for a folder without one, its profile from summary.md's first line."""
    run_dir = Path(run_dir)
    try:
        info = json.loads((run_dir / RUN_INFO).read_text())
        if isinstance(info, dict):
            return info
    except (OSError, ValueError):
        pass
    try:
        first = (run_dir / "summary.md").read_text().splitlines()[0]
        profile = first.split("profile ")[1].split(",")[0]
    except (OSError, IndexError):
        profile = "unknown"
    return {"profile": profile}


# --- reading a run folder --------------------------------------------------------------------------


def read_summary(run_dir: Path) -> pd.DataFrame:
    """summary.csv of a run folder. Raises ValueError saying what the folder lacks."""
    path = Path(run_dir) / "summary.csv"
    if not Path(run_dir).is_dir():
        raise ValueError(f"{run_dir} is not a folder; give a run folder of `mtlab run` (runs/<timestamp>)")
    try:
        summary = pd.read_csv(path, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ValueError(
            f"{run_dir} has no readable summary.csv ({type(err).__name__}): not a run folder of `mtlab run`, or a "
            "batch still running"
        ) from err
    if not {"notebook", "status", "seconds"} <= set(summary.columns):
        raise ValueError(f"{path} is not the summary of `mtlab run` (columns {list(summary.columns)})")
    summary = summary.reindex(columns=[*summary.columns, *(c for c in ("output", "error") if c not in summary)])
    for column in ("notebook", "status", "output", "error"):
        summary[column] = summary[column].fillna("").astype(str)
    summary["status"] = summary["status"].str.strip().str.lower()
    summary["notebook"] = [Path(n).name for n in summary["notebook"]]  # never a path out of the folder
    return summary


def read_kept(folder: Path) -> tuple[list[tuple[dict, pd.DataFrame]], list[str]]:
    """A notebook's kept tables in the order kept, (manifest entry, frame), and a line for each that
    could not be read (an unreadable manifest or CSV: a batch cut short, a file edited by hand). A
    notebook that kept nothing has no manifest and no problem."""
    folder = Path(folder)
    manifest = folder / "manifest.json"
    if not manifest.exists():
        return [], []
    try:
        entries = json.loads(manifest.read_text())
        if not isinstance(entries, list):
            raise ValueError("not a list of tables")
    except (OSError, ValueError) as err:
        return [], [f"{folder.name}/manifest.json is unreadable ({type(err).__name__}: {str(err)[:120]})"]
    out, problems = [], []
    for entry in entries:
        try:
            frame = pd.read_csv(folder / entry["file"], index_col=0 if entry.get("indexed") else None)
        except (OSError, ValueError, KeyError, TypeError, pd.errors.ParserError) as err:
            name = entry.get("file", "?") if isinstance(entry, dict) else "?"
            problems.append(f"{folder.name}/{name} is unreadable ({type(err).__name__}: {str(err)[:120]})")
            continue
        out.append((entry, frame))
    return out, problems


def kept_tables(folder: Path) -> list[tuple[dict, pd.DataFrame]]:
    """The readable kept tables of a notebook (read_kept without the problems)."""
    return read_kept(folder)[0]


def run_tables(run_dir: Path, summary: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """{notebook stem: {table name: frame}} of the notebooks that ran to the end ("ok"): the tables a
    failed or interrupted notebook kept before it stopped are partial, and the front page leaves them
    out (its rows say why)."""
    return {
        Path(nb).stem: {
            entry.get("name", entry["file"]): frame for entry, frame in kept_tables(run_dir / Path(nb).stem)
        }
        for nb, status in zip(summary["notebook"], summary["status"])
        if status == "ok"
    }


# --- pieces of HTML -------------------------------------------------------------------------------


def _href(relative: str) -> str:
    """A relative link to a file of the run folder: URL-quoted (a '#' or '?' in a name), then escaped."""
    from urllib.parse import quote

    return html.escape(quote(relative))


def _number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4f}"


def _table_html(frame: pd.DataFrame, classes: str = "") -> str:
    index = not isinstance(frame.index, pd.RangeIndex)
    table = frame.to_html(float_format=_number, na_rep="–", border=0, index=index, classes=classes or None)
    return f'<div class="scroll">{table}</div>'


VERDICT_CLASS = {"reproduced": "reproduced", "better": "better", "worse": "worse", "contradicted": "contradicted"}


def _verdict_html(text: str) -> str:
    if text.startswith(("not ", "notebook ", "table unreadable")):
        kind = "notrun"
    elif text.startswith(("within", "inconclusive")):
        kind = "within"
    else:
        kind = VERDICT_CLASS.get(text.split(" (")[0], "within")
    return f"<span class='v v-{kind}'>{html.escape(text)}</span>"


def _cells_html(frame: pd.DataFrame, verdict_columns, link_column: str | None = None) -> str:
    """A small table whose verdict columns are coloured and whose text is left-aligned."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns if c != link_column)
    body = []
    for record in frame.to_dict("records"):
        cells = []
        for column, value in record.items():
            if column == link_column:
                continue
            text = "–" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
            if column in verdict_columns:
                cells.append(f"<td>{_verdict_html(text)}</td>")
            elif column == "notebook" or (link_column and column == "claim"):
                stem = record.get(link_column or "notebook", "")
                cells.append(f"<td class='text'><a href='#{html.escape(str(stem))}'>{html.escape(text)}</a></td>")
            else:
                cells.append(f"<td class='text'>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _table2_html(table2: pd.DataFrame) -> str:
    """Table 2 with a header per task over its paper / ours / verdict columns."""
    tasks = list(dict.fromkeys(c.split(": ")[0] for c in table2.columns if ": " in c))
    head = "<tr><th rowspan='2'>method</th>" + "".join(f"<th colspan='3'>{html.escape(t)}</th>" for t in tasks)
    head += "</tr><tr>" + "<th>paper</th><th>ours (mean ± std)</th><th>verdict</th>" * len(tasks) + "</tr>"
    body = []
    for record in table2.to_dict("records"):
        cells = [f"<td>{html.escape(str(record['method']))}</td>"]
        for task in tasks:
            cells += [
                f"<td>{html.escape(str(record[f'{task}: paper']))}</td>",
                f"<td class='nowrap'>{html.escape(str(record[f'{task}: ours']))}</td>",
                f"<td>{_verdict_html(str(record[f'{task}: verdict']))}</td>",
            ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='table2'>{head}{''.join(body)}</table>"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def key_figures(tables: dict[str, dict[str, pd.DataFrame]]) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of the front page's figures, drawn from the kept tables: the sharing gain
    by task correlation (01), PMTRec's α × τ grid (11), gradient conflict by ρ (13)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from . import plots
    from .experiments.pmtrec import grid_from_runs

    out = []
    gains = tables.get("01_mtl_benchmark", {}).get("synthetic_gains")
    runs = tables.get("11_alpha_tau_sensitivity", {}).get("alpha_tau_runs")
    conflicts = tables.get("13_gradient_lab", {}).get("conflict_runs")
    makers = [
        ("AUC gain over Single Task by task correlation ρ (01)", gains, lambda g: plots.gain_bars(g)),
        ("PMTRec NDCG@40 over α × τ, mean over seeds (11)", runs, lambda r: plots.alpha_tau_heatmap(grid_from_runs(r))),
        ("Gradient conflict by task correlation ρ (13)", conflicts, lambda r: plots.conflict_by_rho(r)),
    ]
    for caption, frame, make in makers:
        if frame is None or not len(frame):
            continue
        try:
            out.append((caption, _png(make(frame))))
        except (KeyError, ValueError, TypeError) as err:  # a table of another shape: said, not drawn
            out.append((f"{caption}: not drawn ({type(err).__name__}: {err})", ""))
    return out


def _figures(notebook: Path) -> list[str]:
    """The PNG outputs of an executed notebook, in order, as base64 strings."""
    try:
        nb = json.loads(notebook.read_text())
    except (OSError, ValueError):  # absent, or cut short by an interrupted batch: no figures from it
        return []
    images = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                images.append(png if isinstance(png, str) else "".join(png))
    return images


def render_notebook(executed: Path) -> Path | None:
    """The executed notebook as HTML beside it (nbconvert's own exporter); None where it cannot be
    read (a batch cut short)."""
    try:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter(template_name="lab").from_filename(str(executed))
    except Exception:  # absent, truncated JSON, or nbconvert missing: the report links the .ipynb instead
        return None
    target = executed.with_suffix(".html")
    try:
        _write_atomic(target, body, page=False)
    except ValueError:
        return None
    return target


GENERATOR = "<meta name='generator' content='mtlab report'>"  # marks a page this module wrote


def _ours(path: Path) -> bool:
    """Whether `path` is absent or a page mtlab wrote (its generator mark, or an older report's title)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return GENERATOR in head or head.startswith("<!doctype html><html><head><meta charset='utf-8'><title>mtlab")


def _write_atomic(path: Path, text: str, page: bool = True) -> None:
    """Write `text` whole: a temporary file beside `path`, flushed, renamed over it, with the
    permissions a plain write would give (the umask's). A page never replaces a file mtlab did not write.
    Raises ValueError naming the file and what to do."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"{path.parent} is not a folder: give a file in an existing folder")
    if page and not _ours(path):
        raise ValueError(f"{path} exists and is not a page mtlab wrote; give another file (it is left as it is)")
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise ValueError(f"cannot write in {path.parent} ({err.strerror}); give a writable place") from err
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)  # mkstemp makes 0600: others could not read a shared report
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# a link to a folded section (#01_mtl_benchmark) unfolds it; inline, so the page stays one offline file
OPEN_ON_LINK = (
    "<script>function openTarget(){var e=document.getElementById(decodeURIComponent(location.hash.slice(1)));"
    "if(e&&e.tagName==='DETAILS'){e.open=true;e.scrollIntoView();}}"
    "window.addEventListener('hashchange',openTarget);openTarget();</script>"
)


def _page(title: str, parts: list[str]) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{GENERATOR}"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + f"\n{OPEN_ON_LINK}</body></html>"
    )


# --- the report ----------------------------------------------------------------------------------


def _profile_banner(profile: str) -> str:
    from .experiments.profiles import PROFILES

    if profile == "full":
        return ""
    p = PROFILES.get(profile)
    what = (
        f"{'all rows' if not p.subsample else f'{p.subsample:.0%} of the rows'}, at most {p.epochs} epochs, "
        f"{len(p.seeds)} seeds"
        if p
        else "settings of its own"
    )
    return (
        f"<div class='banner'><b>{html.escape(profile)} profile</b> ({what}): these numbers are <b>not the papers' "
        "setting</b>. The verdicts test them against the papers' figures all the same; for the papers' setting run "
        "<code>python -m mtlab run --profile full</code> (or <code>mtlab sweep all --profile full</code>).</div>"
    )


WHY_NOT_RUN = {  # a notebook's status → what its front-page rows say in place of "not run in this profile"
    "failed": "notebook failed",
    "interrupted": "notebook interrupted",
    "not run": "not run (the batch stopped)",
}


def _why_missing(statuses: dict[str, str], notebook: str) -> str | None:
    """What a row of `notebook` says when its tables are missing; None: "not run in this profile"
    stands (the notebook ran and did not run this part in this profile)."""
    if notebook not in statuses:
        return "not in this batch"
    status = statuses[notebook]
    return None if status == "ok" else WHY_NOT_RUN.get(status, f"notebook {status}")


def _front_page(tables, profile: str, statuses: dict[str, str]) -> list[str]:
    from .experiments.headlines import NOT_RUN, front_page

    page = front_page(tables, profile)
    claims = {
        section: frame.assign(
            verdict=[
                (_why_missing(statuses, nb) or v) if v == NOT_RUN else v
                for v, nb in zip(frame["verdict"], frame["notebook"])
            ]
        )
        for section, frame in page["claims"].items()
    }
    table2 = page["table2"].replace(NOT_RUN, _why_missing(statuses, "01_mtl_benchmark") or NOT_RUN)
    results = tables.get("01_mtl_benchmark", {}).get("results")
    seeds = f" · {results['seed'].nunique()} seed(s)" if results is not None and "seed" in results else ""
    left = [
        "<section><h2>MPT-Rec (Table 2: Census-Income, test AUC)</h2>",
        f"<p class='note'>{html.escape(profile)} profile{seeds} · <a href='#01_mtl_benchmark'>01_mtl_benchmark</a></p>",
        _table2_html(table2),
        "<h3>MPT-Rec: Tables 3 and 4</h3>",
        _cells_html(claims["MPT-Rec"].drop(columns="paper"), {"verdict"}, "notebook"),
        "</section>",
    ]
    right = ["<section>"]
    for section, frame in claims.items():
        if section == "MPT-Rec":
            continue
        heading = "PMTRec" if section == "PMTRec" else f"Beyond the papers: {section}"
        right += [f"<h2>{html.escape(heading)}</h2>", _cells_html(frame.drop(columns="paper"), {"verdict"}, "notebook")]
    right.append("</section>")
    parts = ["<div class='front'>", *left, *right, "</div>"]
    figures = key_figures(tables)
    if figures:
        parts.append("<h2>Key figures</h2><div class='figures'>")
        for caption, png in figures:
            image = f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{png}'>" if png else ""
            parts.append(f"<figure>{image}<figcaption class='note'>{html.escape(caption)}</figcaption></figure>")
        parts.append("</div>")
    if page["findings"]:
        parts.append(
            "<h2>Findings (the sentences the notebooks print from their tests over seeds)</h2><ul class='findings'>"
        )
        parts += [f"<li>{html.escape(line)}</li>" for line in page["findings"]]
        parts.append("</ul>")
    return parts


def _raw_section(run_dir: Path, stem: str, status: str, seconds, rendered: Path | None) -> list[str]:
    parts = [
        f"<details class='notebook' id='{html.escape(stem)}'><summary>{html.escape(stem)} "
        f"<small class='{html.escape(status)}'>{html.escape(status)}, {seconds} s</small></summary>"
    ]
    links = []
    if rendered:
        links.append(f"<a href='{_href(rendered.name)}'>the executed notebook (HTML)</a>")
    if (run_dir / f"{stem}.ipynb").exists():
        links.append(f"<a href='{_href(stem + '.ipynb')}'>{html.escape(stem)}.ipynb</a>")
    if links:
        parts.append(f"<p class='note'>{' · '.join(links)}</p>")
    for entry, frame in kept_tables(run_dir / stem):
        shown = frame.head(SHOWN_ROWS)
        more = len(frame) - len(shown)
        link = f"<a href='{_href(stem + '/' + entry['file'])}'>{html.escape(entry['file'])}</a>"
        parts.append(
            f"<h3>{html.escape(entry.get('title', entry['file']))}</h3>{_table_html(shown)}"
            f"<p class='note'>{len(frame)} rows × {frame.shape[1]} columns"
            + (f"; the first {len(shown)} shown, all {len(frame)} in " if more > 0 else "; ")
            + f"{link}</p>"
        )
    for png in _figures(run_dir / f"{stem}.ipynb"):
        parts.append(f"<img loading='lazy' alt='figure of {html.escape(stem)}' src='data:image/png;base64,{png}'>")
    parts.append("</details>")
    return parts


def write_report(run_dir: Path, summary: pd.DataFrame | None = None, profile: str | None = None) -> Path:
    """Write run_dir/report.html (see the module's text) and each executed notebook as HTML beside it.
    summary: the batch's summary (default: run_dir/summary.csv); profile: default from run.json."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir) if summary is None else summary
    info = run_info(run_dir)
    profile = profile or info.get("profile", "unknown")
    env = {k: v for k, v in info.items() if k not in ("profile",)}
    if not env:  # a run folder from before run.json: say whose environment the header shows
        env = {**environment(), "note": "the run recorded no environment: this is the report writer's"}
    tables = run_tables(run_dir, summary)
    problems = [line for nb in summary["notebook"] for line in read_kept(run_dir / Path(nb).stem)[1]]
    total = pd.to_numeric(summary["seconds"], errors="coerce").sum()
    counts = summary["status"].value_counts()
    parts = [
        f"<h1>mtlab run {html.escape(run_dir.name)} — {html.escape(profile)} profile</h1>",
        "<p class='meta'>"
        + " · ".join(
            html.escape(str(x))
            for x in (
                env.get("date", ""),
                env.get("device", ""),
                f"commit {env.get('git commit', 'unknown')}",
                ", ".join(f"{n} {s}" for s, n in counts.items()),
                f"{total:.0f} s",
            )
            if x
        )
        + " · <a href='#notebooks'>notebooks</a> · <a href='#environment'>environment</a></p>",
    ]
    failed = summary[~summary["status"].isin(["ok", "not run"])]
    skipped = summary[summary["status"] == "not run"]
    if len(failed) or len(skipped) or problems:
        items = [
            f"<li><a href='#{html.escape(Path(r.notebook).stem)}'>{html.escape(r.notebook)}</a> "
            f"<span class='{html.escape(r.status)}'>{html.escape(r.status)}</span>: {html.escape(str(r.error or ''))}</li>"
            for r in failed.itertuples()
        ]
        if len(skipped):
            why = str(skipped["error"].iloc[0] or skipped["status"].iloc[0])
            names = ", ".join(html.escape(Path(n).stem) for n in skipped["notebook"])
            items.append(f"<li>{len(skipped)} not run ({html.escape(why)}): {names}</li>")
        items += [f"<li>{html.escape(line)}</li>" for line in problems]
        parts.append(
            "<div class='alert'><b>Not every notebook ran to the end, or not every table could be read</b>; the "
            f"rows they feed say so.<ul>{''.join(items)}</ul></div>"
        )
    parts.append(_profile_banner(profile))
    statuses = {Path(nb).stem: status for nb, status in zip(summary["notebook"], summary["status"])}
    parts += _front_page(tables, profile, statuses)
    rendered = {Path(nb).stem: render_notebook(run_dir / nb) for nb in summary["notebook"]}
    parts.append(
        "<h2 id='notebooks'>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>seconds</th>"
        "<th>executed</th><th>error</th></tr>"
    )
    for r in summary.itertuples():
        stem = Path(r.notebook).stem
        page = rendered.get(stem)
        link = f"<a href='{html.escape(page.name)}'>HTML</a>" if page else "–"
        parts.append(
            f"<tr><td><a href='#{html.escape(stem)}'>{html.escape(r.notebook)}</a></td>"
            f"<td class='{html.escape(r.status)}'>{html.escape(r.status)}</td><td>{r.seconds}</td><td>{link}</td>"
            f"<td class='text'>{html.escape(str(r.error or ''))}</td></tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Each notebook's tables and figures (click to unfold)</h2>")
    for r in summary.itertuples():
        stem = Path(r.notebook).stem
        parts += _raw_section(run_dir, stem, r.status, r.seconds, rendered.get(stem))
    parts.append(
        "<details id='environment'><summary><b>Environment</b></summary><table>"
        + "".join(
            f"<tr><th>{html.escape(k)}</th><td class='text'>{html.escape(str(v))}</td></tr>" for k, v in env.items()
        )
        + "</table></details>"
    )
    path = run_dir / "report.html"
    _write_atomic(path, _page(f"mtlab run {run_dir.name}", parts))
    return path


# --- two runs compared -------------------------------------------------------------------------------


def compare_runs(a_dir: Path, b_dir: Path, out: Path | None = None) -> Path:
    """Write a page of what moved from run A to run B (default: B/compare-<A's name>.html): each
    notebook's status and time, then every table both kept joined on its keys (metric deltas with
    their seed spread and paired test, new or missing rows); tables kept by one run only are named.
    Raises ValueError where a folder is not a run folder."""
    from .experiments.changes import table_changes

    a_dir, b_dir = Path(a_dir), Path(b_dir)
    summaries = {"A": read_summary(a_dir), "B": read_summary(b_dir)}
    if a_dir.resolve() == b_dir.resolve():
        raise ValueError("give two different run folders: A and B are the same folder")
    out = Path(out) if out else b_dir / f"compare-{a_dir.name}.html"
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / 'compare.html'}")
    if not _ours(out):
        raise ValueError(f"--out {out} exists and is not a page mtlab wrote; give another file (it is left as it is)")
    infos = {"A": run_info(a_dir), "B": run_info(b_dir)}
    parts = [
        "<h1>What moved from run A to run B</h1><table><tr><th></th><th>folder</th><th>profile</th>"
        "<th>date</th><th>commit</th><th>device</th></tr>"
    ]
    for name, folder in (("A", a_dir), ("B", b_dir)):
        info = infos[name]
        parts.append(
            f"<tr><th>{name}</th><td class='text'>{html.escape(str(folder))}</td>"
            + "".join(
                f"<td class='text'>{html.escape(str(info.get(k, '–')))}</td>"
                for k in ("profile", "date", "git commit", "device")
            )
            + "</tr>"
        )
    parts.append("</table>")
    if infos["A"].get("profile") != infos["B"].get("profile"):
        parts.append(
            "<div class='banner'>The runs used different profiles: a metric that moved may have moved because of "
            "the profile (rows, epochs, seeds), not a change of code.</div>"
        )
    status = summaries["A"][["notebook", "status", "seconds"]].merge(
        summaries["B"][["notebook", "status", "seconds"]], on="notebook", how="outer", suffixes=(" A", " B")
    )
    parts.append("<h2>Notebooks</h2>" + _table_html(status.fillna("not in this run")))
    sections, overview = [], []
    notebooks = list(dict.fromkeys([*summaries["A"]["notebook"], *summaries["B"]["notebook"]]))
    for notebook in notebooks:
        stem = Path(notebook).stem
        kept = {"A": dict(_by_name(kept_tables(a_dir / stem))), "B": dict(_by_name(kept_tables(b_dir / stem)))}
        for name in dict.fromkeys([*kept["A"], *kept["B"]]):
            if name not in kept["A"] or name not in kept["B"]:
                only = "A" if name in kept["A"] else "B"
                overview.append({"notebook": stem, "table": name, "compared on": "–", "moved": f"kept by {only} only"})
                continue
            (entry_a, frame_a), (entry_b, frame_b) = kept["A"][name], kept["B"][name]
            keys = entry_b.get("keys") or entry_a.get("keys") or []
            try:
                found = table_changes(frame_a, frame_b, keys, indexed=bool(entry_b.get("indexed")))
            except (ValueError, KeyError, TypeError, IndexError) as err:  # one odd table never sinks the page
                why = f"not compared: {type(err).__name__}: {str(err)[:200]}"
                overview.append({"notebook": stem, "table": name, "compared on": "–", "moved": why})
                continue
            moved = found.moved
            overview.append(
                {
                    "notebook": stem,
                    "table": name,
                    "compared on": found.note,
                    "moved": f"{moved} moved, {len(found.changes) - moved} changed within noise, {found.unchanged} same"
                    + (f"; {len(found.new)} new rows" if len(found.new) else "")
                    + (f"; {len(found.missing)} missing rows" if len(found.missing) else ""),
                }
            )
            body = [
                f"<details{' open' if moved else ''}><summary><b>{html.escape(stem)} · {html.escape(name)}</b>"
                f" — {html.escape(overview[-1]['moved'])}</summary><p class='note'>{html.escape(found.note)}"
            ]
            for side, columns in found.columns_only_in.items():
                body.append(f"; columns only in {side}: {html.escape(', '.join(map(str, columns)))}")
            body.append("</p>")
            if len(found.changes):
                body.append(_table_html(found.changes.head(200)))
                if len(found.changes) > 200:
                    body.append(f"<p class='note'>the 200 largest relative moves of {len(found.changes)} shown</p>")
            for label, rows in (("new in B", found.new), ("missing in B (only in A)", found.missing)):
                if len(rows):
                    body.append(f"<h3>Rows {label}</h3>{_table_html(rows.head(50))}")
            body.append("</details>")
            sections += body
    parts.append("<h2>Tables</h2>")
    if overview:
        parts.append(_table_html(pd.DataFrame(overview)))
    else:
        parts.append("<p>Neither run kept a table.</p>")
    parts += sections
    _write_atomic(out, _page(f"mtlab: {a_dir.name} → {b_dir.name}", parts))
    return out


def _by_name(entries):
    for entry, frame in entries:
        yield entry.get("name", entry["file"]), (entry, frame)
