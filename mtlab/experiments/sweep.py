"""The long tables on a many-core machine or a GPU: each table's runs split into one job per model
or strategy (all the profile's seeds together, trained seed-vectorized as one batched model where the
run allows; `per_seed=True`: one job per seed), run by a pool of worker processes, each job storing its
runs in the sweep's database (out/runs.sqlite, `store.RunsDatabase`: one record per table, profile tag
and run, so no seed is ever stored twice), and each table exported to the CSV its experiment function
resumes from (out/<table>.csv, `results_path`). A notebook given that file builds the table without
training again.

    python -m mtlab sweep all --profile full --out runs/full            # every table of both papers
    python -m mtlab sweep table3 table4 pmtrec --profile full --workers 12 --out runs/full

Every job is an ordinary experiment-function call restricted to its seeds, so a sweep computes
exactly what the notebook would, only in parallel. With a GPU, `gpu_workers` processes (default 2)
run jobs on it (vectorized jobs: a step of these small models is hundreds of tiny kernels, so batching
the seeds fills the device) while `workers` processes take jobs on one CPU core each, the cheapest
first, leaving the dearest to the GPU. Runs per minute are reported. Jobs that ran to their end (a
record in the database) are skipped, and within a job the runs the database holds, so an interrupted
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

from ..data.download import exclusive
from .profiles import Profile
from .store import RunsDatabase, Shelf, write_csv_atomic

DATABASE = "runs.sqlite"  # in a sweep's --out: every run of every table

PMTREC_STUDY_DATASET = "filmtrust"  # notebooks 11 and 12's default dataset
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class Job:
    table: str
    key: str  # names the job (its runs in the database are stored under it)
    cost: float  # a rough relative cost; the dearest jobs start first to shorten the sweep
    kwargs: dict = field(default_factory=dict)

    @property
    def runs(self) -> int:
        """The seeds it trains (runs per minute count these)."""
        return len(self.kwargs["profile"].seeds)


def _table3(profile: Profile, new_task: str, results_path: str, model: str) -> None:
    from .new_task_tables import load_new_task_data, new_task_table

    is_maml = model == "maml"
    new_task_table(
        load_new_task_data(new_task, profile),
        profile,
        models=[] if is_maml else [model],
        include_maml=is_maml,
        results_path=results_path,
    )


def _table4(profile: Profile, new_task: str, results_path: str, model: str) -> None:
    from .new_task_tables import negative_transfer

    negative_transfer(profile, [new_task], [model], results_path=results_path)


def _pmtrec(profile: Profile, dataset: str, results_path: str, strategy: str) -> None:
    from .pmtrec import pmtrec_benchmark

    pmtrec_benchmark([dataset], [strategy], profile, results_path=results_path)


def _lab(profile: Profile, dataset: str, results_path: str, strategy: str) -> None:
    from .gradient_lab import leaderboard

    leaderboard(dataset, profile, [strategy], results_path=results_path)


def _table2(profile: Profile, results_path: str, model: str) -> None:
    from .compare import compare_models
    from .single_run import load_for_profile
    from .table2 import TABLE2_TASKS, paper_settings

    data = load_for_profile("census-income", list(TABLE2_TASKS["census-income"]), profile)
    options, overrides = paper_settings("census-income", [model])
    compare_models(data, [model], profile, options, results_path=results_path, quiet=True, **overrides)


def _ablations(profile: Profile, new_task: str, results_path: str) -> None:
    from .ablations import prompt_ablations
    from .new_task_tables import load_new_task_data

    prompt_ablations(load_new_task_data(new_task, profile), profile, results_path=results_path)


def _pmtrec_grid(profile: Profile, dataset: str, results_path: str, alpha: float, tau: float) -> None:
    from .pmtrec import alpha_tau_grid, load_rec_dataset

    alpha_tau_grid(load_rec_dataset(dataset), profile, (alpha,), (tau,), results_path=results_path)


def _pmtrec_ablations(profile: Profile, dataset: str, results_path: str, variant: str) -> None:
    from .pmtrec import load_rec_dataset, pmtrec_ablations

    pmtrec_ablations(load_rec_dataset(dataset), profile, variants=(variant,), results_path=results_path)


MODEL_COST = {"mpt_rec": 1.5, "stem": 1.5, "ple": 1.3, "mmoe": 1.2, "sparse_sharing": 3.0, "csrec": 3.0}


@dataclass(frozen=True)
class Planning:
    """What a table's jobs depend on besides the seeds: `profile` holds the job's seeds, `tag` names
    them, `n` counts them; `tables` are all the tables planned together."""

    profile: Profile
    full: Profile  # the profile with all its seeds (a table's dataset list may depend on its name)
    tag: str
    n: int
    new_task: str
    new_tasks: tuple[str, ...]
    tables: tuple[str, ...]
    data: str | None = None  # the dataset of `lab_data` (a prepared table or any registered tabular dataset)


def _jobs_table2(p: Planning) -> list[Job]:
    from .table2 import TABLE2_MODELS

    return [
        Job("table2", f"{m}-{p.tag}", p.n * MODEL_COST.get(m, 1.0), dict(profile=p.profile, model=m))
        for m in TABLE2_MODELS
    ]


def _jobs_table3(p: Planning) -> list[Job]:
    from .new_task_tables import FINE_TUNING_MODELS

    return [
        Job(
            "table3",
            f"{p.new_task}-{m}-{p.tag}",
            3 * p.n * MODEL_COST.get(m, 1.0),
            dict(profile=p.profile, new_task=p.new_task, model=m),
        )
        for m in (*FINE_TUNING_MODELS, "maml")
    ]


def _jobs_table4(p: Planning) -> list[Job]:
    """Table 3's new task with its fine-tuning models is not planned when Table 3 is: Table 3 trains the
    same two-task and three-task models (same data, configuration and seeds) and its rows give them
    (`new_task_tables.negative_transfer_from_table3`, at merge)."""
    from .new_task_tables import FINE_TUNING_MODELS, FULL_TRAINING_MODELS

    return [
        Job(
            "table4",
            f"{task}-{m}-{p.tag}",
            2 * p.n * MODEL_COST.get(m, 1.0),
            dict(profile=p.profile, new_task=task, model=m),
        )
        for task in p.new_tasks
        for m in FULL_TRAINING_MODELS
        if not ("table3" in p.tables and task == p.new_task and m in FINE_TUNING_MODELS)
    ]


def _jobs_ablations(p: Planning) -> list[Job]:
    return [Job("ablations", f"{p.new_task}-{p.tag}", 4 * p.n, dict(profile=p.profile, new_task=p.new_task))]


def _jobs_pmtrec(p: Planning) -> list[Job]:
    from .pmtrec import BASELINES, BENCHMARK_DATASETS, SINGLE_TASK

    jobs = []
    for dataset in BENCHMARK_DATASETS[p.full.name]:
        size = {"ml-1m": 4.0, "ml-100k": 0.4}.get(dataset, 0.2)
        for strategy in (*BASELINES, "pmtrec", SINGLE_TASK):
            weight = {"pmtrec": 2.5, "cagrad": 2.5, SINGLE_TASK: 0.3}.get(strategy, 1.0)
            kwargs = dict(profile=p.profile, dataset=dataset, strategy=strategy)
            jobs.append(Job("pmtrec", f"{dataset}-{strategy}-{p.tag}", p.n * size * weight, kwargs))
    return jobs


def _jobs_pmtrec_grid(p: Planning) -> list[Job]:
    from .pmtrec import GRID_ALPHAS, GRID_TAUS

    return [
        Job(
            "pmtrec_grid",
            f"{PMTREC_STUDY_DATASET}-{alpha}-{tau}-{p.tag}",
            0.5 * p.n,
            dict(profile=p.profile, dataset=PMTREC_STUDY_DATASET, alpha=alpha, tau=tau),
        )
        for alpha in GRID_ALPHAS
        for tau in GRID_TAUS
    ]


def _jobs_pmtrec_ablations(p: Planning) -> list[Job]:
    from .pmtrec import ABLATIONS

    return [
        Job(
            "pmtrec_ablations",
            f"{PMTREC_STUDY_DATASET}-{variant.replace(' ', '_')}-{p.tag}",
            0.5 * p.n,
            dict(profile=p.profile, dataset=PMTREC_STUDY_DATASET, variant=variant),
        )
        for variant in ABLATIONS
    ]


def _lab_jobs(table: str, dataset: str | None):
    def jobs(p: Planning) -> list[Job]:
        from .gradient_lab import SINGLE_TASK as LAB_BASELINE
        from .gradient_lab import check_strategies, not_applicable

        name = dataset or p.data
        if name is None:
            raise ValueError(f"{table} runs the leaderboard on a dataset of your choice: give --data NAME")
        from ..data import kind_of

        if dataset is None and kind_of(name) != "tabular":
            raise ValueError(f"{table} compares strategies on tabular data; {name!r} is a recommendation dataset")
        size = 0.4 if name == "movielens" and p.full.name != "full" else 4.0 if name == "movielens" else 1.0
        return [
            Job(
                table,
                f"{'' if dataset else name + '-'}{strategy}-{p.tag}",
                p.n * size * (1.0 if strategy in ("ew", LAB_BASELINE) else 2.0),
                dict(profile=p.profile, dataset=name, strategy=strategy),
            )
            for strategy in (LAB_BASELINE, *check_strategies(None))
            if not not_applicable(name, strategy)
        ]

    return jobs


def _table4_from_table3(merged: dict[str, pd.DataFrame], new_task: str) -> pd.DataFrame:
    from .new_task_tables import negative_transfer_from_table3

    return negative_transfer_from_table3(merged["table3"], new_task) if not merged["table3"].empty else pd.DataFrame()


@dataclass(frozen=True)
class Table:
    """A table the sweep can run: adding one is one entry in TABLES (the command line's help, `plan`,
    `estimate` and `merge` read it)."""

    about: str  # one line for the command line's help
    runner: Callable  # runner(profile, results_path, **job kwargs): one job, resumable from its CSV
    jobs: Callable[[Planning], list[Job]]  # the jobs for one group of seeds
    paper: bool = True  # one of the papers' tables ("all")
    recommender: bool = False  # trains recommenders: epochs planned from profile.rec
    only_new_task: bool = False  # its job CSVs name the new task first; merge takes `new_task`'s alone
    derived: Callable[[dict, str], pd.DataFrame] | None = None  # rows it takes at merge from other tables


TABLES: dict[str, Table] = {
    "table2": Table("MPT-Rec Table 2: eight models on Census-Income", _table2, _jobs_table2),
    "table3": Table(
        "MPT-Rec Table 3: a new task by fine-tuning, prompts, MAML", _table3, _jobs_table3, only_new_task=True
    ),
    "table4": Table(
        "MPT-Rec Table 4: negative transfer of new tasks", _table4, _jobs_table4, derived=_table4_from_table3
    ),
    "ablations": Table("MPT-Rec prompt ablations (notebook 04)", _ablations, _jobs_ablations),
    "pmtrec": Table("PMTRec benchmark: strategies on the recommenders", _pmtrec, _jobs_pmtrec, recommender=True),
    "pmtrec_grid": Table("PMTRec α × τ grid (notebook 11)", _pmtrec_grid, _jobs_pmtrec_grid, recommender=True),
    "pmtrec_ablations": Table(
        "PMTRec ablations (notebook 12)", _pmtrec_ablations, _jobs_pmtrec_ablations, recommender=True
    ),
    "lab_census": Table(
        "gradient lab leaderboard on Census-Income (notebook 13)",
        _lab,
        _lab_jobs("lab_census", "census-income"),
        paper=False,
    ),
    "lab_movielens": Table(
        "gradient lab leaderboard on MovieLens (notebook 13)",
        _lab,
        _lab_jobs("lab_movielens", "movielens"),
        paper=False,
        recommender=True,
    ),
    "lab_data": Table(
        "gradient lab leaderboard on --data NAME: every strategy on MMoE, your table's tasks of any kind",
        _lab,
        _lab_jobs("lab_data", None),
        paper=False,
    ),
}
PAPERS = tuple(name for name, table in TABLES.items() if table.paper)  # what "all" stands for


def expand(tables) -> list[str]:
    """The named tables, "all" standing for every table of both papers (PAPERS)."""
    out = []
    for table in tables:
        out += [t for t in (PAPERS if table == "all" else (table,)) if t not in out]
    unknown = [t for t in out if t not in TABLES]
    if unknown:
        raise ValueError(f"unknown tables {unknown}; allowed values: all, {', '.join(TABLES)}")
    return out


def tables_help() -> str:
    """The command line's description of the tables, from the registry."""
    return "all (every table of both papers), or any of: " + "; ".join(f"{n}: {t.about}" for n, t in TABLES.items())


