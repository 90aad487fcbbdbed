"""The overhead job in distilabel (run with its own venv's python; see bench/peers/README in
bench/README.md): ITEMS × (generate → judge) against the stub at the given concurrency.

Prints one JSON line: {"peer": "distilabel", "wall_s": ..., "rows": ...}.
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
    os.environ.setdefault("DISTILABEL_CACHE_DIR", tempfile.mkdtemp())
    from distilabel.models import OpenAILLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    rows = [{"instruction": f"{PAD}Question {i}\nStep 1:"} for i in range(args.items)]

    def llm() -> OpenAILLM:
        return OpenAILLM(
            model="stub-model",
            base_url=args.url,
            api_key="x",  # type: ignore[arg-type]
            max_retries=0,
            generation_kwargs={"max_new_tokens": 64, "temperature": 0.7},
        )

    with Pipeline(name="overhead", cache_dir=os.environ["DISTILABEL_CACHE_DIR"]) as pipeline:
        load = LoadDataFromDicts(data=rows, batch_size=args.concurrency)
        generate = TextGeneration(
            name="generate",
            llm=llm(),
            input_batch_size=args.concurrency,
            output_mappings={"generation": "answer"},
            add_raw_output=False,
            add_raw_input=False,
        )
        judge = TextGeneration(
            name="judge",
            llm=llm(),
            template="{{ answer }}\nReview:\nVerdict:",
            columns=["answer"],
            input_batch_size=args.concurrency,
            add_raw_output=False,
            add_raw_input=False,
        )
        load >> generate >> judge
    start = time.perf_counter()
    distiset = pipeline.run(use_cache=False)
    wall = time.perf_counter() - start
    n = sum(len(ds) for config in distiset.values() for ds in config.values())
    print(json.dumps({"peer": "distilabel", "wall_s": wall, "rows": n}))


if __name__ == "__main__":
    main()
