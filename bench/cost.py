"""Cost: prompt tokens processed per verified trace for a recipe, with the n samples of a
generator call in one request (`supports_n: true`, the default) and without
(`supports_n: false`: one request per sample), and how much of it a prefix cache skips.

Fake mode (no `--endpoint`, the default recipe configs/mcq_refine.yaml) runs on medloom's
deterministic MCQ fake (tokens = whitespace-separated words), so both settings produce the same
traces and the difference is only the layout of the requests. The prefix-cacheable share counts,
for every call, the words it shares as a prefix with an earlier call of the same agent:
medloom's templates put the fixed few-shot block first and the item last, so a server with
prefix caching (vLLM's is on by default) skips that part.

Server mode (`--endpoint URL` of a vLLM server) runs the recipe for real, no request cache, and
reads the prefix-cache counters from the server's Prometheus `/metrics` before and after each
run: queried prompt tokens, cache hits, and so the prompt tokens actually computed.
`--unfriendly` adds runs with a deliberately cache-unfriendly layout: every template of the
recipe gets the item's question prepended, so no two items share a prefix.

Routing mode (`--routing`, with two or more `--endpoint`s or `--serve N`) runs the same recipe and
items under `llm.routing: sticky` and `least_outstanding`, alternately for `--rounds` rounds, and
sums the prefix-cache counters of every server. Before each run it empties every server's prefix
cache (`POST /reset_prefix_cache`, which vLLM serves with `VLLM_SERVER_DEV_MODE=1`), so no run
profits from the one before. `--serve N` starts N embedded-default vLLM CPU servers on free ports
for the benchmark only (dev mode on) and stops them at the end.

    python bench/cost.py --limit 20
    python bench/cost.py --recipe configs/reasonmed.yaml --endpoint http://127.0.0.1:8100/v1 \\
        --limit 2 --unfriendly
    python bench/cost.py --recipe configs/reasonmed.yaml --serve 2 --routing --limit 4 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
RECIPE = BENCH.parent / "configs" / "mcq_refine.yaml"
METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+)$")
UNFRIENDLY_HEADER = "Case under review: {{ question | default('') }}\n\n"


def _common_prefix_words(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _load_recipe(recipe: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(recipe.read_text())
    if "dataset" in config:  # not for a recipe whose items come from a source op
        path = Path(config["dataset"]["path"])
        if not path.is_absolute():
            config["dataset"]["path"] = str(recipe.parent / path)
    return config


def measure(recipe: Path, supports_n: bool, limit: int, work: Path) -> dict[str, float]:
    import medloom
    from medloom.testing.fake import FakeOpenAIServer
    from medloom.testing.mcq_student import McqStudent

    config = _load_recipe(recipe)
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


def scrape(endpoint: str) -> dict[str, float]:
    """vLLM's Prometheus counters, summed over labels (prefix cache, prompt tokens, requests)."""
    base = endpoint.rstrip("/").removesuffix("/v1")
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    totals: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        m = METRIC.match(line.strip())
        if not m or m[1].endswith("_created"):
            continue
        if "prefix_cache" in m[1] or m[1].startswith(("vllm:prompt_tokens", "vllm:request_success")):
            source = re.search(r'source="([^"]+)"', m[2] or "")
            totals[m[1] + (f"[{source[1]}]" if source else "")] += float(m[3])
    return dict(totals)


def scrape_all(endpoints: list[str]) -> dict[str, dict[str, float]]:
    return {e: scrape(e) for e in endpoints}


def reset_prefix_cache(endpoint: str) -> bool:
    """Empty a vLLM server's prefix cache; False when it does not offer the (dev mode) route."""
    base = endpoint.rstrip("/").removesuffix("/v1")
    request = urllib.request.Request(f"{base}/reset_prefix_cache", method="POST", data=b"")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError:
        return False


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def _counter(delta: dict[str, float], stem: str) -> float:
    """The one counter named ``vllm:<stem>`` (with or without ``_total``)."""
    return delta.get(f"vllm:{stem}_total", delta.get(f"vllm:{stem}", 0.0))


def unfriendly_templates(config: dict[str, Any], target: Path) -> None:
    """Copies of the recipe's completion templates with the item's question put first."""
    from medloom.agents.templates import BUILTIN_DIR

    target.mkdir(parents=True, exist_ok=True)
    for src in BUILTIN_DIR.glob("*.completion.j2"):
        text = src.read_text()
        lines = text.splitlines(keepends=True)
        imports = [x for x in lines if x.startswith(("{% import", "{% from"))]
        rest = [x for x in lines if not x.startswith(("{% import", "{% from"))]
        (target / src.name).write_text("".join(imports) + UNFRIENDLY_HEADER + "".join(rest))
    config["templates_dir"] = str(target)