def plan(
    tables,
    profile: Profile,
    new_task: str = "education",
    new_tasks=("education", "sex"),
    per_seed: bool = False,
    data: str | None = None,
) -> list[Job]:
    """The jobs of the named tables ("all": both papers'), one per model (or strategy, grid cell,
    variant) with all the profile's seeds, or with per_seed=True one per seed and model; dearest first."""
    tables = tuple(expand(tables))
    jobs = []
    for seeds in [(s,) for s in profile.seeds] if per_seed else [tuple(profile.seeds)]:
        p = Planning(
            replace(profile, seeds=seeds),
            profile,
            "_".join(map(str, seeds)),
            len(seeds),
            new_task,
            tuple(new_tasks),
            tables,
            data,
        )
        for name in TABLES:  # the registry's order, as before
            if name in tables:
                jobs += TABLES[name].jobs(p)
    return sorted(jobs, key=lambda j: -j.cost)


def profile_tag(profile: Profile) -> str:
    """Names the settings a job's results depend on (profile name and a digest of every setting
    but the seeds and the device), so a quick run never counts as done for a full sweep."""
    settings = {k: v for k, v in asdict(profile).items() if k not in ("seeds", "device")}
    return f"{profile.name}-{hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()[:10]}"


def scope(job: Job) -> str:
    """Where a job's runs live in the database: its profile tag, and the dataset or new task it trains
    on (`tag`/NAME), which the runs' keys do not all name (a leaderboard's (strategy, seed)): a sweep
    on another --data or --new-task into the same --out is another scope, never "done" by the first."""
    tag = profile_tag(job.kwargs["profile"])
    on = job.kwargs.get("dataset") or job.kwargs.get("new_task")
    return f"{tag}/{on}" if on else tag


