"""The three loaders, malformed-row reporting, and entity lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from medloom.core.errors import ConfigError, DataError
from medloom.kg import KGSpec, load_kg, load_text
from medloom.kg.loaders import detect_format

TRIPLES = (
    "head\trelation\ttail\thead_type\ttail_type\thead_synonyms\n"
    "Metformin\ttreats\tType 2 diabetes\tCompound\tDisease\tGlucophage|dimethylbiguanide\n"
    "Type 2 diabetes\tassociates\tTCF7L2\tDisease\tGene\t\n"
    "broken row with too few fields\n"
    "Aspirin\t\tPain\tCompound\tDisease\t\n"
    "Aspirin\tpalliates\tPain\tCompound\tDisease\t\n"
)

PRIMEKG = (
    "relation,display_relation,x_id,x_type,x_name,x_source,y_id,y_type,y_name,y_source\n"
    "indication,indication,DB00331,drug,Metformin,DrugBank,5000,disease,type 2 diabetes mellitus,MONDO\n"
    "protein_protein,ppi,7157,gene/protein,TP53,NCBI,4193,gene/protein,MDM2,NCBI\n"
    "indication,indication,DB00331,drug,,DrugBank,5001,disease,obesity,MONDO\n"
    "oops,only,three\n"
    "indication,,DB00945,drug,Aspirin,DrugBank,5002,disease,pain,MONDO\n"
)


def test_triples_loader_reads_types_synonyms_and_reports_bad_rows_by_line() -> None:
    kg, report = load_text(TRIPLES, "triples")
    assert kg.node_count == 5 and kg.edge_count == 3
    metformin = kg.node_by_id("Metformin", "Compound")
    diabetes = kg.node_by_id("Type 2 diabetes", "Disease")
    assert metformin is not None and diabetes is not None
    assert kg.relations_between(metformin, diabetes) == ["treats"]
    assert kg.synonyms[metformin] == ["Glucophage", "dimethylbiguanide"]
    assert (report.rows, report.skipped) == (5, 2)
    assert [(p.line, p.reason) for p in report.problems] == [
        (4, "1 fields where the header has 6"),
        (5, "empty relation"),
    ]
    assert report.problems[0].file.endswith("kg.tsv")


def test_primekg_loader_uses_ids_types_and_display_relation() -> None:
    kg, report = load_text(PRIMEKG, "primekg")
    assert kg.edge_count == 3
    tp53 = kg.node_by_id("7157", "gene/protein")
    mdm2 = kg.node_by_id("4193")
    assert tp53 is not None and mdm2 is not None and kg.names[mdm2] == "MDM2"
    assert kg.relations_between(tp53, mdm2) == ["ppi"]
    aspirin = kg.node_by_id("DB00945", "drug")
    assert aspirin is not None
    # display_relation empty → falls back to the relation column
    assert kg.relations_between(aspirin, kg.node_by_id("5002", "disease") or -1) == ["indication"]
    assert report.skipped == 2
    assert [p.line for p in report.problems] == [4, 5]
    assert "empty x_name" in report.problems[0].reason and "fields" in report.problems[1].reason


def test_hetionet_loader_reads_node_tables_and_metaedge_files(tmp_path: Path) -> None:
    (tmp_path / "edges").mkdir()
    (tmp_path / "nodes.tsv").write_text(
        "id\tname\tkind\nCompound::DB1\tDrugOne\tCompound\nDisease::DOID:1\tIllness\tDisease\n"
        "Gene::7\tGENE7\tGene\nbroken\n"
    )
    (tmp_path / "metaedges.tsv").write_text(
        "id\tsource\ttarget\tverb\tmetaedge\nCtD\tCompound\tDisease\tTreats\tCompound_Treats_Disease\n"
    )
    (tmp_path / "edges" / "Compound_Treats_Disease.tsv").write_text(
        ":START_ID(Compound)\t:END_ID(Disease)\nDB1\tDOID:1\nDB1\tDOID:404\n"
    )
    (tmp_path / "edges" / "Disease_Associates_Gene.tsv").write_text(
        ":START_ID(Disease)\t:END_ID(Gene)\nDOID:1\t7\n\t7\n"
    )
    assert detect_format(tmp_path) == "hetionet"
    loaded = load_kg(KGSpec(source=str(tmp_path)))
    kg, report = loaded.kg, loaded.report
    drug, illness, gene = (kg.node_by_id(i) for i in ("DB1", "DOID:1", "7"))
    assert drug is not None and illness is not None and gene is not None
    assert kg.type_of(drug) == "Compound" and kg.names[illness] == "Illness"
    assert kg.relations_between(drug, illness) == ["treats"]
    assert kg.relations_between(illness, gene) == ["associates"]
    where = {(Path(p.file).name, p.line) for p in report.problems}
    assert where == {("nodes.tsv", 5), ("Compound_Treats_Disease.tsv", 3), ("Disease_Associates_Gene.tsv", 3)}
    assert any("unknown Disease id 'DOID:404'" in p.reason for p in report.problems)


def test_missing_columns_and_paths_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing column"):
        load_text("a\tb\n1\t2\n", "triples")
    with pytest.raises(ConfigError, match="not found") as err:
        load_kg(KGSpec(source=str(tmp_path / "nope.tsv")))
    assert err.value.key == "resources.kg.source"


def test_lookup_exact_synonym_case_insensitive_and_fuzzy() -> None:
    kg, _ = load_text(TRIPLES, "triples")
    loaded_index = __import__("medloom.kg.lookup", fromlist=["EntityIndex"]).EntityIndex(kg)
    metformin = kg.node_by_id("Metformin", "Compound")
    assert loaded_index.lookup("METFORMIN") == [metformin]
    assert loaded_index.lookup("glucophage") == [metformin]
    assert loaded_index.lookup("metformin", type_name="Disease") == []
    (best, *_) = loaded_index.fuzzy("type-2 diabetis")
    assert kg.names[best.node] == "Type 2 diabetes" and 80 <= best.score < 100
    assert loaded_index.fuzzy("zzzz qqqq") == []


def test_demo_kg_loads_offline_with_typed_nodes() -> None:
    loaded = load_kg()
    kg = loaded.kg
    assert loaded.report.skipped == 0
    assert {"Compound", "Disease", "Anatomy", "Gene"} <= set(kg.types)
    assert 2000 <= kg.edge_count <= 20000


def test_fuzzy_does_not_match_a_much_shorter_substring() -> None:
    index = load_kg().index
    assert all(index.kg.names[m.node] != "lung" for m in index.fuzzy("cancer of the lung"))
