"""Knowledge-graph load benchmark: a synthetic PrimeKG-sized graph (4M edges by default).

    python bench/kg_load.py                       # 4,000,000 edges, ~130k nodes
    python bench/kg_load.py --edges 200000        # a quick run

Writes a PrimeKG-style CSV (x_id, x_type, x_name, display_relation, y_id, y_type, y_name) with a
skewed degree distribution, loads it in a fresh child process (so peak RSS is the loader's own),
and reports load time, peak RSS, graph size, and how many rare-entity chains per second the
sampler makes on it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TYPES = [
    ("drug", 8_000, "DB"),
    ("disease", 17_000, "MONDO:"),
    ("gene/protein", 27_000, "G"),
    ("anatomy", 14_000, "UBERON:"),
    ("biological_process", 28_000, "GO:"),
    ("effect/phenotype", 15_000, "HP:"),
    ("exposure", 800, "EXP"),
    ("pathway", 2_500, "R-HSA-"),
    ("molecular_function", 11_000, "MF"),
    ("cellular_component", 4_000, "CC"),
]
RELATIONS = [
    ("drug", "disease", "indication"),
    ("drug", "disease", "contraindication"),
    ("drug", "gene/protein", "target"),
    ("drug", "effect/phenotype", "side effect"),
    ("drug", "drug", "synergistic interaction"),
    ("disease", "gene/protein", "associated with"),
    ("disease", "effect/phenotype", "phenotype present"),
    ("gene/protein", "gene/protein", "ppi"),
    ("gene/protein", "anatomy", "expression present"),
    ("gene/protein", "biological_process", "interacts with"),
    ("gene/protein", "molecular_function", "interacts with"),
    ("gene/protein", "cellular_component", "interacts with"),
    ("gene/protein", "pathway", "interacts with"),
    ("exposure", "disease", "linked to"),
    ("disease", "disease", "parent-child"),
]


def write_graph(path: Path, edges: int, seed: int) -> None:
    rng = random.Random(seed)
    counts = {t: n for t, n, _ in TYPES}
    prefix = {t: p for t, _, p in TYPES}
    weights = [8, 2, 6, 10, 10, 6, 6, 30, 12, 6, 4, 3, 3, 0.5, 1]
    with path.open("w", newline="", encoding="utf-8") as handle:
        w = csv.writer(handle)
        w.writerow(["relation", "display_relation", "x_id", "x_type", "x_name", "y_id", "y_type", "y_name"])
        seen: set[int] = set()
        while len(seen) < edges:
            r = rng.choices(range(len(RELATIONS)), weights=weights)[0]
            xt, yt, rel = RELATIONS[r]
            # skewed heads (a few hubs, many rare entities, as in real KGs), uniform tails
            x = int(counts[xt] * rng.random() ** 4)
            y = rng.randrange(counts[yt])
            key = (r * 100_000 + x) * 100_000 + y
            if key in seen:  # one edge per (head, relation, tail), as the loader stores them
                continue
            seen.add(key)
            w.writerow(
                [
                    rel.replace(" ", "_"),
                    rel,
                    f"{prefix[xt]}{x}",
                    xt,
                    f"{xt} {x}",
                    f"{prefix[yt]}{y}",
                    yt,
                    f"{yt} {y}",
                ]
            )


def child(path: str, chains: int) -> None:
    """Load ``path`` and sample chains; print one JSON line of figures."""
    from medloom.kg import KGSpec, load_kg
    from medloom.kg.samplers import ChainConstraints, iter_chains

    t0 = time.perf_counter()
    loaded = load_kg(KGSpec(source=path, format="primekg"))
    load_s = time.perf_counter() - t0
    rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    kg = loaded.kg
    t1 = time.perf_counter()
    made = 0
    for _ in iter_chains(kg, ChainConstraints(min_hops=3, max_hops=5, subgraph_nodes=8), seed=0):
        made += 1
        if made >= chains:
            break
    chain_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    index = loaded.index
    hits = sum(1 for i in range(0, 2000) if index.lookup(f"disease {i}"))
    fuzzy = index.fuzzy("disese 12345", limit=3)
    lookup_s = time.perf_counter() - t2
    print(
        json.dumps(
            {
                "nodes": kg.node_count,
                "edges": kg.edge_count,
                "skipped_rows": loaded.report.skipped,
                "load_s": round(load_s, 1),
                "peak_rss_gib_after_load": round(rss_load, 2),
                "chains": made,
                "chain_s": round(chain_s, 2),
                "chains_per_s": round(made / chain_s, 1) if chain_s else None,
                "index_and_2000_lookups_s": round(lookup_s, 2),
                "lookup_hits": hits,
                "fuzzy_top": fuzzy[0].name if fuzzy else None,
                "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edges", type=int, default=4_000_000)
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.chains)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic_primekg.csv"
        t0 = time.perf_counter()
        write_graph(path, args.edges, args.seed)
        size = path.stat().st_size / 1024**2
        print(f"wrote {args.edges:,} edges ({size:.0f} MiB) in {time.perf_counter() - t0:.1f} s", flush=True)
        repo = str(Path(__file__).resolve().parents[1])  # this checkout's medloom, not an installed one
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--chains", str(args.chains)],
            capture_output=True,
            text=True,
            env=env,
        )
        if out.returncode != 0:
            sys.exit(f"the loading process failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    for key, value in figures.items():
        print(f"{key:>28}: {value}")


if __name__ == "__main__":
    main()
