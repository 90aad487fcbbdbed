"""Scale: N items through a 3-node graph (generate → answer check → LLM judge) on the instant
stub; reports wall time, throughput and the peak RSS of the medloom process for each N, so a
flat memory profile shows as near-equal peaks (each N runs in a fresh process).

    python bench/scale.py --items 10000 30000 100000 --concurrency 64
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]
from overhead import MODEL, write_items  # noqa: E402
from stub_server import start_stub  # noqa: E402


def one_run(url: str, items: int, concurrency: int, work: Path) -> dict[str, float]:
    """Runs in a fresh process: the run, then this process's peak RSS."""
    import medloom

    data = work / f"items-{items}.jsonl"
    write_items(data, items)
    spec = {
        "name": "scale",
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
            "check": {"type": "verifier", "verifiers": [{"check": "mcq_answer"}]},
            "judge": {"type": "verifier", "verifiers": [{"judge": "m", "structured": False}]},
        },
        "edges": [{"from": "generate", "to": "check"}, {"from": "check", "to": "judge", "when": "passed"}],
    }

    class EnginePeak:
        """Records the peak RSS when the engine finishes (before report and outputs)."""

        peak_mib = 0.0

        def on_start(self, total: object, already_done: object, client: object) -> None: ...

        def on_item(self, end: object) -> None: ...

        def on_finish(self) -> None:
            self.peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    hook = EnginePeak()
    start = time.perf_counter()
    result = medloom.run(spec, runs_dir=work / f"runs-{items}", progress=hook)
    total = time.perf_counter() - start
    r = result.report
    assert r.items == items and r.kept + r.rejected + r.failed == items, r
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "items": items,
        "engine_s": r.wall_time_s,
        "total_s": total,
        "calls": r.calls,
        "engine_peak_mib": hook.peak_mib,
        "peak_rss_mib": peak_mib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # url,items,workdir
        url, items, work = args.child.split(",")
        print(json.dumps(one_run(url, int(items), args.concurrency, Path(work))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, url = start_stub(work / "port")
        try:
            for n in args.items:
                child = [sys.executable, __file__, "--concurrency", str(args.concurrency)]
                child += ["--child", f"{url},{n},{work}"]
                out = subprocess.run(child, capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{n:7d} items  {r['calls']:7d} calls  engine {r['engine_s']:7.1f} s  "
                    f"({r['calls'] / r['engine_s']:5.0f} calls/s)  total {r['total_s']:7.1f} s  "
                    f"peak RSS: engine {r['engine_peak_mib']:5.0f} MiB, with report and outputs "
                    f"{r['peak_rss_mib']:5.0f} MiB  (load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