def _run_job(job: Job, out: str) -> tuple[str, float, str | None]:
    """In a worker process: run one job, its runs stored in out/runs.sqlite under its table and profile
    tag; record it finished (with its seconds, for `estimate`). Returns (key, seconds, error)."""
    import torch

    torch.set_num_threads(1)  # one core per worker: the pool is the parallelism
    tag = scope(job)
    database = Path(out) / DATABASE
    start = time.perf_counter()
    try:
        TABLES[job.table].runner(results_path=Shelf(database, job.table, tag, job.key), **job.kwargs)
        seconds = time.perf_counter() - start
        RunsDatabase(database).finish_job(job.table, tag, job.key, seconds)
    except Exception as err:  # noqa: BLE001 - one failed job must not end the sweep; its error is reported
        last = str(err).strip().splitlines()[-1][:300] if str(err).strip() else ""
        return f"{job.table}/{job.key}", time.perf_counter() - start, f"{type(err).__name__}: {last}"
    return f"{job.table}/{job.key}", seconds, None


def run_sweep(
    tables,
    profile: Profile,
    out: str | Path,
    workers: int = 4,
    deadline_s: float | None = None,
    new_task: str = "education",
    log=print,
    gpu_workers: int | None = None,
    per_seed: bool = False,
    data: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Run the planned jobs not yet done: `workers` processes on one CPU core each and, with a GPU,
    `gpu_workers` processes on it (default 2 where CUDA is there and the profile's device allows it,
    else 0); then merge each table's CSVs into out/<table>.csv (Table 4's also takes Table 3's rows).
    The GPU takes the dearest jobs, the CPU workers the cheapest. Logs runs (seeds) per minute.
    Returns the merged tables."""
    tables = expand(tables)
    out, tag = Path(out), profile_tag(profile)
    busy = (
        f"another sweep is writing into {out} now (two would run and store the same seeds twice); wait for it to "
        "finish, or give this one another --out"
    )
    with exclusive(out / ".sweep.lock", busy, SweepError):  # one sweep writes into a folder at a time
        return _run_sweep(tables, profile, out, tag, workers, deadline_s, new_task, log, gpu_workers, per_seed, data)


def _run_sweep(tables, profile, out, tag, workers, deadline_s, new_task, log, gpu_workers, per_seed, data):
    """`run_sweep` under its folder's lock."""
    slots = _device_slots(profile, workers, gpu_workers)
    database = RunsDatabase(out / DATABASE)
    database.check()  # a foreign or newer file is refused before any job trains
    planned = plan(tables, profile, new_task, per_seed=per_seed, data=data)
    finished = {(j.table, scope(j)): database.finished_jobs(j.table, scope(j)) for j in planned}
    jobs = [j for j in planned if j.key not in finished[j.table, scope(j)]]
    log(
        f"sweep: {len(jobs)} jobs ({sum(j.runs for j in jobs)} runs) to run with "
        f"{', '.join(f'{n} on {d}' for d, n in slots.items() if n)} worker(s) into {out}"
    )
    start, failures, finished = time.perf_counter(), [], {"cpu": 0, "cuda": 0}
    free = dict(slots)
    # spawn, not fork: a forked CUDA context is unusable in the child
    with (
        _one_thread_workers(),
        ProcessPoolExecutor(sum(slots.values()), mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        pending, queue = {}, list(jobs)
        while queue or pending:
            while queue and any(free.values()) and (deadline_s is None or time.perf_counter() - start < deadline_s):
                device = "cuda" if free["cuda"] else "cpu"
                # with a GPU in the sweep the CPU workers take the cheapest jobs, leaving it the dearest
                job = queue.pop(-1 if device == "cpu" and slots["cuda"] else 0)
                job = replace(job, kwargs={**job.kwargs, "profile": replace(job.kwargs["profile"], device=device)})
                free[device] -= 1
                pending[pool.submit(_run_job, job, str(out))] = (job, device)
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job, device = pending.pop(future)
                free[device] += 1
                key, seconds, error = future.result()
                minutes = (time.perf_counter() - start) / 60
                finished[device] += 0 if error else job.runs
                log(
                    f"sweep: {key} on {device} {'FAILED: ' + error if error else 'done'} in {seconds:.0f} s "
                    f"({60 * minutes:.0f} s since start; {sum(finished.values()) / max(minutes, 1e-9):.1f} runs/min)"
                )
                if error:
                    failures.append(f"{key}: {error}")
    if queue:
        log(f"sweep: deadline reached, {len(queue)} jobs not started (run again to resume)")
    merged = merge(out, new_task, tag)
    minutes = (time.perf_counter() - start) / 60
    log(
        f"sweep: finished in {60 * minutes:.0f} s; {sum(finished.values())} runs "
        f"({finished['cuda']} on the GPU, {finished['cpu']} on CPU workers): "
        f"{sum(finished.values()) / max(minutes, 1e-9):.1f} runs/min; {len(failures)} job(s) failed"
    )
    for line in failures:
        log(f"sweep: failed {line}")
    if failures:
        raise SweepError(
            f"{len(failures)} of {len(jobs)} jobs failed (listed above); fix the cause and run the same "
            "command again: finished jobs are kept"
        )
    return merged


def estimate(
    tables,
    profile: Profile,
    out: str | Path,
    workers: int = 2,
    epochs: int = 1,
    log=print,
    gpu_workers: int | None = None,
    data: str | None = None,
) -> pd.DataFrame:
    """How long `run_sweep(tables, profile, workers=…)` would take, from measured job times: every planned
    job runs in full (all its seeds, the full data) but for `epochs` epochs, into out/estimate; its
    seconds are scaled by the profile's planned epochs over `epochs` (the tabular tables' or the
    recommenders'), an upper bound (early stopping ends most runs sooner). Where a job keeps its epochs'
    times (Table 2's learning curves), only those are scaled, not a preparation phase (Sparse Sharing's
    subnet search, which runs its own fixed epochs); elsewhere validation and evaluation are scaled too.
    The sweep's time is the longest worker's load when the scaled jobs are dealt dearest first to the
    least loaded worker. Returns one row per job; the last
    log line gives the total."""
    capped = replace(profile, epochs=epochs, patience=0, rec=replace(profile.rec, epochs=epochs, patience=0))
    scratch = Path(out) / "estimate"
    run_sweep(tables, capped, scratch, workers, log=log, gpu_workers=gpu_workers, data=data)
    rows, measured = [], f"seconds_{epochs}_epochs"
    database = RunsDatabase(scratch / DATABASE)
    for job in plan(tables, capped, data=data):
        seconds = database.finished_jobs(job.table, scope(job))[job.key]
        planned = profile.rec.epochs if TABLES[job.table].recommender else profile.epochs
        scaled = seconds * planned / epochs
        history = database.rows(f"{job.table}.history", scope(job), job_prefix=job.key)
        if not history.empty:  # Table 2 keeps its epochs' times: scale those alone, not a preparation phase
            scaled = seconds + (planned / epochs - 1) * float(history["train_seconds"].sum())
        rows.append({"table": job.table, "job": job.key, "runs": job.runs, measured: seconds, "scaled_seconds": scaled})
    table = pd.DataFrame(rows).sort_values("scaled_seconds", ascending=False)
    loads = [0.0] * max(1, workers + (gpu_workers or 0))
    for seconds in table["scaled_seconds"]:
        loads[loads.index(min(loads))] += seconds
    log(
        f"estimate: {len(table)} jobs, {table['runs'].sum()} runs; measured {table[measured].sum() / 60:.1f} min of "
        f"{epochs}-epoch jobs; scaled to {profile.epochs} tabular / {profile.rec.epochs} recommender epochs: "
        f"{table['scaled_seconds'].sum() / 3600:.2f} h of work, {max(loads) / 3600:.2f} h on {len(loads)} worker(s)"
    )
    return table


def _device_slots(profile: Profile, workers: int, gpu_workers: int | None) -> dict[str, int]:
    """How many worker processes run on the GPU and on CPU cores."""
    import torch

    wants_gpu = profile.device in ("auto", "cuda") or profile.device.startswith("cuda")
    has_gpu = torch.cuda.is_available() and wants_gpu
    if gpu_workers is None:
        gpu_workers = 2 if has_gpu else 0
    if gpu_workers and not has_gpu:
        raise ValueError(
            f"gpu_workers={gpu_workers} but {'no GPU is visible' if wants_gpu else 'the device is cpu'}; "
            "use --gpu-workers 0"
        )
    if workers < 0 or gpu_workers < 0 or workers + gpu_workers < 1:
        raise ValueError(f"give at least one worker (workers={workers}, gpu_workers={gpu_workers})")
    return {"cuda": gpu_workers, "cpu": workers}


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


def merge(out: str | Path, new_task: str = "education", tag: str | None = None) -> dict[str, pd.DataFrame]:
    """Export every table's runs of the profile `tag` (None: all) from out/runs.sqlite into
    out/<table>.csv; Table 4 also gets the runs that Table 3 trained for its new task. Table 3 takes
    only the jobs of `new_task` (its rows do not name T3). The database holds each run once, so no
    exported table counts a seed twice."""
    out, merged = Path(out), {}
    database = RunsDatabase(out / DATABASE)
    for table, spec in TABLES.items():
        prefix = f"{new_task}-" if spec.only_new_task else ""
        merged[table] = database.rows(table, tag, job_prefix=prefix, within=True)
        histories = database.rows(f"{table}.history", tag, job_prefix=prefix, within=True)
        if not histories.empty:  # Table 2's learning curves, beside its merged file (compare_models reads them there)
            export(histories, out / f"{table}.history.csv")
    for table, spec in TABLES.items():
        if spec.derived:
            extra = spec.derived(merged, new_task)
            if not extra.empty:
                merged[table] = pd.concat([merged[table], extra], ignore_index=True)
    for table, frame in merged.items():
        if not frame.empty:
            export(frame, out / f"{table}.csv")
    return merged


def export(frame: pd.DataFrame, path: Path) -> None:
    """Write a table's runs from the database to `path`, under the CSV's writer lock. A file holding rows
    the database does not (a notebook resumed into it) is refused, never overwritten: those runs would
    be lost."""
    from .store import ResultsFileError, _writer_lock, load_rows

    with _writer_lock(path):
        if path.exists():
            there = load_rows(path)
            if set(there.columns) != set(frame.columns):
                extra = sorted(set(there.columns) - set(frame.columns))
                unknown = len(there) if extra else 0
            else:
                ours = set(frame.to_csv(index=False, header=False).splitlines())
                unknown = sum(
                    line not in ours
                    for line in there[list(frame.columns)].to_csv(index=False, header=False).splitlines()
                )
            if unknown:
                raise ResultsFileError(
                    f"{path} holds {unknown} row(s) this sweep's database does not (a notebook resumed into it?); "
                    "exporting would overwrite them: move that file away (or give the notebook another "
                    "results_path), then run the same command again"
                )
        write_csv_atomic(frame, path)
