"""One self-contained HTML report per batch run: every recorded table, the papers' figures beside
ours, every figure of every executed notebook, run times, device, versions and git commit.

Everything is inlined (tables as HTML, figures as base64 PNG, a little CSS), so the file opens
offline and can be mailed around.
"""

from __future__ import annotations

import html
import json
import platform
import subprocess
from datetime import datetime
from pathlib import Path

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2.5rem}h3{font-size:1.05rem}
table{border-collapse:collapse;font-size:.82rem;margin:.5rem 0 1rem}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.failed{color:#b00;font-weight:bold}.ok{color:#070}
img{max-width:100%;border:1px solid #eee;margin:.4rem 0}summary{margin:.6rem 0;cursor:pointer}.meta td{text-align:left}.scroll{overflow-x:auto}
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


def _number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4f}"


def _table_html(frame: pd.DataFrame) -> str:
    index = not isinstance(frame.index, pd.RangeIndex)
    return '<div class="scroll">' + frame.to_html(float_format=_number, na_rep="–", border=0, index=index) + "</div>"


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


def _tables(folder: Path) -> list[tuple[str, pd.DataFrame]]:
    try:
        entries = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):  # absent, or cut short by an interrupted batch: no tables from it
        return []
    out = []
    for entry in entries:
        try:
            frame = pd.read_csv(folder / entry["file"], index_col=0 if entry.get("indexed") else None)
        except (OSError, ValueError, KeyError, TypeError, pd.errors.ParserError):
            continue
        out.append((entry["title"] + f" ({entry['file']})", frame))
    return out


def write_report(run_dir: Path, summary: pd.DataFrame, profile: str) -> Path:
    """Assemble run_dir/report.html from the summary, the recorded tables and the notebooks' figures."""
    run_dir = Path(run_dir)
    env = environment()
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>mtlab run {html.escape(run_dir.name)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>mtlab run {html.escape(run_dir.name)} — profile {html.escape(profile)}</h1>",
        "<table class='meta'>"
        + "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in {**env, "total seconds": f"{summary['seconds'].sum():.0f}"}.items()
        )
        + "</table>",
        "<h2>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>seconds</th><th>error</th></tr>",
    ]
    for r in summary.itertuples():
        parts.append(
            f"<tr><td><a href='#{html.escape(Path(r.notebook).stem)}'>{html.escape(r.notebook)}</a></td>"
            f"<td class='{r.status}'>{r.status}</td><td>{r.seconds}</td><td>{html.escape(str(r.error or ''))}</td></tr>"
        )
    parts.append("</table>")
    for r in summary.itertuples():
        stem = Path(r.notebook).stem
        parts.append(
            f"<h2 id='{html.escape(stem)}'>{html.escape(stem)} <small class='{r.status}'>{r.status}, "
            f"{r.seconds} s</small></h2>"
        )
        tables = _tables(run_dir / stem)
        beside = [t for t in tables if "paper" in t[0]]
        for title, frame in beside + [t for t in tables if t not in beside]:
            folded = "" if len(frame) <= 40 else " (click to unfold)"  # long per-epoch tables stay folded
            parts.append(
                f"<details{' open' if not folded else ''}><summary><b>{html.escape(title)}</b>{folded}"
                f"</summary>{_table_html(frame)}</details>"
            )
        for png in _figures(run_dir / r.notebook):
            parts.append(f"<img alt='figure of {html.escape(stem)}' src='data:image/png;base64,{png}'>")
    parts.append("</body></html>")
    path = run_dir / "report.html"
    path.write_text("\n".join(parts))
    return path
