#!/usr/bin/env bash
# The GPU check in one command (benchmarks/gpu_check.py says what it measures):
#
#   bash benchmarks/gpu_check.sh OUT.md            # installs what is missing, runs everything
#   bash benchmarks/gpu_check.sh OUT.md --small    # CPU-sized
#
# For a machine without internet whose image has jax, flax, optax, orbax-checkpoint and
# torch, first fill a wheelhouse on a machine with internet (about 40 MB):
#
#   bash benchmarks/gpu_check.sh --wheelhouse wheels
#
# and bring wheels/ along: the check installs from it with --no-index (KJAX_WHEELS=DIR to
# use another folder). kjax itself is installed --no-deps, so the image's jax stays.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# What kjax needs beyond the GPU image's jax, flax, optax, orbax-checkpoint and torch.
MISSING_OK=(ml_collections tensorflow-datasets importlib_resources matplotlib matplotlib-fontja
            pillow absl-py tensorboardX scikit-learn pytest)

if [[ "${1:-}" == "--wheelhouse" ]]; then
  dir=${2:?usage: bash benchmarks/gpu_check.sh --wheelhouse DIR}
  $PY -m pip download -q -d "$dir" "${MISSING_OK[@]}"
  echo "gpu_check: wheels for ${MISSING_OK[*]} in $dir"
  exit 0
fi
out=${1:?usage: bash benchmarks/gpu_check.sh OUT.md [gpu_check.py flags]}
shift

if ! $PY -c "import kjax, ml_collections, tensorflow_datasets, sklearn, tensorboardX, matplotlib_fontja, pytest" 2>/dev/null; then
  wheels=${KJAX_WHEELS:-wheels}
  if [[ -d "$wheels" ]]; then
    $PY -m pip install -q --no-index --find-links "$wheels" "${MISSING_OK[@]}"
  else
    $PY -m pip install -q "${MISSING_OK[@]}"
  fi
  $PY -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null \
    || $PY -m pip install -q --no-deps -e .
fi
exec $PY benchmarks/gpu_check.py --out="$out" "$@"
