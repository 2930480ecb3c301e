#!/usr/bin/env bash
# The tests: set up, lint and format check (ruff, seconds), then pytest — unit tests plus nbval over
# every notebook in its quick profile (lax mode: each cell must run without error; the notebooks'
# assert cells are the checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two worker processes (MTLAB_TEST_WORKERS; 0 = none), each taking whole files: a notebook's cells
# run in order in one kernel. On 2 cores this halves the run (docs/tests.md).
exec .venv/bin/python -m pytest -p no:cacheprovider -n "${MTLAB_TEST_WORKERS:-2}" --dist loadfile \
  --nbval-lax tests notebooks "$@"
