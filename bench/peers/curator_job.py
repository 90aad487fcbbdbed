"""The overhead job in bespokelabs-curator (run with its own venv's python): ITEMS × (generate →
judge) against the stub, OpenAI backend pointed at the stub, at the given concurrency.

Prints one JSON line: {"peer": "curator", "wall_s": ..., "rows": ...}, or raises with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

PAD = "Background sentence for a few-shot prompt of realistic length. " * 25


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("CURATOR_CACHE_DIR", tempfile.mkdtemp())
    os.environ.setdefault("CURATOR_DISABLE_CACHE", "true")
    os.environ.setdefault("OPENAI_API_KEY", "x")
    # Offline: curator's OpenAI processor loads tiktoken's cl100k_base, which tiktoken downloads
    # from openaipublic.blob.core.windows.net; litellm (a curator dependency) bundles that file.
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec and spec.submodule_search_locations and "TIKTOKEN_CACHE_DIR" not in os.environ:
        bundled = os.path.join(spec.submodule_search_locations[0], "litellm_core_utils", "tokenizers")
        os.environ["TIKTOKEN_CACHE_DIR"] = bundled
    from bespokelabs import curator
    from datasets import Dataset

    backend_params = {
        "base_url": args.url,
        "api_key": "x",
        "max_concurrent_requests": args.concurrency,
        "max_requests_per_minute": 10_000_000,
        "max_tokens_per_minute": 10_000_000_000,
        "max_retries": 0,
        "require_all_responses": False,
    }

    class Generate(curator.LLM):
        def prompt(self, row: dict) -> str:  # type: ignore[override]
            return str(row["instruction"])

        def parse(self, row: dict, response: str) -> dict:  # type: ignore[override]
            return {"answer": response}

    class Judge(curator.LLM):
        def prompt(self, row: dict) -> str:  # type: ignore[override]
            return f"{row['answer']}\nReview:\nVerdict:"

        def parse(self, row: dict, response: str) -> dict:  # type: ignore[override]
            return {"answer": row["answer"], "verdict": response}

    common = {"model_name": "stub-model", "backend": "openai", "backend_params": backend_params}
    generate = Generate(generation_params={"max_tokens": 64, "temperature": 0.7}, **common)
    judge = Judge(generation_params={"max_tokens": 32, "temperature": 0.0}, **common)
    rows = Dataset.from_list([{"instruction": f"{PAD}Question {i}\nStep 1:"} for i in range(args.items)])
    start = time.perf_counter()
    answers = generate(rows)
    answers = getattr(answers, "dataset", answers)
    verdicts = judge(answers)
    verdicts = getattr(verdicts, "dataset", verdicts)
    wall = time.perf_counter() - start
    print(json.dumps({"peer": "curator", "wall_s": wall, "rows": len(verdicts)}))


if __name__ == "__main__":
    main()
