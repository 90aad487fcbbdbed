"""Scale-out: throughput of a sharded run for N = 1, 2, 4, 8 shards against slow local stubs.

Each shard gets its own stub endpoint (``--endpoint-placement partition``), like a replica per GPU:
every stub answers after ``--delay`` seconds (100 ms) and serves at most ``--stub-concurrency``
requests at once, so one shard is bound by its stub, and N shards on N stubs should reach N times
one shard's throughput (the ideal line). Weak scaling: each shard gets ``--items-per-shard`` items
(hash sharding splits them only roughly evenly; the largest shard sets the pace).

Throughput is read from the shards' trajectories: items ended per second while every shard runs
(from the last shard's first item to the first shard's last item; Ray starts the shard actors
seconds apart on a loaded 2-core machine), beside items / the whole engine span and the wall time
including actor start-up, merge and outputs. All stubs
run in one helper process (asyncio, one socket each); Ray is a local cluster started here.

    python bench/scale_out.py                       # N = 1 2 4 8
    python bench/scale_out.py --shards 1 8 --items-per-shard 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def serve_stubs(count: int, delay: float, cap: int, port_file: Path) -> None:
    """``count`` slow stubs in this process (the helper process's main)."""
    from aiohttp import web
    from stub_server import make_app

    async def main() -> None:
        ports = []
        for _ in range(count):
            app = make_app()
            gate = asyncio.Semaphore(cap)

            @web.middleware
            async def slow(request: web.Request, handler: Any, gate: asyncio.Semaphore = gate) -> Any:
                if request.method != "POST":
                    return await handler(request)
                async with gate:  # at most `cap` requests served at once, each taking `delay`
                    await asyncio.sleep(delay)
                    return await handler(request)

            app.middlewares.append(slow)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        port_file.write_text(json.dumps(ports))
        await asyncio.Event().wait()

    asyncio.run(main())


def start_stubs(count: int, delay: float, cap: int, work: Path) -> tuple[subprocess.Popen[bytes], list[str]]:
    port_file = work / "stub-ports.json"
    args = [sys.executable, __file__, "--serve-stubs", str(count), "--delay", str(delay)]
    proc = subprocess.Popen([*args, "--stub-concurrency", str(cap), "--port-file", str(port_file)])
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the stubs did not start")
        time.sleep(0.05)
    return proc, [f"http://127.0.0.1:{port}/v1" for port in json.loads(port_file.read_text())]


def write_items(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            row = {
                "id": f"q{i}",
                "question": f"Question {i}?",
                "options": {"A": "a", "B": "b"},
                "answer": "B",
            }
            fh.write(json.dumps(row) + "\n")


def spec(data: Path, concurrency: int) -> dict[str, Any]:
    """One generator call per item (the stub's latency is the work)."""
    return {
        "name": "scale-out",
        "models": {"m": {"model": "stub-model", "mode": "completion"}},
        "llm": {"cache": {"enabled": False}},
        "dataset": {"path": str(data), "fields": {"id": "id"}},
        "run": {"concurrency": concurrency},
        "nodes": {"generate": {"type": "generator", "models": ["m"], "template": "mcq_cot"}},
    }


def shard_times(trajectories: Path) -> tuple[float, float, list[float]]:
    """A shard's first item start, last item end, and every item end time."""
    first, ends = float("inf"), []
    with trajectories.open("rb") as fh:
        for line in fh:
            if b'"type":"item_started"' in line:
                first = min(first, json.loads(line)["ts"])
            elif b'"type":"item_end"' in line:
                ends.append(json.loads(line)["ts"])
    return first, max(ends), ends


def throughput(run_dir: Path, n: int) -> dict[str, float]:
    """Items/s while every shard runs (the window from the last shard's first start to the first
    shard's last end: actor start-up, which staggers the shards by seconds here, is left out), and
    items / the whole engine span (first start anywhere to last end anywhere)."""
    shards = [shard_times(run_dir / f"shard-{k}" / "trajectories.jsonl") for k in range(n)]
    start, stop = max(s[0] for s in shards), min(s[1] for s in shards)
    inside = sum(1 for s in shards for t in s[2] if start < t <= stop)
    span = max(s[1] for s in shards) - min(s[0] for s in shards)
    items = sum(len(s[2]) for s in shards)
    return {
        "steady": inside / (stop - start),
        "window": stop - start,
        "span": span,
        "per_s_span": items / span,
    }


def one(n: int, urls: list[str], work: Path, per_shard: int, cap: int) -> dict[str, float]:
    from medloom.scale.driver import ShardOptions, run_sharded

    data = work / f"items-{n}.jsonl"
    write_items(data, n * per_shard)
    start = time.perf_counter()
    result = run_sharded(
        spec(data, cap),
        options=ShardOptions(shards=n, placement="partition", shard_cpus=1),
        endpoints=urls[:n],
        endpoint_concurrency=cap,
        runs_dir=work / "runs",
    )
    total = time.perf_counter() - start
    assert result.report.items == n * per_shard and result.report.failed == 0, result.report
    return {"items": n * per_shard, "total": total, **throughput(result.run_dir, n)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--items-per-shard", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds per stub reply")
    parser.add_argument("--stub-concurrency", type=int, default=2, help="requests one stub serves at once")
    parser.add_argument("--serve-stubs", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stubs:
        serve_stubs(args.serve_stubs, args.delay, args.stub_concurrency, Path(args.port_file))
        return
    from medloom.scale import connect

    connect("local", num_cpus=max(args.shards))  # a fresh cluster of its own
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, urls = start_stubs(max(args.shards), args.delay, args.stub_concurrency, work)
        try:
            rows = {n: one(n, urls, work, args.items_per_shard, args.stub_concurrency) for n in args.shards}
        finally:
            proc.terminate()
            proc.wait()
    base = rows[min(rows)]["steady"] / min(rows)
    load = os.getloadavg()[0]
    print(
        f"stub: {args.delay * 1000:.0f} ms replies, {args.stub_concurrency} at once per stub; "
        f"{args.items_per_shard} items per shard; load average {load:.1f}"
    )
    print(
        "| shards | items | items/s, all shards running | ideal items/s | efficiency | window "
        "| items / whole engine span | incl. setup and merge |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, row in rows.items():
        ideal = base * n
        print(
            f"| {n} | {row['items']} | {row['steady']:.1f} | {ideal:.1f} | {row['steady'] / ideal:.2f} | "
            f"{row['window']:.1f} s | {row['per_s_span']:.1f} ({row['span']:.1f} s) | {row['total']:.1f} s |"
        )


if __name__ == "__main__":
    main()
