#!/usr/bin/env bash
# The GPU suite on a lent H200 (docs/gpu.md), in two steps:
#
#   bash benchmarks/gpu_run.sh prepare   # HERE, once, in the repo root: the wheels the GPU
#                                        # image lacks (ml_collections) into .wheels/, ignored
#   bash benchmarks/gpu_run.sh [suite flags]   # THERE (the `run` tool, carry [".wheels"]):
#                                        # installs them and runs benchmarks/gpu_suite.py,
#                                        # writing gpu_suite.{json,md,log} to $OUT (where the
#                                        # tool sets it; else results/)
#
# The GPU image (/work/.library/device/KINDS.md) has python3 3.12 with jax, flax, optax,
# orbax, torch and PyYAML/absl-py, but not ml_collections (configs/ needs it) or keras (not
# used by the suite).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=.wheels
REQUIREMENTS=("ml_collections==1.1.0")  # deps absl-py, PyYAML: already in the GPU image

if [ "${1:-}" = "prepare" ]; then
  exclude="$(git rev-parse --git-path info/exclude)"
  mkdir -p "$(dirname "$exclude")"
  grep -qxF "/$WHEELS/" "$exclude" 2>/dev/null || echo "/$WHEELS/" >> "$exclude"
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEELS" "${REQUIREMENTS[@]}"
  ls -l "$WHEELS"
  exit 0
fi

if compgen -G "$WHEELS/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
out="${OUT:-results}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv || true
python3 -c "import jax, torch, ml_collections; print('jax', jax.__version__, jax.devices(), \
'torch', torch.__version__, torch.cuda.is_available())"
set -o pipefail
python3 benchmarks/gpu_suite.py --out "$out" "$@" 2>&1 | tee "$out/gpu_suite.log"
