#!/usr/bin/env bash
# One GPU's throughput for scoremix-ds workloads, in under 8 minutes (benchmarks/device_bench.py says what it prints).
#   bash benchmarks/device.sh                 # on a GPU machine: unet-face 112x112 bf16, eager and compiled, IR-50
#   bash benchmarks/device.sh --tiny          # anywhere, in seconds: tiny models (what tests/test_device_bench.py runs)
# Extra flags go to the script (e.g. --batch 128 --steps 10 --no-compile --json out.json).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
export SCOREMIX_LOG_LEVEL="${SCOREMIX_LOG_LEVEL:-WARNING}"
exec timeout "${DEVICE_BENCH_TIMEOUT:-470}" "$python" "$here/device_bench.py" "$@"
