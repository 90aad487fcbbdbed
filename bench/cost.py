"""Cost: prompt tokens processed per verified trace for configs/mcq_refine.yaml, with the n
samples of a generator call in one request (`supports_n: true`, the default) and without
(`supports_n: false`: one request per sample), and how much of it a prefix cache could skip.

It runs on medloom's deterministic MCQ fake (tokens = whitespace-separated words), so both
settings produce the same traces and the difference is only the layout of the requests. The
prefix-cacheable share counts, for every call, the words it shares as a prefix with an earlier
call of the same agent: medloom's templates put the fixed few-shot block first and the item
last, so a server with prefix caching (vLLM's is on by default) skips that part.

    python bench/cost.py --limit 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
RECIPE = BENCH.parent / "configs" / "mcq_refine.yaml"


def _common_prefix_words(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def measure(supports_n: bool, limit: int, work: Path) -> dict[str, float]:
    import medloom
    from medloom.testing.fake_openai import FakeOpenAIServer
    from medloom.testing.mcq_student import McqStudent

    config = yaml.safe_load(RECIPE.read_text())
    config["dataset"]["path"] = str(RECIPE.parent / config["dataset"]["path"])
    with FakeOpenAIServer(McqStudent()) as srv:
        config["endpoints"] = [{"name": "fake", "base_url": srv.base_url, "supports_n": supports_n}]
        result = medloom.run(config, runs_dir=work / f"runs-{supports_n}", limit=limit, no_cache=True)
        requests = srv.requests
    r = result.report
    seen: dict[str, list[list[str]]] = defaultdict(list)
    cacheable = 0
    prompt_words = 0
    for req in requests:
        words = req.prompt_text.split()
        prompt_words += len(words)
        key = "judge" if req.prompt_text.rstrip().endswith("Verdict:") else "other"
        best = max((_common_prefix_words(words, w) for w in seen[key][-50:]), default=0)
        cacheable += best
        seen[key].append(words)
    return {
        "requests": len(requests),
        "prompt_tokens": r.prompt_tokens,
        "verified": r.rows,
        "per_trace": r.prompt_tokens / max(r.rows, 1),
        "cacheable_share": cacheable / max(prompt_words, 1),
        "uncached_per_trace": (r.prompt_tokens * (1 - cacheable / max(prompt_words, 1))) / max(r.rows, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = {flag: measure(flag, args.limit, Path(tmp)) for flag in (True, False)}
    print(f"configs/mcq_refine.yaml, {args.limit} items, fake MCQ student (tokens = words)")
    for flag, m in rows.items():
        label = "n samples in one request" if flag else "one request per sample "
        print(
            f"{label}  requests {m['requests']:4d}  prompt tokens {m['prompt_tokens']:7d}  "
            f"verified traces {m['verified']:3d}  prompt tokens/verified trace {m['per_trace']:7.0f}  "
            f"prefix-cacheable {m['cacheable_share']:.0%} → {m['uncached_per_trace']:6.0f} uncached/trace"
        )
    print(json.dumps(rows))
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
