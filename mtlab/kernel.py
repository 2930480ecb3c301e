"""How `mtlab run` talks to a notebook's kernel: a papermill engine whose client cannot miss a message
and notices a stalled kernel in seconds.

Why this exists (measured with ``benchmarks/notebook_stall.py``): papermill drives the kernel through
jupyter_client's asyncio channels, whose wait for a message (``zmq.asyncio`` ``Socket.poll``) is woken
only by an *edge* on the ZeroMQ socket's file descriptor. ZeroMQ signals that descriptor once per burst
of internal commands, and any operation on the socket (a send, a ``getsockopt(EVENTS)``) can consume the
signal; when it is consumed while the client is not waiting, the message stays queued in the socket and
the wait sleeps until its timeout — the default cell timeout of an hour. Beside busy processes a
notebook whose cell displays a widget (several comm messages per cell) met this in a few percent of
executions: the kernel idle in its event loop, the client's shell and IOPub sockets both holding
messages (``zmq.EVENTS & POLLIN``), the client asleep in ``poll``. nbval never met it: its blocking
client asks ``zmq_poll``, which reads the socket's state (level) instead of waiting for an edge.

The fix here is at that depth: :class:`LevelPolledChannel` waits in slices of :data:`POLL_SLICE`
seconds, and each slice begins by reading the socket's state, so a lost edge costs at most one slice.
Above it, :class:`WatchedNotebookClient` watches each cell for a stall the slices cannot cure (a kernel
that never acknowledges a request, or that finished a cell whose reply never comes) and raises
:class:`KernelStall`, which :func:`mtlab.runner.run_notebooks` retries once and then reports with the
notebook, the cell and what was seen.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
import weakref
from pathlib import Path

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger
from papermill.utils import merge_kwargs, remove_args

POLL_SLICE = 0.2
"""Seconds one wait for a kernel message lasts before the socket's state is read again."""

ENGINE = "mtlab"
"""The papermill engine name under which :class:`WatchedEngine` is registered."""


def written_index(cells, index: int) -> int:
    """A cell's index in the notebook as written, from papermill's index of it among `cells` of the
    executed copy: papermill's note cells around a failure (added after it took the index) are left
    out, and its injected-parameters cell before the cell is not counted."""
    from papermill.execute import ERROR_MARKER_TAG

    executed = [c for c in cells if ERROR_MARKER_TAG not in c.metadata.get("tags", [])]
    return index - sum("injected-parameters" in c.metadata.get("tags", []) for c in executed[:index])


class KernelStall(RuntimeError):
    """A kernel stopped answering a cell: it never acknowledged the request, or it finished the cell
    and its reply never came. `cell_index` is the cell's index in the notebook, `seen` what was
    observed (in words)."""

    def __init__(self, cell_index: int, source: str, seen: str):
        first = source.strip().splitlines()[0][:80] if source.strip() else "(empty)"
        super().__init__(f"cell {cell_index} ({first!r}): {seen}")
        self.cell_index, self.source, self.seen = cell_index, source, seen


class LevelPolledChannel(AsyncZMQSocketChannel):
    """An asyncio channel whose waits cannot sleep past a message already queued in the socket.

    ``zmq.asyncio`` wakes a waiter on an edge of the socket's descriptor; each new slice of the wait
    starts with pyzmq reading ``zmq.EVENTS`` (the level), so a message whose edge was lost is received
    within :data:`POLL_SLICE` seconds instead of at the timeout (see the module docstring)."""

    async def get_msg(self, timeout: float | None = None) -> dict:  # type: ignore[override]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE if deadline is None else min(POLL_SLICE, max(0.0, deadline - time.monotonic()))
            if await self.socket.poll(1000 * left):
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                from queue import Empty

                raise Empty


class LevelPolledKernelClient(AsyncKernelClient):
    """jupyter_client's asyncio kernel client with :class:`LevelPolledChannel` on every ZeroMQ channel."""

    shell_channel_class = LevelPolledChannel
    iopub_channel_class = LevelPolledChannel
    stdin_channel_class = LevelPolledChannel
    control_channel_class = LevelPolledChannel


_MANAGERS: weakref.WeakSet = weakref.WeakSet()


def remove_leftovers() -> None:
    """Remove the IPC socket files and connection files of kernels started here that a Ctrl-C (during a
    kernel's start, where nbclient's own cleanup does not yet apply) left behind."""
    for manager in list(_MANAGERS):
        for cleanup in (manager.cleanup_ipc_files, manager.cleanup_connection_file):
            try:
                cleanup()
            except Exception:  # already gone, or never written
                pass


class IPCKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels talk over local IPC sockets (in the temporary folder) instead of
    TCP on loopback, through :class:`LevelPolledKernelClient`. ipykernel warns on every TCP start that
    its traffic is unencrypted, which flooded the batch log once per notebook; IPC sockets are files
    only this user can reach."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transport = "ipc"
        self.ip = str(Path(tempfile.gettempdir()) / f"mtlab-kernel-{uuid.uuid4().hex[:12]}")
        self.client_class = "mtlab.kernel.LevelPolledKernelClient"
        self._shutting_down = False
        _MANAGERS.add(self)

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        self._shutting_down = True
        try:
            await super()._async_shutdown_kernel(now=now, restart=restart)
        finally:
            self._shutting_down = False

    shutdown_kernel = _async_shutdown_kernel

    async def _async_interrupt_kernel(self) -> None:
        """No SIGINT on the way to shutdown: jupyter_client interrupts before it asks the kernel to stop,
        and ipykernel 7 logs "ERROR | KeyboardInterrupt caught in kernel" for it after every notebook
        that passed. The shutdown request goes over the control channel, which ipykernel serves on its
        own thread even while a cell runs, and a kernel that does not stop is killed after it."""
        if self._shutting_down:
            return
        await super()._async_interrupt_kernel()

    interrupt_kernel = _async_interrupt_kernel


# the coroutines nbclient (0.10) starts for each cell beside the one that sends it
POLLERS = frozenset({"_async_poll_kernel_alive", "_async_poll_output_msg", "_async_poll_for_reply"})


def cell_pollers() -> list[asyncio.Task]:
    """The pending tasks of nbclient's per-cell pollers in the running loop, and nothing else: not the
    kernel's shutdown, which nbclient's cleanup runs in the same loop while an abandoned cell ends."""
    return [t for t in asyncio.all_tasks() if not t.done() and getattr(t.get_coro(), "__name__", "") in POLLERS]


async def end_tasks(tasks) -> None:
    """Cancel the tasks that are not done (never the one running this) and wait until they have ended."""
    pending = [t for t in tasks if not t.done() and t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


class WatchedNotebookClient(PapermillNotebookClient):
    """papermill's client with a watch on every cell: :class:`KernelStall` when the kernel has shown
    nothing for the cell's request `ack_seconds` after it was sent (the kernel publishes "busy" within
    milliseconds of taking a request, even under load), or when it published "idle" for the cell and
    the reply has not come `reply_seconds` later. A cell that runs long is neither: it is busy, and
    only the cell timeout limits it."""

    ack_seconds: float = 30.0
    reply_seconds: float = 15.0

    def __init__(self, nb_man, ack_seconds: float | None = None, reply_seconds: float | None = None, **kw):
        super().__init__(nb_man, **kw)
        if ack_seconds is not None:
            self.ack_seconds = ack_seconds
        if reply_seconds is not None:
            self.reply_seconds = reply_seconds
        self._seen: dict = {}
        self._cell_task: asyncio.Task | None = None

    def process_message(self, msg, cell, cell_index):
        now = time.monotonic()
        self._seen.setdefault("first", now)
        if msg.get("msg_type") == "status" and msg["content"].get("execution_state") == "idle":
            self._seen["idle"] = now
        return super().process_message(msg, cell, cell_index)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        self._seen = {}
        source_index = written_index(self.nb.cells, cell_index)
        sent = time.monotonic()
        self._cell_task = asyncio.current_task()
        task = asyncio.ensure_future(super().async_execute_cell(cell, cell_index, execution_count, store_history))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=1.0)
                if done:
                    try:
                        return task.result()
                    except Exception as exc:  # name the cell in what the runner reports
                        exc.cell_index = source_index
                        raise
                seen = self._stall(time.monotonic() - sent)
                if seen:
                    raise KernelStall(source_index, cell.source, seen)
        finally:
            # a stall, Ctrl-C or a cancelled wait abandons the cell: end it and the pollers nbclient
            # started for it (kernel alive, output, reply), so that none wakes later into a closed kernel
            self._cell_task = None
            await end_tasks([task, *cell_pollers()])

    async def _async_cleanup_kernel(self) -> None:
        """End a cell that Ctrl-C left pending before the kernel is shut down. The KeyboardInterrupt
        leaves the event loop between two steps, with the cell and nbclient's pollers still scheduled;
        nbclient's cleanup runs the same loop again, and a poller that then saw the kernel die ended
        the cell, whose own ending cancelled the shutdown under way (a traceback instead of "interrupted")."""
        if self._cell_task is not None and not self._cell_task.done():
            await end_tasks([self._cell_task])
        await super()._async_cleanup_kernel()

    _cleanup_kernel = run_sync(_async_cleanup_kernel)

    execute_cell = run_sync(async_execute_cell)  # nbclient binds its own coroutine to the sync name

    def _stall(self, waited: float) -> str:
        now = time.monotonic()
        if "first" not in self._seen and waited > self.ack_seconds:
            return (
                f"the kernel showed nothing for the request in {waited:.0f} s (no 'busy' status, no "
                "output): it never took the cell"
            )
        if "idle" in self._seen and now - self._seen["idle"] > self.reply_seconds:
            return f"the kernel went idle {now - self._seen['idle']:.0f} s ago but its reply to the cell never came"
        return ""


class WatchedEngine(NBClientEngine):
    """papermill's nbclient engine with :class:`WatchedNotebookClient` (papermill's engines are its
    documented extension point; its own engine names the client class in code)."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=60,
        execution_timeout=None,
        **kwargs,
    ):
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout or kwargs.get("timeout"),
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        return WatchedNotebookClient(nb_man, **final_kwargs).execute()


papermill_engines.register(ENGINE, WatchedEngine)
