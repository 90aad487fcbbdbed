#!/usr/bin/env bash
# Set up everything the tests need, then run lint, type checks and the whole test suite
# (unit, CLI, and integration tests against a real local vLLM server).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --local
export PATH="$PWD/.venv/bin:$PATH"
export MEDLOOM_REQUIRE_VLLM=1   # vLLM integration tests fail (not skip) if the server is missing

echo "==> ruff"
ruff check medloom tests bench
ruff format --check medloom tests bench
echo "==> mypy"
mypy
echo "==> pytest"
set +e
python -m pytest -ra "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$code"
