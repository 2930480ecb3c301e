#!/usr/bin/env bash
# The main job: set up, then execute every notebook with papermill in the quick profile into
# runs/<timestamp>/ with a summary (summary.md, summary.csv). Extra arguments go to `mtlab run`,
# e.g. `bash scripts/run.sh --profile full`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m mtlab run --profile quick "$@"
