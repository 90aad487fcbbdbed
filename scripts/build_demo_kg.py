"""Build medloom's bundled demo knowledge graph from a Hetionet v1.0 subset (CC0 1.0).

    python scripts/build_demo_kg.py /work/shared/data/hetionet medloom/kg/data/demo_kg.tsv

Keeps every disease, the compounds that treat or palliate one, their treats / palliates /
resembles edges, a few anatomy sites and associated genes per disease, and the binding edges
between the kept compounds and genes: a few thousand edges, enough for varied 2–4 hop chains.
The output is a triples TSV (head_id, head, head_type, relation, tail_id, tail, tail_type),
sorted, so rebuilding gives the same file.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

ANATOMY_PER_DISEASE = 5
GENES_PER_DISEASE = 6


def read_nodes(directory: Path) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {}
    with (directory / "nodes.tsv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            kind, _, raw = row["id"].partition("::")
            names[(kind, raw)] = row["name"]
    return names


def read_edges(directory: Path, stem: str) -> list[tuple[str, str]]:
    with (directory / "edges" / f"{stem}.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    return sorted((a, b) for a, b, *_ in rows)


def build(directory: Path) -> list[tuple[str, str, str, str, str, str, str]]:
    names = read_nodes(directory)
    triples: set[tuple[str, str, str, str, str]] = set()  # (head_kind, head, relation, tail_kind, tail)

    compounds: set[str] = set()
    for stem, relation in (
        ("Compound_Treats_Disease", "treats"),
        ("Compound_Palliates_Disease", "palliates"),
    ):
        for c, d in read_edges(directory, stem):
            compounds.add(c)
            triples.add(("Compound", c, relation, "Disease", d))
    for a, b in read_edges(directory, "Disease_Resembles_Disease"):
        triples.add(("Disease", a, "resembles", "Disease", b))
    for a, b in read_edges(directory, "Compound_Resembles_Compund"):
        if a in compounds and b in compounds:
            triples.add(("Compound", a, "resembles", "Compound", b))

    per_disease: dict[str, int] = defaultdict(int)
    for d, a in read_edges(directory, "Disease_Localizes_Anatomy"):
        if per_disease[d] < ANATOMY_PER_DISEASE:
            per_disease[d] += 1
            triples.add(("Disease", d, "localizes", "Anatomy", a))

    bound_genes = {g for c, g in read_edges(directory, "Compound_Binds_Gene") if c in compounds}
    genes: set[str] = set()
    per_disease.clear()
    for d, g in read_edges(directory, "Disease_Associates_Gene"):
        # Prefer genes a kept compound binds: they connect drugs and diseases through genes.
        if g in bound_genes and per_disease[d] < GENES_PER_DISEASE:
            per_disease[d] += 1
            genes.add(g)
            triples.add(("Disease", d, "associates", "Gene", g))
    for c, g in read_edges(directory, "Compound_Binds_Gene"):
        if c in compounds and g in genes:
            triples.add(("Compound", c, "binds", "Gene", g))

    rows = []
    for hk, h, rel, tk, t in sorted(triples):
        if (hk, h) in names and (tk, t) in names:
            rows.append((h, names[(hk, h)], hk, rel, t, names[(tk, t)], tk))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hetionet", type=Path, help="directory with nodes.tsv and edges/ (Hetionet layout)")
    parser.add_argument("out", type=Path, nargs="?", default=Path("medloom/kg/data/demo_kg.tsv"))
    args = parser.parse_args()
    rows = build(args.hetionet)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["head_id", "head", "head_type", "relation", "tail_id", "tail", "tail_type"])
        writer.writerows(rows)
    by_relation: dict[str, int] = defaultdict(int)
    for row in rows:
        by_relation[row[3]] += 1
    print(f"{len(rows)} edges → {args.out}: {dict(sorted(by_relation.items()))}")


if __name__ == "__main__":
    main()