class CountingTransport:
    """Counts the HTTP requests the run's client sends through the transport it wraps."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests = 0

    async def send(self, request: Any) -> Any:
        self.requests += 1
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def measure_server(
    recipe: Path, endpoint: str, supports_n: bool, limit: int, work: Path, unfriendly: bool
) -> dict[str, Any]:
    import medloom
    from medloom.llm.http import AiohttpTransport

    config = _load_recipe(recipe)
    config["endpoints"] = [{"name": "vllm", "base_url": endpoint, "supports_n": supports_n}]
    tag = f"{'unfriendly' if unfriendly else 'friendly'}-{supports_n}"
    if unfriendly:
        unfriendly_templates(config, work / f"templates-{tag}")
    transport = CountingTransport(AiohttpTransport())
    before = scrape(endpoint)
    started = time.monotonic()
    result = medloom.run(
        config, runs_dir=work / f"runs-{tag}", limit=limit, no_cache=True, transport=transport
    )
    http_requests = transport.requests
    wall = time.monotonic() - started
    after = scrape(endpoint)
    delta = _delta(after, before)
    r = result.report
    verify = r.nodes.get("verify")
    passed = verify.passed if verify else 0
    queries = _counter(delta, "prefix_cache_queries")
    hits = _counter(delta, "prefix_cache_hits")
    computed = queries - hits
    return {
        "layout": "item first (unfriendly)" if unfriendly else "few-shot first (friendly)",
        "supports_n": supports_n,
        "http_requests": http_requests,
        "llm_calls": r.calls,
        "prompt_tokens": r.prompt_tokens,
        "rows_kept": r.rows,
        "traces_passed_verify": passed,
        "per_passed_trace": r.prompt_tokens / passed if passed else None,
        "server_prompt_tokens": _counter(delta, "prompt_tokens"),
        "cache_queries": queries,
        "cache_hits": hits,
        "hit_share": hits / queries if queries else None,
        "computed": computed,
        "computed_per_passed_trace": computed / passed if passed else None,
        "wall_s": round(wall, 1),
        "metrics_delta": delta,
    }


def cap_max_tokens(config: dict[str, Any], cap: int) -> None:
    """Cap every node's (and verifier's) ``sampling.max_tokens`` at ``cap``: shorter generations,
    the same prompt layout."""

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            sampling = node.get("sampling")
            if isinstance(sampling, dict):
                sampling["max_tokens"] = min(int(sampling.get("max_tokens", cap)), cap)
            elif "template" in node or "judge" in node:
                node["sampling"] = {"max_tokens": cap}
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(config["nodes"])


def measure_routing(
    recipe: Path,
    endpoints: list[str],
    routing: str,
    limit: int,
    work: Path,
    tag: str,
    max_tokens: int | None = None,
    passed_node: str = "verify",
) -> dict[str, Any]:
    """One run of ``recipe`` over ``endpoints`` with ``llm.routing: routing``, every server's
    prefix cache emptied first; the prefix-cache counters summed over the servers."""
    import medloom

    config = _load_recipe(recipe)
    config["endpoints"] = [
        {"name": f"vllm{i}", "base_url": e, "timeout_s": 900} for i, e in enumerate(endpoints)
    ]
    config.setdefault("llm", {})["routing"] = routing
    if max_tokens:
        cap_max_tokens(config, max_tokens)
    reset = all(reset_prefix_cache(e) for e in endpoints)
    before = scrape_all(endpoints)
    started = time.monotonic()
    result = medloom.run(config, runs_dir=work / f"runs-{tag}", limit=limit, no_cache=True)
    wall = time.monotonic() - started
    per_server = {e: _delta(m, before[e]) for e, m in scrape_all(endpoints).items()}
    queries = [_counter(d, "prefix_cache_queries") for d in per_server.values()]
    hits = [_counter(d, "prefix_cache_hits") for d in per_server.values()]
    r = result.report
    verify = r.nodes.get(passed_node)
    passed = verify.passed if verify else 0
    computed = sum(queries) - sum(hits)
    return {
        "routing": routing,
        "caches_reset": reset,
        "llm_calls": r.calls,
        "prompt_tokens": r.prompt_tokens,
        "rows_kept": r.rows,
        "traces_passed_verify": passed,
        "queries_per_server": [round(q) for q in queries],
        "cache_queries": sum(queries),
        "cache_hits": sum(hits),
        "hit_share": sum(hits) / sum(queries) if sum(queries) else None,
        "computed": computed,
        "computed_per_passed_trace": computed / passed if passed else None,
        "computed_per_call": computed / r.calls if r.calls else None,
        "wall_s": round(wall, 1),
    }


@contextlib.contextmanager
def serve(replicas: int) -> Iterator[list[str]]:
    """``replicas`` embedded-default vLLM CPU servers on free ports, in dev mode (so the prefix
    cache can be reset), stopped on exit; prints whether prefix caching is on from their logs."""
    from medloom.serving import ServerConfig, ServerGroup, prepare_default_model

    config = ServerConfig(
        model=str(prepare_default_model()), device="cpu", port=0, env={"VLLM_SERVER_DEV_MODE": "1"}
    )
    with ServerGroup.replicas(config, replicas) as group:
        for server in group.servers:
            log = server.log_path.read_text(errors="replace") if server.log_path else ""
            found = re.search(r"enable_prefix_caching=(\w+)", log)
            print(
                f"{server.base_url}: enable_prefix_caching={found[1] if found else '?'} ({server.log_path})"
            )
        yield group.endpoints


def routing_main(
    recipe: Path,
    endpoints: list[str],
    limit: int,
    rounds: int,
    max_tokens: int | None,
    passed_node: str,
) -> None:
    order = ["sticky", "least_outstanding"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            for routing in order if round_ % 2 == 0 else order[::-1]:
                tag = f"{routing}-{round_}"
                m = measure_routing(
                    recipe, endpoints, routing, limit, Path(tmp), tag, max_tokens, passed_node
                )
                m["round"] = round_ + 1
                m["load_average"] = round(os.getloadavg()[0], 1)
                results.append(m)
                print(json.dumps(m), flush=True)
    cap = f", max_tokens ≤ {max_tokens}" if max_tokens else ""
    print(f"{recipe.name}, {limit} items{cap}, {len(endpoints)} servers: {', '.join(endpoints)}")
    for m in results:
        print(
            f"round {m['round']} {m['routing']:17s} calls {m['llm_calls']:4d}  "
            f"prompt tokens {m['prompt_tokens']:7,d}  passed {m['traces_passed_verify']:3d}  "
            f"prefix-cache hits {_fmt(m['hit_share'], '.1%')} of {_fmt(m['cache_queries'])} "
            f"(per server {m['queries_per_server']})  computed {_fmt(m['computed'])}  "
            f"per passed trace {_fmt(m['computed_per_passed_trace'])}  per call "
            f"{_fmt(m['computed_per_call'])}  {m['wall_s']} s  load {m['load_average']}"
            + ("" if m["caches_reset"] else "  (caches NOT reset: start vLLM with VLLM_SERVER_DEV_MODE=1)")
        )


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument(
        "--endpoint", action="append", help="a vLLM server's base URL (…/v1); omit for the fake"
    )
    parser.add_argument("--unfriendly", action="store_true", help="also run the item-first layout")
    parser.add_argument("--routing", action="store_true", help="sticky vs least_outstanding routing")
    parser.add_argument("--serve", type=int, default=0, help="start N vLLM CPU servers for the run")
    parser.add_argument("--rounds", type=int, default=1, help="--routing: alternating rounds")
    parser.add_argument("--max-tokens", type=int, help="--routing: cap every node's max_tokens")
    parser.add_argument(
        "--passed-node", default="verify", help="--routing: the node whose passes count as verified"
    )
    args = parser.parse_args()
    recipe = args.recipe.resolve()
    if args.routing:
        with serve(args.serve) if args.serve else contextlib.nullcontext(args.endpoint) as endpoints:
            if not endpoints or len(endpoints) < 2:
                parser.error("--routing needs two or more --endpoint URLs or --serve N (N ≥ 2)")
            routing_main(recipe, endpoints, args.limit, args.rounds, args.max_tokens, args.passed_node)
        return
    if args.endpoint and len(args.endpoint) > 1:
        parser.error("several --endpoint URLs need --routing")
    if not args.endpoint:
        with tempfile.TemporaryDirectory() as tmp:
            rows = {flag: measure(recipe, flag, args.limit, Path(tmp)) for flag in (True, False)}
        print(f"{args.recipe}, {args.limit} items, fake MCQ student (tokens = words)")
        for flag, m in rows.items():
            label = "n samples in one request" if flag else "one request per sample "
            print(
                f"{label}  requests {m['requests']:4d}  prompt tokens {m['prompt_tokens']:7d}  "
                f"verified traces {m['verified']:3d}  prompt tokens/verified trace {m['per_trace']:7.0f}  "
                f"prefix-cacheable {m['cacheable_share']:.0%} → {m['uncached_per_trace']:6.0f} uncached/trace"
            )
        print(json.dumps(rows))
        print(f"load average {os.getloadavg()[0]:.1f}")
        return
    runs = [(False, True), (False, False)] + ([(True, True), (True, False)] if args.unfriendly else [])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for unfriendly, flag in runs:
            m = measure_server(recipe, args.endpoint[0], flag, args.limit, Path(tmp), unfriendly)
            m["load_average"] = round(os.getloadavg()[0], 1)
            results.append(m)
            print(json.dumps(m), flush=True)
    print(f"{args.recipe}, {args.limit} items, {args.endpoint[0]}")
    for m in results:
        print(
            f"{m['layout']:26s} supports_n={m['supports_n']!s:5s}  HTTP requests {m['http_requests']:4d}  "
            f"prompt tokens {m['prompt_tokens']:7,d}  rows {m['rows_kept']}  "
            f"passed verify {m['traces_passed_verify']}  per passed {_fmt(m['per_passed_trace'])}  "
            f"prefix-cache hits {_fmt(m['hit_share'], '.0%')} of {_fmt(m['cache_queries'])} → "
            f"computed {_fmt(m['computed'])}, per passed {_fmt(m['computed_per_passed_trace'])}  "
            f"{m['wall_s']} s  load {m['load_average']}"
        )


if __name__ == "__main__":
    main()
