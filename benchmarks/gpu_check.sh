#!/usr/bin/env bash
# One GPU check, under 8 minutes on one GPU, writing one summary:
#   1. the CUDA tests and the training and seed-vectorized tests on the GPU (device "auto"),
#   2. benchmarks/peers.py --device cuda (mtlab against torch-rechub and DeepCTR-Torch, MMoE, batch 4096),
#   3. benchmarks/many_runs.py --device cuda, plain and --compile (seeds vectorized vs one by one),
#   4. mtlab sweep all --profile full --estimate --gpu-workers 2 (the sweep's plan and time estimate).
#
#   bash benchmarks/gpu_check.sh pack             # here: pack what a machine without network needs
#   bash benchmarks/gpu_check.sh run [--dry-run]  # there: the steps; --dry-run: on the CPU, small sizes
#
# `pack` writes benchmarks/.peers/carry/ (git-ignored): Census-Income's and MovieLens-1M's raw files (xz)
# and the peers' wheels. A GPU machine that reaches no package index then runs with its own Python (PYTHON,
# default python3 where there is no .venv): name benchmarks/.peers/carry in the device tool's `carry`.
# Each step has its own time limit (465 s in all on a GPU); a failing step is written down and the next
# one runs; the exit status is non-zero when any step was not ok.
# The summary: $OUT/summary.txt (default runs/gpu_check/), every step's log beside it.
set -u
cd "$(dirname "$0")/.."
MODE=${1:-run}
DRY=0
[ "${2:-}" = "--dry-run" ] && DRY=1
CARRY=benchmarks/.peers/carry
if [ -x .venv/bin/python ]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi

if [ "$MODE" = "pack" ]; then
    mkdir -p "$CARRY/wheels"
    [ -d data/census-income ] || "$PY" -m mtlab fetch census-income
    [ -d data/ml-1m ] || "$PY" -m mtlab fetch ml-1m
    tar -C data -cf - census-income ml-1m | xz -T2 -6 > "$CARRY/data.tar.xz.part" &&
        mv "$CARRY/data.tar.xz.part" "$CARRY/data.tar.xz"
    "$PY" -m pip download -q --no-deps torch-rechub==0.9.0 deepctr-torch==0.3.0 -d "$CARRY/wheels"
    du -sh "$CARRY"
    exit 0
fi
if [ "$MODE" != "run" ]; then
    echo "usage: bash benchmarks/gpu_check.sh pack | run [--dry-run]" >&2
    exit 2
fi

OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if { [ ! -d data/census-income ] || [ ! -d data/ml-1m ]; } && [ -f "$CARRY/data.tar.xz" ]; then
    mkdir -p data && xz -dc "$CARRY/data.tar.xz" | tar -C data -xf -
fi
if ! "$PY" -c "import torch, mtlab" 2> "$OUT/precheck.log"; then
    echo "$PY cannot import torch and mtlab (see $OUT/precheck.log): set PYTHON, or run scripts/setup.sh" >&2
    exit 2
fi
if [ $DRY = 1 ]; then
    DEVICE=cpu
    TESTS=(tests/test_report.py -q -k "verdict")  # the harness, not the CUDA tests, on a CPU
    PEERS=(--device cpu --models mmoe --batch-sizes 4096 --repeats 1 --epochs 1)
    MANY=(--device cpu --seeds 1 2 --cases census --subsample 0.05)
    GPU_WORKERS=0 COMPILE_LIMIT=300 SWEEP_LIMIT=300  # a first CPU compile takes a minute or more
else
    DEVICE=cuda
    # the CUDA-only tests, then the training and seed-vectorized tests with device "auto" on the GPU
    TESTS=(tests/test_train.py tests/test_vectorized.py -q -x -p no:cacheprovider)
    PEERS=(--device cuda --models mmoe --batch-sizes 4096 --repeats 1 --epochs 2)
    [ -d "$CARRY/wheels" ] && PEERS+=(--peers-from "$CARRY/wheels")
    MANY=(--device cuda --seeds 1 5 --cases census,ml-1m --subsample 0.25)
    GPU_WORKERS=2 COMPILE_LIMIT=60 SWEEP_LIMIT=90  # the five limits: 465 s in all
fi

{
    echo "mtlab GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    "$PY" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
    [ $DRY = 1 ] && echo "DRY RUN on the CPU: the harness only; no figure here is a GPU's"
} > "$SUMMARY" 2>&1

step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local verdict=ok
    [ $rc = 124 ] && verdict="stopped at its limit of $limit s"
    [ $rc != 0 ] && [ $rc != 124 ] && verdict="FAILED (exit $rc)"
    {
        echo
        echo "== $name: $verdict, $((SECONDS - start)) s"
        tail -n 25 "$OUT/$name.log"
    } >> "$SUMMARY"
    echo "$name: $verdict" >&2
    [ "$verdict" = ok ] || FAILED_STEPS=$((FAILED_STEPS + 1))
}

FAILED_STEPS=0
step cuda_tests 150 "$PY" -m pytest "${TESTS[@]}"
step peers 120 "$PY" benchmarks/peers.py "${PEERS[@]}"
step many_runs 45 "$PY" benchmarks/many_runs.py "${MANY[@]}" --epochs 1
step many_runs_compile "$COMPILE_LIMIT" "$PY" benchmarks/many_runs.py "${MANY[@]}" --epochs 1 --compile
step sweep_estimate "$SWEEP_LIMIT" "$PY" -m mtlab sweep all --profile full --estimate --gpu-workers "$GPU_WORKERS" --device "$DEVICE" \
    --out "$OUT/sweep"
echo "summary: $SUMMARY ($FAILED_STEPS step(s) not ok)" >&2
[ "$FAILED_STEPS" = 0 ]
