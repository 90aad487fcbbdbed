"""Loading recipes: YAML errors and validation errors name the file and the dotted key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from medloom.core.errors import ConfigError
from medloom.graphs.loader import apply_override, load_raw, load_spec, validate_spec
from medloom.graphs.spec import GraphSpec
from medloom.nodes.generator import GeneratorNode
from medloom.nodes.refiner import RefinerNode

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "mcq_refine.yaml"


def recipe() -> dict[str, Any]:
    return yaml.safe_load(RECIPE.read_text())


def write(tmp_path: Path, data: dict[str, Any] | str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def load_error(path: Path, overrides: list[str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_spec(path, overrides)
    return err.value


def test_the_demo_recipe_loads() -> None:
    spec = load_spec(RECIPE)
    assert isinstance(spec, GraphSpec)
    assert spec.name == "mcq_refine"
    gen = spec.nodes["generate"]
    assert isinstance(gen, GeneratorNode)
    assert (gen.models, gen.samples, gen.temperatures, gen.sampling.max_tokens) == (
        ["gen"],
        2,
        [0.7, 1.0],
        192,
    )
    refine = spec.nodes["refine"]
    assert isinstance(refine, RefinerNode) and refine.max_rounds == 2
    assert [(e.source, e.target, e.when) for e in spec.edges] == [
        ("generate", "verify", "always"),
        ("verify", "judge", "passed"),
        ("verify", "refine", "failed"),
        ("refine", "verify", "always"),
        ("judge", "select", "always"),
    ]
    assert spec.dataset.fields.id == "id"
    assert spec.output.passthrough == ["topic"]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    data = recipe()
    data["concurency"] = 4
    path = write(tmp_path, data)
    err = load_error(path)
    assert err.file == str(path)
    assert err.key == "concurency"
    assert str(err).startswith(f"{path}: key 'concurency': unknown key")


def test_unknown_node_key(tmp_path: Path) -> None:
    data = recipe()
    data["nodes"]["generate"]["sampels"] = 3
    err = load_error(write(tmp_path, data))
    assert err.key == "nodes.generate.sampels"
    assert "key 'nodes.generate.sampels': unknown key" in str(err)


def test_unknown_nested_sampling_key(tmp_path: Path) -> None:
    data = recipe()
    data["nodes"]["refine"]["sampling"]["temprature"] = 0.1
    err = load_error(write(tmp_path, data))
    assert err.key == "nodes.refine.sampling.temprature"


@pytest.mark.parametrize("when", ["passes", "score >> 3", "score >= high"])
def test_bad_edge_condition(tmp_path: Path, when: str) -> None:
    data = recipe()
    data["edges"][1]["when"] = when
    err = load_error(write(tmp_path, data))
    assert err.key == "edges.1.when"
    assert f"unknown condition '{when}'" in str(err)


def test_bad_edge_arrow(tmp_path: Path) -> None:
    data = recipe()
    data["edges"][0] = "generate => verify"
    err = load_error(write(tmp_path, data))
    assert err.key == "edges.0"
    assert "must look like 'a -> b'" in str(err)


def test_missing_required_node_key(tmp_path: Path) -> None:
    data = recipe()
    del data["nodes"]["refine"]["model"]
    path = write(tmp_path, data)
    err = load_error(path)
    assert err.key == "nodes.refine.model"
    assert str(err) == f"{path}: key 'nodes.refine.model': required key is missing"


def test_missing_required_top_level_key(tmp_path: Path) -> None:
    data = recipe()
    del data["nodes"]
    err = load_error(write(tmp_path, data))
    assert err.key == "nodes"
    assert "required key is missing" in str(err)


def test_items_need_a_dataset_or_a_source(tmp_path: Path) -> None:
    data = recipe()
    del data["dataset"]
    err = load_error(write(tmp_path, data))
    assert err.key == "dataset"
    assert "give exactly one of 'dataset'" in str(err)


def test_unknown_node_type(tmp_path: Path) -> None:
    data = recipe()
    data["nodes"]["select"]["type"] = "selektor"
    err = load_error(write(tmp_path, data))
    assert err.key == "nodes.select"
    assert "selektor" in str(err)


def test_error_count_is_reported(tmp_path: Path) -> None:
    data = recipe()
    data["nodes"]["generate"]["sampels"] = 3
    data["nodes"]["generate"]["samples"] = 0
    err = load_error(write(tmp_path, data))
    assert "(and 1 more problem)" in str(err)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    text = "name: broken\nnodes:\n  generate:\n    type: generator\n   models: [gen]\n"
    path = write(tmp_path, text)
    err = load_error(path)
    assert err.file == str(path)
    assert "invalid YAML at line 5" in str(err)
    assert str(err).startswith(str(path))


def test_missing_file(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nope.yaml")
    assert "config file not found" in str(err) and "nope.yaml" in str(err)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_raw(write(tmp_path, text))


def test_validate_spec_without_a_file() -> None:
    data = recipe()
    data["nodes"]["generate"]["sampels"] = 3
    with pytest.raises(ConfigError) as err:
        validate_spec(data)
    assert err.value.file is None
    assert str(err.value).startswith("key 'nodes.generate.sampels'")


# -- overrides ------------------------------------------------------------------------------


def test_override_nested_scalars() -> None:
    data = recipe()
    apply_override(data, "nodes.generate.samples=4")
    apply_override(data, "nodes.refine.sampling.temperature=0.25")
    apply_override(data, "name=renamed")
    apply_override(data, "nodes.refine.share_reasons=false")
    assert data["nodes"]["generate"]["samples"] == 4
    assert data["nodes"]["refine"]["sampling"]["temperature"] == 0.25
    assert data["name"] == "renamed"
    assert data["nodes"]["refine"]["share_reasons"] is False


def test_override_creates_missing_mappings() -> None:
    data = recipe()
    apply_override(data, "llm.retry.max_attempts=3")
    assert data["llm"] == {"retry": {"max_attempts": 3}}


def test_override_inside_an_empty_mapping() -> None:
    data = {"output": None}
    apply_override(data, "output.passthrough=[topic, source]")
    assert data == {"output": {"passthrough": ["topic", "source"]}}


def test_override_yaml_values() -> None:
    data: dict[str, Any] = {}
    apply_override(data, "a=[0.2, 0.5]")
    apply_override(data, "b={x: 1, y: [true]}")
    apply_override(data, "c=null")
    apply_override(data, "d=")
    apply_override(data, "e='007'")
    apply_override(data, "f=http://host:8000/v1")
    apply_override(data, " g = 3 ")
    assert data == {
        "a": [0.2, 0.5],
        "b": {"x": 1, "y": [True]},
        "c": None,
        "d": "",
        "e": "007",
        "f": "http://host:8000/v1",
        "g": 3,
    }


def test_override_list_elements() -> None:
    data = recipe()
    apply_override(data, "edges.1.when=score >= 3")
    apply_override(data, "nodes.verify.verifiers.0.params.min_steps=2")
    apply_override(data, "nodes.generate.temperatures.1=0.9")
    assert data["edges"][1]["when"] == "score >= 3"
    assert data["nodes"]["verify"]["verifiers"][0]["params"]["min_steps"] == 2
    assert data["nodes"]["generate"]["temperatures"] == [0.7, 0.9]


@pytest.mark.parametrize(
    ("assignment", "match"),
    [
        ("nodes.generate.samples", "must look like key.path=value"),
        ("=3", "empty key"),
        ("edges.9.when=passed", "list has no element 9"),
        ("edges.x.when=passed", "list has no element x"),
        ("nodes.generate.temperatures.5=1", "no list element 5"),
        ("name.first=x", "non-mapping"),
        ("nodes.generate.samples.x=1", "non-mapping"),
        ("a=[unclosed", "cannot parse value"),
    ],
)
def test_override_errors(assignment: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        apply_override(recipe(), assignment, file="r.yaml")
    assert err.value.file == "r.yaml"


def test_load_spec_applies_overrides_before_validating(tmp_path: Path) -> None:
    path = write(tmp_path, recipe())
    spec = load_spec(path, ["nodes.generate.samples=5", "edges.2.when=score < 3", "run.concurrency=2"])
    assert spec.nodes["generate"].samples == 5  # type: ignore[union-attr]
    assert spec.edges[2].when == "score < 3"
    assert spec.run.concurrency == 2
    err = load_error(path, ["nodes.generate.sampels=5"])
    assert err.key == "nodes.generate.sampels"
    err = load_error(path, ["run.concurrency=0"])
    assert err.key == "run.concurrency" and str(err).startswith(str(path))


def test_a_top_level_kg_block_is_read_as_resources_kg(tmp_path: Path) -> None:
    data = recipe()
    data["kg"] = {"source": "old.tsv", "format": "triples"}
    spec = load_spec(write(tmp_path, data))
    assert spec.resources.kg is not None
    assert (spec.resources.kg.source, spec.resources.kg.format) == ("old.tsv", "triples")
    assert "kg" not in spec.model_dump()


def test_set_kg_source_still_switches_the_resources_kg(tmp_path: Path) -> None:
    data = recipe()
    data["resources"] = {"kg": {"source": "demo", "format": "hetionet"}}
    spec = load_spec(write(tmp_path, data), ["kg.source=mine.csv"])
    assert spec.resources.kg is not None
    assert (spec.resources.kg.source, spec.resources.kg.format) == ("mine.csv", "hetionet")


def test_a_star_segment_sets_every_entry() -> None:
    data: dict[str, Any] = {
        "models": {"gen": {"mode": "completion"}, "judge": {"model": "j", "mode": "completion"}},
        "nodes": [{"sampling": {"n": 1}}, {"sampling": {"n": 2}}],
    }
    apply_override(data, "models.*.mode=chat")
    apply_override(data, "nodes.*.sampling.n=3")
    assert data["models"] == {"gen": {"mode": "chat"}, "judge": {"model": "j", "mode": "chat"}}
    assert [node["sampling"]["n"] for node in data["nodes"]] == [3, 3]
    apply_override(data, "models.gen.mode=completion")  # a later --set of one alias wins
    assert data["models"]["gen"]["mode"] == "completion"
    with pytest.raises(ConfigError, match="entries of a mapping or list"):
        apply_override({"run": {"concurrency": 2}}, "run.concurrency.*=1")
