"""Device choice, seeding, and the CPU threads a training epoch uses."""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' → CUDA when present, else CPU; 'cuda' without a GPU is an error, not a silent CPU run."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} asked for, but no CUDA device is available; use device='auto' or 'cpu'"
            )
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; use one of {', '.join(DEVICES)} (or 'cuda:N')")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so model initialization is reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


THREADS_ENV = "MTLAB_THREADS"  # a positive integer pins the intra-op threads of every training epoch


def _own_running() -> int:
    """Threads of this process running or runnable now (state R in /proc/self/task/*/stat): the
    reader itself, and any of our own intra-op threads still spinning after a parallel region."""
    running = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the thread ended while we looked
            continue
        running += text[text.rfind(")") + 2 :].startswith("R")  # the state follows the (command)
    return max(1, running)


def usable_cores(samples: int = 5, interval: float = 0.002) -> int:
    """The cores this process can get now: those its CPU affinity allows (os.sched_getaffinity), less
    the threads of other processes that are running or waiting to run — the first number of the 4th
    field of /proc/loadavg less this process's own running threads (`_own_running`), its median over
    `samples` readings `interval` seconds apart, scaled to our share of the host's CPUs (the count is
    host-wide); a cgroup CPU quota caps the cores. At least 1. Where there is no /proc (macOS), the
    affinity (or cpu_count).

    Why: a parallel operator waits for its slowest thread; beside other busy processes one of two
    threads loses its core and every stacked operator then waits for it (seed-vectorized MMoE on 2
    cores beside two trainings: 36 s against 7.9 s one by one; docs/benchmarks.md)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    allowed = max(1, min(allowed, _cpu_quota() or allowed))
    host = os.cpu_count() or allowed
    readings = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                runnable = int(f.read().split()[3].split("/")[0])
            readings.append(runnable - _own_running())
        except (OSError, ValueError, IndexError):
            return allowed
        if i + 1 < samples:
            time.sleep(interval)
    # /proc/loadavg counts the whole host: of the others, our share of the host's CPUs runs on ours
    others = max(0, statistics.median_low(readings)) * allowed / host
    return max(1, allowed - round(others))


def _cpu_quota() -> int | None:
    """The CPUs a cgroup v2 quota allows (/sys/fs/cgroup/cpu.max "quota period", e.g. docker --cpus),
    rounded up; None where there is none."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None


def training_threads() -> int:
    """The intra-op threads for the next training epoch on the CPU: $MTLAB_THREADS where set, else
    usable_cores(); either way never more than torch's own setting (torch.get_num_threads(): a sweep
    worker's one thread stays one).
    Raises ValueError for an MTLAB_THREADS that is not a positive integer."""
    pinned = os.environ.get(THREADS_ENV, "").strip()
    if pinned:
        if not pinned.isdigit() or int(pinned) < 1:
            raise ValueError(f"{THREADS_ENV}={pinned!r}: give a positive number of threads, or unset it")
        return min(torch.get_num_threads(), int(pinned))
    return min(torch.get_num_threads(), usable_cores())


_THREADS_LOCK = threading.Lock()
_THREADS_STATE = {"depth": 0, "before": None}  # epochs in flight in this process, torch's own setting


@contextmanager
def epoch_threads(device: torch.device):
    """Run a training epoch on `training_threads()` intra-op threads (CPU only), torch's setting
    restored when the last epoch in flight ends. The thread count is one per process: an epoch that
    starts while another runs (a panel training in a background thread beside a notebook cell) leaves
    it as the first one set it.

    Whether the weights depend on the thread count: for MMoE and MPT-Rec (tests/test_train.py compares 1
    and 2 threads bitwise), and PLE and Shared Bottom (checked once at 4,096 rows), up to a batch of
    16,384 rows they do not; at a batch
    of 65,536 rows and for MF, reductions summed in another order move the last float bits (1e-9 to
    2e-7 in the weights; validation metrics equal to 6 decimals). MTLAB_THREADS pins the count where
    bit-for-bit repeats across loads matter."""
    if device.type != "cpu":
        yield None
        return
    with _THREADS_LOCK:
        if _THREADS_STATE["depth"] == 0:
            before = torch.get_num_threads()
            threads = training_threads()
            if threads != before:
                torch.set_num_threads(threads)
            _THREADS_STATE["before"] = before
        _THREADS_STATE["depth"] += 1
        threads = torch.get_num_threads()
    try:
        yield threads
    finally:
        with _THREADS_LOCK:
            _THREADS_STATE["depth"] -= 1
            if _THREADS_STATE["depth"] == 0 and torch.get_num_threads() != _THREADS_STATE["before"]:
                torch.set_num_threads(_THREADS_STATE["before"])
