"""The long tables on a many-core machine: each table's runs split into one job per seed (and
model or strategy), run by a pool of worker processes, each job writing its own CSV, and the CSVs
merged into the file its experiment function resumes from (`results_path`). A notebook given that
file builds the table without training again.

    python -m mtlab sweep table3 table4 pmtrec --profile full --workers 12 --out runs/full

Every job is an ordinary experiment-function call restricted to one seed, so a sweep computes
exactly what the notebook would, only in parallel. On one GPU the worker processes take turns on
the device; a step of these small models is hundreds of tiny kernels, so a GPU is saturated by a few
processes (README, GPU). Jobs already finished (a `.done` marker beside their CSV) are skipped, so an interrupted
sweep resumes; `deadline_s` stops handing out new jobs after that many seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from .profiles import Profile
from .store import write_csv_atomic

TABLES = ("table3", "table4", "pmtrec", "lab_census", "lab_movielens")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class Job:
    table: str
    key: str  # names the job's CSV: table/key.csv
    cost: float  # a rough relative cost; the dearest jobs start first to shorten the sweep
    kwargs: dict = field(default_factory=dict)


def _table3(profile: Profile, new_task: str, results_path: str, model: str) -> None:
    from .new_task_tables import load_new_task_data, new_task_table
    is_maml = model == "maml"
    new_task_table(load_new_task_data(new_task, profile), profile, models=[] if is_maml else [model],
                   include_maml=is_maml, results_path=results_path)


def _table4(profile: Profile, new_task: str, results_path: str, model: str) -> None:
    from .new_task_tables import negative_transfer
    negative_transfer(profile, [new_task], [model], results_path=results_path)


def _pmtrec(profile: Profile, dataset: str, results_path: str, strategy: str) -> None:
    from .pmtrec import pmtrec_benchmark
    pmtrec_benchmark([dataset], [strategy], profile, results_path=results_path)


def _lab(profile: Profile, dataset: str, results_path: str, strategy: str) -> None:
    from .gradient_lab import leaderboard
    leaderboard(dataset, profile, [strategy], results_path=results_path)


RUNNERS: dict[str, Callable] = {"table3": _table3, "table4": _table4, "pmtrec": _pmtrec,
                                "lab_census": _lab, "lab_movielens": _lab}


def plan(tables, profile: Profile, new_task: str = "education", new_tasks=("education", "sex")) -> list[Job]:
    """The jobs of the named tables, one per seed and model (or strategy), dearest first.

    Table 4's runs for Table 3's new task and its fine-tuning models are not planned: Table 3 trains
    the same two-task and three-task models (same data, configuration and seeds) and its rows give
    them (`new_task.negative_transfer_from_table3`)."""
    from .new_task_tables import FINE_TUNING_MODELS, FULL_TRAINING_MODELS
    from .pmtrec import BASELINES, BENCHMARK_DATASETS, SINGLE_TASK

    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise ValueError(f"unknown tables {unknown}; allowed values: {', '.join(TABLES)}")
    model_cost = {"mpt_rec": 1.5, "stem": 1.5, "ple": 1.3, "mmoe": 1.2}
    jobs = []
    for seed in profile.seeds:
        one = replace(profile, seeds=(seed,))
        if "table3" in tables:
            for model in (*FINE_TUNING_MODELS, "maml"):
                jobs.append(Job("table3", f"{new_task}-{model}-{seed}", 3 * model_cost.get(model, 1.0),
                                dict(profile=one, new_task=new_task, model=model)))
        if "table4" in tables:
            for task in new_tasks:
                for model in FULL_TRAINING_MODELS:
                    if "table3" in tables and task == new_task and model in FINE_TUNING_MODELS:
                        continue
                    jobs.append(Job("table4", f"{task}-{model}-{seed}", 2 * model_cost.get(model, 1.0),
                                    dict(profile=one, new_task=task, model=model)))
        if "pmtrec" in tables:
            for dataset in BENCHMARK_DATASETS[profile.name]:
                size = {"ml-1m": 4.0, "ml-100k": 0.4}.get(dataset, 0.2)
                for strategy in (*BASELINES, "pmtrec", SINGLE_TASK):
                    weight = {"pmtrec": 2.5, "cagrad": 2.5, SINGLE_TASK: 0.3}.get(strategy, 1.0)
                    jobs.append(Job("pmtrec", f"{dataset}-{strategy}-{seed}", size * weight,
                                    dict(profile=one, dataset=dataset, strategy=strategy)))
        for table, dataset in (("lab_census", "census-income"), ("lab_movielens", "movielens")):
            if table in tables:
                from .gradient_lab import SINGLE_TASK as LAB_BASELINE
                from .gradient_lab import check_strategies, not_applicable
                size = 1.0 if dataset == "census-income" else {"full": 4.0}.get(profile.name, 0.4)
                for strategy in (LAB_BASELINE, *check_strategies(None)):
                    if not not_applicable(dataset, strategy):
                        jobs.append(Job(table, f"{strategy}-{seed}", size * (1.0 if strategy in ("ew", LAB_BASELINE) else 2.0),
                                        dict(profile=one, dataset=dataset, strategy=strategy)))
    return sorted(jobs, key=lambda j: -j.cost)


def profile_tag(profile: Profile) -> str:
    """Names the settings a job's results depend on (profile name and a digest of every setting
    but the seeds and the device), so a quick run never counts as done for a full sweep."""
    settings = {k: v for k, v in asdict(profile).items() if k not in ("seeds", "device")}
    return f"{profile.name}-{hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()[:10]}"


def _run_job(job: Job, out: str) -> tuple[str, float, str | None]:
    """In a worker process: run one job into out/table/<profile tag>/key.csv; mark it done.
    Returns (key, seconds, error)."""
    import torch
    torch.set_num_threads(1)  # one core per worker: the pool is the parallelism
    folder = Path(out) / job.table / profile_tag(job.kwargs["profile"])
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        RUNNERS[job.table](results_path=str(folder / f"{job.key}.csv"), **job.kwargs)
    except Exception as err:  # noqa: BLE001 - one failed job must not end the sweep; its error is reported
        last = str(err).strip().splitlines()[-1][:300] if str(err).strip() else ""
        return f"{job.table}/{job.key}", time.perf_counter() - start, f"{type(err).__name__}: {last}"
    (folder / f"{job.key}.done").touch()
    return f"{job.table}/{job.key}", time.perf_counter() - start, None


def run_sweep(tables, profile: Profile, out: str | Path, workers: int = 4, deadline_s: float | None = None,
              new_task: str = "education", log=print) -> dict[str, pd.DataFrame]:
    """Run the planned jobs not yet done in `workers` processes; then merge each table's CSVs into
    out/<table>.csv (Table 4's also takes Table 3's rows). Returns the merged tables."""
    out, tag = Path(out), profile_tag(profile)
    jobs = [j for j in plan(tables, profile, new_task) if not (out / j.table / tag / f"{j.key}.done").exists()]
    log(f"sweep: {len(jobs)} jobs to run with {workers} workers into {out}")
    start, failures = time.perf_counter(), []
    # spawn, not fork: a forked CUDA context is unusable in the child
    with _one_thread_workers(), ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending, queue = set(), list(jobs)
        while queue or pending:
            while queue and len(pending) < workers and (deadline_s is None or time.perf_counter() - start < deadline_s):
                pending.add(pool.submit(_run_job, queue.pop(0), str(out)))
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                key, seconds, error = future.result()
                log(f"sweep: {key} {'FAILED: ' + error if error else 'done'} in {seconds:.0f} s "
                    f"({time.perf_counter() - start:.0f} s since start)")
                if error:
                    failures.append(f"{key}: {error}")
    if queue:
        log(f"sweep: deadline reached, {len(queue)} jobs not started (run again to resume)")
    merged = merge(out, new_task, tag)
    log(f"sweep: finished in {time.perf_counter() - start:.0f} s; {len(failures)} job(s) failed")
    for line in failures:
        log(f"sweep: failed {line}")
    if failures:
        raise SweepError(f"{len(failures)} of {len(jobs)} jobs failed (listed above); fix the cause and run the same "
                         "command again: finished jobs are kept")
    return merged


class SweepError(RuntimeError):
    """Some jobs of a sweep failed; the others' results are kept and merged."""


