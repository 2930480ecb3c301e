"""Execute the notebooks as a papermill batch into runs/<timestamp>/ and write a summary."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
RUNS_DIR = Path(__file__).resolve().parents[1] / "runs"


def ipc_kernel_manager():
    """A kernel manager whose kernels talk over local IPC sockets (in the temporary folder) instead
    of TCP on loopback: ipykernel warns on every TCP start that its traffic is unencrypted, which
    flooded the batch log once per notebook; IPC sockets are files only this user can reach."""
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(Path(tempfile.gettempdir()) / f"mtlab-kernel-{uuid.uuid4().hex[:12]}")

    return IPCKernelManager


def find_notebooks(names=None, folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """All notebooks in `folder` (sorted), or the named ones ('00_quickstart' or a path)."""
    available = sorted(folder.glob("*.ipynb"))
    if not names:
        return available
    chosen = []
    for name in names:
        path = Path(name)
        if not path.exists():
            path = folder / (name if name.endswith(".ipynb") else f"{name}.ipynb")
        if not path.exists():
            raise ValueError(f"notebook {name!r} not found; available: {', '.join(p.stem for p in available)}")
        chosen.append(path)
    return chosen


def run_notebooks(profile: str = "quick", notebooks=None, out: str | Path | None = None,
                  device: str = "auto", log=print, parameters: dict | None = None,
                  cell_timeout: float = 3600) -> tuple[pd.DataFrame, Path]:
    """Run each notebook with papermill (parameters: profile, device), carrying on past failures.

    parameters: more papermill parameters for every notebook run (e.g. {"results_path": ...}); a
    notebook runs in its own folder, so give paths absolute.
    cell_timeout: seconds one cell may run; past it the notebook fails (reported) and the batch goes on.
    Returns the summary (notebook, status, seconds, output, error) and the run folder, where
    summary.md, summary.csv and report.html are written; each notebook's tables go to a folder
    named after it (see mtlab.experiments.artifacts).
    """
    import papermill as pm  # the notebook extra; imported here so the core works without it

    from .experiments.artifacts import ENV
    from .experiments.profiles import get_profile
    from .report import write_report

    get_profile(profile, device=device)  # bad values fail before any notebook starts
    paths = find_notebooks(notebooks)
    # absolute: each notebook runs in its own folder, and its tables' folder ($MTLAB_ARTIFACTS) must not
    # resolve against that (a relative --out put them under notebooks/<out>/, outside the report)
    out = (Path(out) if out else RUNS_DIR / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} already holds a run; give a new folder (or delete it): a report never "
                         "mixes the tables of two runs")
    out.mkdir(parents=True, exist_ok=True)
    rows, kernel_manager = [], ipc_kernel_manager()
    for path in paths:
        target = out / path.name
        log(f"[{path.stem}] running ({profile} profile) …")
        start = time.perf_counter()
        status, error = "ok", ""
        previous = os.environ.get(ENV)
        os.environ[ENV] = str(out / path.stem)  # the kernel inherits it: tables land beside the notebook
        try:
            pm.execute_notebook(str(path), str(target), parameters={**(parameters or {}), "profile": profile, "device": device},
                                cwd=str(path.parent), progress_bar=False, log_output=False,
                                execution_timeout=cell_timeout, kernel_manager_class=kernel_manager)
        except Exception as exc:  # a failing notebook is reported, and the batch goes on
            status, error = "failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"
        finally:
            if previous is None:
                del os.environ[ENV]
            else:
                os.environ[ENV] = previous
        seconds = time.perf_counter() - start
        log(f"[{path.stem}] {status} in {seconds:.1f} s{(': ' + error) if error else ''}")
        rows.append({"notebook": path.name, "status": status, "seconds": round(seconds, 1),
                     "output": str(target), "error": error})
    summary = pd.DataFrame(rows, columns=["notebook", "status", "seconds", "output", "error"])
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(_markdown(summary, profile, device))
    report = write_report(out, summary, profile)
    log(f"summary: {out / 'summary.md'}; report: {report}")
    return summary, out


def _markdown(summary: pd.DataFrame, profile: str, device: str) -> str:
    lines = [f"# mtlab run: {len(summary)} notebook(s), profile {profile}, device {device}", "",
             f"{(summary['status'] == 'ok').sum()} ok, {(summary['status'] != 'ok').sum()} failed, "
             f"{summary['seconds'].sum():.1f} s in all", "",
             "| notebook | status | seconds | output | error |", "|---|---|---|---|---|"]
    for r in summary.itertuples():
        lines.append(f"| {r.notebook} | {r.status} | {r.seconds} | {r.output} | {r.error} |")
    return "\n".join(lines) + "\n"
