"""The floor's whole process: raw aiohttp + a semaphore, from interpreter start to results written.

Reads the items (JSONL), makes the same generate → judge completion calls as ``overhead.py``'s raw
aiohttp side, and writes one JSON line per item (the generation and the verdict), so it compares
with ``medloom run`` from start to dataset written. It imports nothing but aiohttp and the standard
library, as a hand-written script would.

    python bench/floor_process.py URL ITEMS.jsonl OUT.jsonl --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

MODEL = "stub-model"
PAD = "Background sentence for a few-shot prompt of realistic length. " * 25  # as overhead.py's


async def run(url: str, items: list[dict[str, Any]], concurrency: int) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(body: dict[str, Any]) -> dict[str, Any]:
            async with session.post(f"{url}/completions", json=body) as resp:
                resp.raise_for_status()
                return dict(await resp.json())

        async def one(item: dict[str, Any]) -> dict[str, Any]:
            async with sem:
                prompt = f"{PAD}{item['question']}\nStep 1:"
                gen = await call({"model": MODEL, "prompt": prompt, "max_tokens": 64})
                text = gen["choices"][0]["text"]
                judge = await call(
                    {"model": MODEL, "prompt": f"{PAD}{text}\nReview:\nVerdict:", "max_tokens": 32}
                )
                return {"id": item["id"], "reasoning": text, "verdict": judge["choices"][0]["text"]}

        return await asyncio.gather(*(one(item) for item in items))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("items", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    items = [json.loads(line) for line in args.items.open()]
    rows = asyncio.run(run(args.url, items, args.concurrency))
    with args.out.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
