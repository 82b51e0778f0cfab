#!/usr/bin/env bash
# One GPU's throughput for scoremix-ds workloads, in under 8 minutes (benchmarks/device_bench.py says what it measures).
#
#   make device-wheels                        # HERE (with network): the wheels the GPU machine lacks, into .whl/
#   bash benchmarks/device.sh                 # THERE (no network): installs .whl/ with --no-index if scoremix_ds is
#                                             # not importable, then runs every section, writing $OUT/device.json
#                                             # after each one (a timeout keeps what was measured)
#   bash benchmarks/device.sh --tiny          # anywhere, in about a minute: tiny models (what the test suite runs)
# Extra flags go to the script (e.g. --batch 128 --steps 10 --no-compile --sections sampling,train).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-python3}"
export SCOREMIX_LOG_LEVEL="${SCOREMIX_LOG_LEVEL:-WARNING}" PYTHONUNBUFFERED=1
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # the package is this working tree
if ! "$python" -c "import scoremix_ds.cli, diffusers, datasets" 2>/dev/null; then
  if ! ls "$root"/.whl/*.whl >/dev/null 2>&1; then
    echo "scoremix_ds's dependencies (diffusers, datasets, ...) are not importable and $root/.whl holds no wheels: run 'make device-wheels' where pip has a network" >&2
    exit 2
  fi
  site="${DEVICE_SITE:-/tmp/scoremix-site}"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$root"/.whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
exec timeout "${DEVICE_BENCH_TIMEOUT:-470}" "$python" "$here/device_bench.py" "$@"
