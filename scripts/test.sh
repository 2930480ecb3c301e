#!/usr/bin/env bash
# The tests: set up, lint and format check (ruff, seconds), then pytest — unit tests plus nbval over
# every notebook in its quick profile (lax mode: each cell must run without error; the notebooks'
# assert cells are the checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest -p no:cacheprovider --nbval-lax tests notebooks "$@"
