#!/usr/bin/env bash
# Every GPU figure the project promises, in one run (< 8 min on one H100/H200-class GPU; nothing
# is downloaded): training step throughput and MFU (bf16, channels_last, compile off/on), the
# training loop and its packed loader, evaluate, and predict on a 10980 x 10980 scene (fp32 and
# bf16), and UnCRtainTS beside DSen2-CR (forward, its training step, predict with the standard
# deviation). Prints one table and writes it as JSON (default gpu_results.json; --out FILE).
#   benchmarks/gpu.sh                  # on the GPU machine
#   benchmarks/gpu.sh --dry-run        # tiny sizes on the CPU, in seconds (tests run this)
# Uses .venv/bin/python when there is one (make install), else python3; PYTHON overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
exec "$PY" benchmarks/gpu.py "$@"
