#!/usr/bin/env bash
# `make gpu-check`: on a machine with a CUDA GPU, prepare .venv-gpu (the machine's own CUDA torch,
# plus sciml with the gpu extra), then run benchmarks/gpu_check.py. Without a GPU: one line, exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  why=$("$PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA build: {torch.version.cuda or \"none\"}")' 2>/dev/null \
        || echo "no torch for $PY")
  echo "gpu-check: skipped: no CUDA device visible to $PY ($why)"
  exit 0
fi
# A venv on top of the machine's packages keeps its CUDA build of torch (the project's Makefile pins
# the CPU build); pip adds only what is missing.
test -x .venv-gpu/bin/python || "$PY" -m venv --system-site-packages .venv-gpu
V=.venv-gpu/bin/python
extras=dev
"$V" -c 'import cupy' 2>/dev/null || extras=dev,gpu  # an installed CuPy (any CUDA flavour) is kept
if ! "$V" -m pip install -q -e ".[$extras]"; then
  echo "gpu-check: pip could not install the extras (offline?); installing sciml alone, with the packages present"
  "$V" -m pip install -q --no-deps --no-build-isolation -e .
fi
exec "$V" -m sciml_benchmarks.gpu_check "$@"
