"""Overhead against peers: the same 2-node job (generate → judge) on the same instant stub, by
the raw openai client (baseline), medloom, distilabel and bespokelabs-curator, each peer in its
own virtual environment (`bash bench/peers/setup.sh` makes /tmp/medloom-peer-*). Rounds are
interleaved and medians printed; a peer that cannot run prints why.

    python bench/peers/run_peers.py --items 2000 --concurrency 64 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PEERS = Path(__file__).resolve().parent
sys.path[:0] = [str(PEERS.parent.parent), str(PEERS.parent)]
from overhead import medloom_run, raw_openai, write_items  # noqa: E402
from stub_server import start_stub  # noqa: E402


def run_peer(peer: str, url: str, items: int, concurrency: int, timeout: float) -> float | str:
    python = Path(f"/tmp/medloom-peer-{peer}/bin/python")
    if not python.exists():
        return f"no venv at {python.parent.parent} (run bash bench/peers/setup.sh {peer})"
    cmd = [str(python), str(PEERS / f"{peer}_job.py"), "--url", url, "--items", str(items)]
    cmd += ["--concurrency", str(concurrency)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{") and '"wall_s"' in line:
            result = json.loads(line)
            if result["rows"] != items:
                return f"finished with {result['rows']} of {items} rows"
            return float(result["wall_s"])
    errors = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "Error" in ln or "error" in ln]
    return "failed: " + (" | ".join(errors[-3:]) or proc.stderr[-500:])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--peers", nargs="+", default=["distilabel", "curator"])
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    times: dict[str, list[float]] = {}
    notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, url = start_stub(work / "port")
        try:
            data = work / "items.jsonl"
            write_items(data, args.items)
            for _ in range(args.rounds):
                times.setdefault("raw openai", []).append(
                    asyncio.run(raw_openai(url, args.items, args.concurrency))
                )
                _, engine = medloom_run(url, data, work / "runs", args.concurrency)
                times.setdefault("medloom", []).append(engine)
                for peer in args.peers:
                    out = run_peer(peer, url, args.items, args.concurrency, args.timeout)
                    if isinstance(out, float):
                        times.setdefault(peer, []).append(out)
                    else:
                        notes[peer] = out
        finally:
            proc.terminate()
            proc.wait()
    calls = 2 * args.items
    base = statistics.median(times["raw openai"])
    print(
        f"{args.items} items × (generate + judge) = {calls} calls, concurrency {args.concurrency}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for name, values in times.items():
        t = statistics.median(values)
        print(f"{name:<12} {t:8.2f} s  {calls / t:7.0f} calls/s  ({t / base - 1:+.0%} vs raw openai)")
    for name, why in notes.items():
        print(f"{name:<12} could not run: {why}")


if __name__ == "__main__":
    main()
