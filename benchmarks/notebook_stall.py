"""Count stalled notebook executions beside busy processes, with papermill's stock asyncio client and
with mtlab's (`mtlab.kernel`): a stall is a cell whose reply the client waited for past the stall limit
while the kernel had nothing left to do.

    python benchmarks/notebook_stall.py [--executions 200] [--busy 2] [--clients stock mtlab]
                                        [--notebook widget|plain|00_quickstart|04_ablations|…]
                                        [--transport ipc|tcp] [--stall-after 15]

"widget" is the minimal two-cell pattern (a cell displays widgets, the next changes them); "plain" the
same cells without widgets; a notebook name runs that notebook of notebooks/ in its quick profile.
With the stock client a stall ends only at the cell timeout (given here as --stall-after), so an
execution is counted as stalled when it failed, took longer than that (minimal notebooks), or when a
cell's client-side times trail the kernel's own timestamps by more than LATE seconds (any notebook:
the kernel idle while the client waited). For a real notebook give --stall-after above its longest
cell (e.g. 300). With mtlab's client a lost
wake-up costs at most mtlab.kernel.POLL_SLICE, and a real stall raises KernelStall.
Prints one line per client: executions, stalls, median and slowest seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat
from notebook_under_load import BUSY  # the same busy training beside the notebook (benchmarks/ is on the path)

WIDGET_CELLS = [
    "import ipywidgets as w\nlabel, out = w.Label('a'), w.Output()\nbox = w.VBox([label, out])\nbox",
    "label.value = 'b'\nwith out:\n    out.clear_output(wait=True)\n    print('b')",
    "label.value = 'c'",
]
PLAIN_CELLS = ["a = 'a'\na", "b = 'b'\nprint(b)", "c = 'c'"]


def minimal_notebook(path: Path, widgets: bool) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in (WIDGET_CELLS if widgets else PLAIN_CELLS)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


LATE = 5.0
"""Seconds between the kernel's timestamps and the client's for one cell beyond which it counts as a stall."""


def lateness(executed: Path) -> float:
    """The longest wait in an executed notebook that the kernel did not spend working: from the client
    starting a cell (papermill's start_time) to the kernel taking it ('busy'), or from the kernel
    finishing it ('idle', the reply) to the client noticing (papermill's end_time). Both clocks are
    this machine's, in UTC."""
    from datetime import datetime

    worst = 0.0
    for cell in nbformat.read(str(executed), as_version=4).cells:
        kernel, client = cell.metadata.get("execution", {}), cell.metadata.get("papermill", {})
        if not kernel or not client.get("end_time"):
            continue
        stamp = {k: datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() for k, v in kernel.items()}
        start = datetime.fromisoformat(client["start_time"]).timestamp()
        end = datetime.fromisoformat(client["end_time"]).timestamp()
        done = max(stamp.get("iopub.status.idle", 0.0), stamp.get("shell.execute_reply", 0.0))
        worst = max(worst, stamp.get("iopub.status.busy", start) - start, end - done if done else 0.0)
    return worst


def execute(
    path: Path, out: Path, client: str, transport: str, stall_after: float, parameters: dict
) -> tuple[float, str]:
    import papermill as pm
    from jupyter_client.manager import AsyncKernelManager

    from mtlab import kernel

    if client == "mtlab":
        options = {"engine_name": kernel.ENGINE, "ack_seconds": stall_after, "reply_seconds": stall_after}
        manager = kernel.IPCKernelManager if transport == "ipc" else TCPLevelManager
    else:
        options = {}
        manager = StockIPCManager if transport == "ipc" else AsyncKernelManager
    start = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(
            str(path),
            str(out),
            parameters=parameters,
            progress_bar=False,
            log_output=False,
            cwd=str(path.parent),
            execution_timeout=stall_after,
            kernel_manager_class=manager,
            **options,
        )
    except Exception as exc:  # counted, and the loop goes on
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else ''}"
    return time.perf_counter() - start, error


class StockIPCManager:  # replaced in main() once jupyter_client is imported
    pass


class TCPLevelManager:
    pass


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--busy", type=int, default=2, help="busy training processes beside the notebooks")
    parser.add_argument("--clients", nargs="+", default=["stock", "mtlab"], choices=["stock", "mtlab"])
    parser.add_argument("--notebook", default="widget")
    parser.add_argument("--transport", default="ipc", choices=["ipc", "tcp"])
    parser.add_argument(
        "--stall-after",
        type=float,
        default=15.0,
        help="seconds after which a cell's wait counts as a stall (the minimal cells take ms)",
    )
    args = parser.parse_args(argv)

    global StockIPCManager, TCPLevelManager
    from jupyter_client.manager import AsyncKernelManager

    from mtlab import kernel

    class StockIPCManager(kernel.IPCKernelManager):  # noqa: F811 - IPC, but jupyter_client's own client
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.client_class = "jupyter_client.asynchronous.AsyncKernelClient"

    class TCPLevelManager(AsyncKernelManager):  # noqa: F811 - TCP, with mtlab's client
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.client_class = "mtlab.kernel.LevelPolledKernelClient"  # the trait's observer sets the factory

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        parameters = {}
        if args.notebook in ("widget", "plain"):
            path = minimal_notebook(tmp / f"{args.notebook}.ipynb", args.notebook == "widget")
        else:
            path = Path(__file__).resolve().parents[1] / "notebooks" / f"{args.notebook}.ipynb"
            parameters = {"profile": "quick", "device": "cpu"}
        load = [subprocess.Popen(BUSY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(args.busy)]
        try:
            time.sleep(3 if args.busy else 0)
            for client in args.clients:
                seconds, stalls = [], 0
                for i in range(args.executions):
                    took, error = execute(path, tmp / "out.ipynb", client, args.transport, args.stall_after, parameters)
                    seconds.append(took)
                    late = lateness(tmp / "out.ipynb") if (tmp / "out.ipynb").exists() else 0.0
                    if error or late > LATE or (not parameters and took >= args.stall_after):
                        stalls += 1
                        print(f"  {client} #{i}: stalled ({took:.1f} s, {late:.1f} s late) {error}", flush=True)
                    (tmp / "out.ipynb").unlink(missing_ok=True)
                row = {
                    "notebook": args.notebook,
                    "client": client,
                    "transport": args.transport,
                    "busy": args.busy,
                    "executions": args.executions,
                    "stalls": stalls,
                    "median_s": round(statistics.median(seconds), 2),
                    "max_s": round(max(seconds), 1),
                }
                rows.append(row)
                print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        finally:
            for process in load:
                process.kill()
                process.wait()
    return rows


if __name__ == "__main__":
    main()
