"""Device choice, seeding, and the CPU threads a training epoch uses."""

from __future__ import annotations

import os
import random
import statistics
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
    `samples` readings `interval` seconds apart. At least 1. Where there is no /proc (macOS), the
    affinity (or cpu_count).

    Why: a parallel operator waits for its slowest thread; beside other busy processes one of two
    threads loses its core and every stacked operator then waits for it (seed-vectorized MMoE on 2
    cores beside two trainings: 36 s against 7.9 s one by one; docs/benchmarks.md)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
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
    others = statistics.median_low(readings)
    return max(1, allowed - max(0, others))


def training_threads() -> int:
    """The intra-op threads for the next training epoch on the CPU: $MTLAB_THREADS where set, else
    usable_cores(), never more than torch's own setting (torch.get_num_threads()).
    Raises ValueError for an MTLAB_THREADS that is not a positive integer."""
    pinned = os.environ.get(THREADS_ENV, "").strip()
    if pinned:
        if not pinned.isdigit() or int(pinned) < 1:
            raise ValueError(f"{THREADS_ENV}={pinned!r}: give a positive number of threads, or unset it")
        return int(pinned)
    return min(torch.get_num_threads(), usable_cores())


@contextmanager
def epoch_threads(device: torch.device):
    """Run a training epoch on `training_threads()` intra-op threads (CPU only), torch's setting
    restored afterwards. For MMoE and MPT-Rec the weights do not depend on the thread count
    (tests/test_train.py trains with 1 and 2 threads and compares them bitwise); elsewhere a reduction
    summed in another order may move the last float bits (PMTRec's per-user weight summary moved by
    1e-8 between a quiet and a busy run), never a table's rounded figures. MTLAB_THREADS pins the count
    where bit-for-bit repeats across loads matter."""
    if device.type != "cpu":
        yield None
        return
    before = torch.get_num_threads()
    threads = training_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
