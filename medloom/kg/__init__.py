"""Knowledge graphs: loaders (Hetionet, PrimeKG, triples), lookup, path samplers, verbalisation."""

from medloom.kg.loaders import LoadReport, RowProblem, load_text
from medloom.kg.lookup import EntityIndex, Match, normalise_name
from medloom.kg.model import Edge, Entity, KnowledgeGraph
from medloom.kg.spec import KGSpec
from medloom.kg.store import DEMO_KG, LoadedKG, load_kg

__all__ = [
    "DEMO_KG",
    "Edge",
    "Entity",
    "EntityIndex",
    "KGSpec",
    "KnowledgeGraph",
    "LoadReport",
    "LoadedKG",
    "Match",
    "RowProblem",
    "load_kg",
    "load_text",
    "normalise_name",
]
