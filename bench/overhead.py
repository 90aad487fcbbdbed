"""Orchestration overhead: medloom vs a raw `openai.AsyncOpenAI` client, same calls, same stub.

An instant local OpenAI-compatible stub (medloom's fake server, in its own process) answers every
call. Both sides make ITEMS × (generate + judge) calls at the same concurrency:

- baseline: `openai.AsyncOpenAI` + `asyncio.Semaphore`, generate then judge per item;
- medloom: a two-node graph (generator → LLM judge) run by `medloom.run`, cache off, writing
  its run directory (trajectories, report, dataset) as usual.

    .venv/bin/python bench/overhead.py --items 500 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[1]
GEN = " The findings narrow the options.\nStep 2: Option B fits best.\nAnswer: B"


def start_stub(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = workdir / "port"
    script = workdir / "stub.py"
    script.write_text(
        "def reply(req):\n"
        "    if req.prompt_text.rstrip().endswith('Verdict:'):\n"
        "        return ' Correct\\nScore: 4\\nWrong steps: none\\nReason: fine.'\n"
        f"    return {GEN!r}\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medloom.testing.fake_openai",
            "--port",
            "0",
            "--script",
            f"{script}:reply",
            "--port-file",
            str(port_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text().strip():
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("stub did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}/v1"


def write_items(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "id": f"q{i}",
                        "question": f"Question number {i}: which option?",
                        "options": {"A": "alpha", "B": "beta", "C": "gamma", "D": "delta"},
                        "answer": "B",
                    }
                )
                + "\n"
            )


async def baseline(url: str, items: int, concurrency: int) -> float:
    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            gen = await client.completions.create(
                model="fake-model", prompt=f"Question {i}\nStep 1:", max_tokens=64
            )
            text = gen.choices[0].text
            await client.completions.create(
                model="fake-model", prompt=f"{text}\nReview:\nVerdict:", max_tokens=32
            )

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(items)))
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


def medloom_run(url: str, data: Path, runs: Path, concurrency: int) -> tuple[float, float]:
    import medloom

    spec = {
        "name": "overhead",
        "models": {"m": {"model": "fake-model", "mode": "completion"}},
        "endpoints": [{"name": "stub", "base_url": url, "max_concurrency": concurrency}],
        "llm": {"cache": {"enabled": False}},
        "dataset": {"path": str(data), "fields": {"id": "id"}},
        "run": {"concurrency": concurrency},
        "nodes": {
            "generate": {
                "type": "generator",
                "models": ["m"],
                "template": "mcq_cot",
                "sampling": {"max_tokens": 64},
            },
            "judge": {"type": "verifier", "verifiers": [{"judge": "m", "structured": False}]},
        },
        "edges": ["generate -> judge"],
    }
    start = time.perf_counter()
    result = medloom.run(spec, runs_dir=runs)
    total = time.perf_counter() - start
    assert result.report.items == sum(1 for _ in data.open()), result.report
    return total, result.report.wall_time_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, url = start_stub(work)
        try:
            data = work / "items.jsonl"
            write_items(data, args.items)
            calls = 2 * args.items
            base = asyncio.run(baseline(url, args.items, args.concurrency))
            total, engine = medloom_run(url, data, work / "runs", args.concurrency)
        finally:
            proc.terminate()
            proc.wait()
    print(f"{args.items} items × (generate + judge) = {calls} calls, concurrency {args.concurrency}")
    print(f"raw openai client      {base:7.2f} s  {calls / base:7.0f} calls/s")
    overhead = engine / base - 1
    print(f"medloom (engine only)  {engine:7.2f} s  {calls / engine:7.0f} calls/s  ({overhead:+.0%} vs raw)")
    print(f"medloom (incl. setup, report, dataset writing) {total:7.2f} s")


if __name__ == "__main__":
    main()