@contextlib.contextmanager
def _one_thread_workers():
    """Workers start with every native thread pool at one thread. torch.set_num_threads(1) in the
    worker is not enough: pools sized at start-up (OpenMP, OpenBLAS) kept a second thread spinning,
    measured at ~45 % of a core per worker, which halved a 2-core sweep and overloaded a 16-core one."""
    saved = {var: os.environ.get(var) for var in THREAD_VARS}
    os.environ.update({var: "1" for var in THREAD_VARS})
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def merge(out: str | Path, new_task: str = "education", tag: str = "*") -> dict[str, pd.DataFrame]:
    """Concatenate every table's job CSVs of the profile `tag` into out/<table>.csv; Table 4 also gets
    the runs that Table 3 trained for its new task. Table 3 takes only the jobs of `new_task` (its rows
    do not name T3). A damaged job CSV is refused with its path and line."""
    from .new_task_tables import negative_transfer_from_table3
    from .store import load_rows

    out, merged = Path(out), {}
    for table in TABLES:
        pattern = f"{new_task}-*.csv" if table == "table3" else "*.csv"
        parts = [load_rows(f) for f in sorted((out / table).glob(f"{tag}/{pattern}"))]
        merged[table] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not merged["table3"].empty:
        derived = negative_transfer_from_table3(merged["table3"], new_task)
        merged["table4"] = pd.concat([merged["table4"], derived], ignore_index=True)
    for table, frame in merged.items():
        if not frame.empty:
            write_csv_atomic(frame, out / f"{table}.csv")
    return merged
