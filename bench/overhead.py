"""Orchestration overhead: medloom vs raw clients making the same calls against the same stub.

An instant OpenAI-compatible stub (bench/stub_server.py, in its own process) answers every call.
Each side makes ITEMS × (generate + judge) completion calls at the same concurrency:

- raw openai: `openai.AsyncOpenAI` + `asyncio.Semaphore`, generate then judge per item;
- raw aiohttp: one `aiohttp.ClientSession` + semaphore, the same requests as JSON (the floor);
- medloom: a two-node graph (generator → LLM judge) run by `medloom.run`, cache off, writing
  its run directory (trajectories, report, dataset) as usual. Its engine time is the report's
  wall time; "incl. setup" adds start-up, report, dataset and card writing.

Whole processes, from interpreter start to exit: `medloom run CONFIG` (the same graph; start-up
imports, the run, report, dataset, Parquet, JSONL and card) against bench/floor_process.py (raw
aiohttp reading the items and writing one JSON line per item).

Rounds are interleaved (raw openai, medloom, raw aiohttp, medloom process, floor process, repeat)
and the median is printed, so load from other jobs hits every side alike.

    python bench/overhead.py --items 2000 --concurrency 64 --rounds 3
    python bench/overhead.py --items 2000 --profile /tmp/medloom.prof   # cProfile medloom's run
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import yaml

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]  # this checkout's medloom, and the stub beside us
from stub_server import start_stub  # noqa: E402

MODEL = "stub-model"
# The baseline's prompts are as long as medloom's rendered few-shot prompts, so the bytes
# moved are comparable (measured from a medloom trajectory: ~1.6 kB generate, ~1.9 kB judge).
PAD = "Background sentence for a few-shot prompt of realistic length. " * 25


def write_items(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            row = {
                "id": f"q{i}",
                "question": f"Question number {i}: which option?",
                "options": {"A": "alpha", "B": "beta", "C": "gamma", "D": "delta"},
                "answer": "B",
            }
            fh.write(json.dumps(row) + "\n")


async def raw_openai(url: str, items: int, concurrency: int) -> float:
    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            gen = await client.completions.create(
                model=MODEL, prompt=f"{PAD}Question {i}\nStep 1:", max_tokens=64, temperature=0.7
            )
            text = gen.choices[0].text
            await client.completions.create(
                model=MODEL, prompt=f"{PAD}{text}\nReview:\nVerdict:", max_tokens=32, temperature=0.0
            )

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(items)))
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


async def raw_aiohttp(url: str, items: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(body: dict[str, Any]) -> dict[str, Any]:
            async with session.post(f"{url}/completions", json=body) as resp:
                resp.raise_for_status()
                return dict(await resp.json())

        async def one(i: int) -> None:
            async with sem:
                gen = await call({"model": MODEL, "prompt": f"{PAD}Question {i}\nStep 1:", "max_tokens": 64})
                text = gen["choices"][0]["text"]
                await call({"model": MODEL, "prompt": f"{PAD}{text}\nReview:\nVerdict:", "max_tokens": 32})

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(items)))
        return time.perf_counter() - start


def overhead_spec(url: str, data: Path, concurrency: int) -> dict[str, Any]:
    return {
        "name": "overhead",
        "models": {"m": {"model": MODEL, "mode": "completion"}},
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


def medloom_run(
    url: str, data: Path, runs: Path, concurrency: int, profile: str | None = None
) -> tuple[float, float]:
    import medloom

    spec = overhead_spec(url, data, concurrency)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    result = medloom.run(spec, runs_dir=runs)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    total = time.perf_counter() - start
    assert result.report.items == sum(1 for _ in data.open()), result.report
    assert result.report.failed == 0, result.report
    return total, result.report.wall_time_s


def timed(command: list[str]) -> float:
    """Wall time of ``command`` from start to exit (this checkout's medloom on its path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCH.parent), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def medloom_process(url: str, data: Path, work: Path, concurrency: int) -> float:
    """``medloom run CONFIG``, as a user runs it (progress on stderr), start to exit."""
    config = work / "overhead.yaml"
    config.write_text(yaml.safe_dump(overhead_spec(url, data, concurrency)))
    runs = work / "runs-cli"
    seconds = timed([sys.executable, "-m", "medloom.cli.main", "run", str(config), "--runs-dir", str(runs)])
    assert sum(1 for _ in next(runs.glob("*/data.jsonl")).open()) == sum(1 for _ in data.open())
    shutil.rmtree(runs)
    return seconds


def floor_process(url: str, data: Path, work: Path, concurrency: int) -> float:
    out = work / "floor.jsonl"
    script = str(BENCH / "floor_process.py")
    seconds = timed([sys.executable, script, url, str(data), str(out), "--concurrency", str(concurrency)])
    assert sum(1 for _ in out.open()) == sum(1 for _ in data.open())
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default=None, help="write a cProfile of one medloom run here")
    parser.add_argument("--skip-openai", action="store_true", help="leave out the raw openai client")
    args = parser.parse_args()
    keys = ["openai", "aiohttp", "engine", "total", "process", "floor_process"]
    results: dict[str, list[float]] = {k: [] for k in keys if not (args.skip_openai and k == "openai")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, url = start_stub(work / "port")
        try:
            data = work / "items.jsonl"
            write_items(data, args.items)
            if args.profile:
                medloom_run(url, data, work / "runs-prof", args.concurrency, args.profile)
                stats = pstats.Stats(args.profile)
                stats.sort_stats("cumulative").print_stats(35)
                stats.sort_stats("tottime").print_stats(25)
                return
            for _ in range(args.rounds):
                if not args.skip_openai:
                    results["openai"].append(asyncio.run(raw_openai(url, args.items, args.concurrency)))
                total, engine = medloom_run(url, data, work / "runs", args.concurrency)
                results["total"].append(total)
                results["engine"].append(engine)
                results["aiohttp"].append(asyncio.run(raw_aiohttp(url, args.items, args.concurrency)))
                results["process"].append(medloom_process(url, data, work, args.concurrency))
                results["floor_process"].append(floor_process(url, data, work, args.concurrency))
        finally:
            proc.terminate()
            proc.wait()
    calls = 2 * args.items
    med = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"{args.items} items × (generate + judge) = {calls} calls, concurrency {args.concurrency}, "
        f"median of {args.rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    for label, key in (
        ("raw aiohttp client", "aiohttp"),
        ("raw openai client", "openai"),
        ("medloom (engine)", "engine"),
    ):
        if key not in med:
            continue
        vs = f"  ({med[key] / med['openai'] - 1:+.0%} vs raw openai)" if "openai" in med else ""
        floor = med[key] / med["aiohttp"]
        print(f"{label:<22} {med[key]:7.2f} s  {calls / med[key]:7.0f} calls/s  {floor:4.2f}x the floor{vs}")
    print(f"medloom incl. setup, report, dataset writing: {med['total']:7.2f} s")
    print(
        f"whole process: medloom run {med['process']:.2f} s, floor {med['floor_process']:.2f} s "
        f"({med['process'] / med['floor_process']:.2f}x)"
    )
    print("all rounds:", {k: [round(x, 2) for x in v] for k, v in results.items()})


if __name__ == "__main__":
    main()
