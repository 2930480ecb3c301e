"""Execute the notebooks as a papermill batch into runs/<timestamp>/ and write a summary."""

from __future__ import annotations

import asyncio
import math
import os
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
RUNS_DIR = Path(__file__).resolve().parents[1] / "runs"


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


def run_notebooks(
    profile: str = "quick",
    notebooks=None,
    out: str | Path | None = None,
    device: str = "auto",
    log=print,
    parameters: dict | None = None,
    cell_timeout: float = 3600,
) -> tuple[pd.DataFrame, Path]:
    """Run each notebook with papermill (parameters: profile, device), carrying on past failures.

    parameters: more papermill parameters for every notebook run (e.g. {"results_path": ...}); a
    notebook runs in its own folder, so give paths absolute.
    cell_timeout: seconds one cell may run; past it the notebook fails (reported) and the batch goes on.
    Returns the summary (notebook, status, seconds, output, error) and the run folder, where
    summary.md, summary.csv and report.html are written; each notebook's tables go to a folder
    named after it (see mtlab.experiments.artifacts).
    """
    from .experiments.artifacts import ENV
    from .experiments.profiles import get_profile
    from .report import write_report, write_run_info

    get_profile(profile, device=device)  # bad values fail before any notebook starts
    paths = find_notebooks(notebooks)
    declared = notebook_parameters(paths)
    check_parameters(parameters or {}, declared)
    # absolute: each notebook runs in its own folder, and its tables' folder ($MTLAB_ARTIFACTS) must not
    # resolve against that (a relative --out put them under notebooks/<out>/, outside the report)
    out = (Path(out) if out else RUNS_DIR / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    if out.exists() and any(out.iterdir()):
        raise ValueError(
            f"--out {out} already holds a run; give a new folder (or delete it): a report never "
            "mixes the tables of two runs"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_run_info(out, profile, device)  # the report and `mtlab report A B` read the profile from it
    rows, interrupted = [], False
    for path in paths:
        target = out / path.name
        if interrupted:
            rows.append(
                {
                    "notebook": path.name,
                    "status": "not run",
                    "seconds": 0.0,
                    "output": "",
                    "error": "the batch was interrupted (Ctrl-C) before it",
                }
            )
            continue
        log(f"[{path.stem}] running ({profile} profile) …")
        start = time.perf_counter()
        status, error = "ok", ""
        previous = os.environ.get(ENV)
        os.environ[ENV] = str(out / path.stem)  # the kernel inherits it: tables land beside the notebook
        given = {
            k: v for k, v in {**(parameters or {}), "profile": profile, "device": device}.items() if k in declared[path]
        }  # a notebook without a parameters cell is given none
        try:
            execute_with_retry(path, target, given, cell_timeout, log)
        except (KeyboardInterrupt, asyncio.CancelledError) as exc:  # the summary still says what ran
            if not isinstance(exc, KeyboardInterrupt) and not after_ctrl_c(exc):
                raise
            from .kernel import remove_leftovers

            remove_leftovers()
            status, error, interrupted = "interrupted", "interrupted (Ctrl-C)", True
        except Exception as exc:  # a failing notebook is reported, and the batch goes on
            status, error = "failed", describe_failure(exc, cell_timeout, target)
        finally:
            if previous is None:
                del os.environ[ENV]
            else:
                os.environ[ENV] = previous
        seconds = time.perf_counter() - start
        log(f"[{path.stem}] {status} in {seconds:.1f} s{(': ' + error) if error else ''}")
        rows.append(
            {
                "notebook": path.name,
                "status": status,
                "seconds": round(seconds, 1),
                "output": str(target),
                "error": error,
            }
        )
    summary = pd.DataFrame(rows, columns=["notebook", "status", "seconds", "output", "error"])
    summary.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(_markdown(summary, profile, device))
    report = write_report(out, summary, profile)
    log(f"summary: {out / 'summary.md'}; report: {report}")
    if interrupted:
        raise BatchInterrupted(out)
    return summary, out


def after_ctrl_c(exc: BaseException) -> bool:
    """Whether `exc` was raised while a Ctrl-C was being handled (nbclient shuts the kernel down inside
    its own handler, and an error there hides the KeyboardInterrupt in `__context__`)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during `mtlab run`: the notebook running then is marked interrupted, the later ones not
    run, and the summary and report are written before this is raised. `out`: the run folder."""

    def __init__(self, out: Path):
        super().__init__(f"interrupted; the summary of what ran is in {out / 'summary.md'}")
        self.out = out


def notebook_parameters(paths: list[Path]) -> dict[Path, list[str]]:
    """Each notebook's parameters, as its `parameters` cell names them (papermill's own reading)."""
    import papermill as pm  # the notebook extra; imported here so the core works without it

    declared = {}
    for path in paths:
        try:
            declared[path] = list(pm.inspect_notebook(str(path)))
        except Exception as err:  # not JSON, not a notebook: named, before any notebook runs
            raise ValueError(
                f"{path} is not a readable notebook ({str(err).strip().splitlines()[0][:200]}); "
                "repair it or leave it out of --notebooks"
            ) from err
    return declared


def check_parameters(parameters: dict, declared: dict[Path, list[str]]) -> None:
    """Refuse a parameter that none of the chosen notebooks declares (a misspelt name would otherwise
    run every notebook with its default), listing what they do declare. A parameter that only some
    notebooks declare goes to those only."""
    known = sorted({name for names in declared.values() for name in names})
    unknown = [key for key in parameters if key not in known]
    if unknown:
        listed = ", ".join(known) or "none (they have no cell tagged 'parameters')"
        raise ValueError(
            f"--param {', '.join(unknown)}: no chosen notebook has such a parameter; their parameters are: {listed}"
        )


def execute_with_retry(path: Path, target: Path, parameters: dict, cell_timeout: float, log=print) -> None:
    """Execute one notebook with papermill through mtlab's kernel engine (mtlab.kernel); a notebook whose
    kernel stalls (KernelStall) is executed once more in a new kernel, then fails with what was seen."""
    import papermill as pm

    from .kernel import ENGINE, IPCKernelManager, KernelStall

    for attempt in (1, 2):
        try:
            pm.execute_notebook(
                str(path),
                str(target),
                parameters=parameters,
                cwd=str(path.parent),
                progress_bar=False,
                log_output=False,
                execution_timeout=math.ceil(cell_timeout),  # nbclient takes whole seconds
                kernel_manager_class=IPCKernelManager,
                engine_name=ENGINE,
            )
            return
        except KernelStall as stall:
            if attempt == 2:
                raise
            log(f"[{path.stem}] the kernel stalled at {stall}; executing the notebook once more in a new kernel")


def describe_failure(exc: Exception, cell_timeout: float, target: Path | None = None) -> str:
    """One line for summary.md: which cell failed and why, never a bare separator line or the last row
    of a printed table."""
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    from .kernel import KernelStall

    if isinstance(exc, KernelStall):
        return f"KernelStall: twice, at {exc}"
    if isinstance(exc, CellTimeoutError):
        cell = _cell_of(exc)
        return (
            f"CellTimeoutError: {cell}ran past --cell-timeout {cell_timeout:g} s; give a larger "
            "--cell-timeout if it really runs that long"
        )
    if isinstance(exc, PapermillExecutionError):  # the error the cell raised: its name and first line
        value = next((line for line in str(exc.evalue).splitlines() if line.strip()), "")
        return f"{exc.ename}: {value[:300]} (cell {_source_index(target, exc.cell_index)})"
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip() and set(line.strip()) - set("-=~^ ")]
    index = getattr(exc, "cell_index", None)  # set by mtlab.kernel for errors raised while a cell ran
    return f"{type(exc).__name__}: {(lines[0] if lines else '')[:300]}" + (
        f" (cell {index})" if index is not None else ""
    )


def _source_index(target: Path | None, index: int) -> int:
    """A failing cell's index in the notebook as written, from papermill's index in the executed copy
    `target` (mtlab.kernel.written_index)."""
    from .kernel import written_index

    try:
        import nbformat

        cells = nbformat.read(str(target), as_version=4).cells
    except Exception:  # no executed copy to read: the executed index is the best there is
        return index
    return written_index(cells, index)


def _cell_of(exc: Exception) -> str:
    """'cell N ('first line') ' from the error nbclient raised (mtlab.kernel adds the cell's index)."""
    index = getattr(exc, "cell_index", None)
    text, marker = str(exc), "-------------------"
    source = text.split(marker)[1].strip().splitlines() if marker in text else []
    named = f"cell {index} " if index is not None else "a cell "
    return named + (f"({source[0][:80]!r}) " if source else "")


def _markdown(summary: pd.DataFrame, profile: str, device: str) -> str:
    lines = [
        f"# mtlab run: {len(summary)} notebook(s), profile {profile}, device {device}",
        "",
        ", ".join(f"{(summary['status'] == status).sum()} {status}" for status in ("ok", "failed"))
        + "".join(
            f", {(summary['status'] == status).sum()} {status}"
            for status in ("interrupted", "not run")
            if (summary["status"] == status).any()
        )
        + f", {summary['seconds'].sum():.1f} s in all",
        "",
        "| notebook | status | seconds | output | error |",
        "|---|---|---|---|---|",
    ]
    for r in summary.itertuples():
        cells = [
            str(v).replace("|", "\\|").replace("\n", " ") for v in (r.notebook, r.status, r.seconds, r.output, r.error)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
