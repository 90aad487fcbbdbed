"""Preparing the default model: cache location, idempotence, atomicity, errors, and the real thing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from medloom.serving import (
    DEFAULT_MODEL_NAME,
    ModelPreparationError,
    default_model_cache_dir,
    is_prepared,
    model_prep,
    prepare_default_model,
)


def _fake_build(build: Path, modules: dict[str, Any]) -> None:
    (build / "config.json").write_text("{}")
    (build / "tokenizer.json").write_text("{}")
    (build / model_prep.MARKER_FILE).write_text(json.dumps({"version": model_prep.PREPARATION_VERSION}))


@pytest.fixture
def fake_converters(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the heavy conversion with a stub that records the build directories it used."""
    builds: list[Path] = []

    def build(path: Path, modules: dict[str, Any]) -> None:
        builds.append(path)
        _fake_build(path, modules)

    monkeypatch.setattr(model_prep, "_import_converters", lambda: {})
    monkeypatch.setattr(model_prep, "_build", build)
    return builds


def test_cache_dir_follows_medloom_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDLOOM_HOME", str(tmp_path))
    assert default_model_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("MEDLOOM_HOME")
    assert default_model_cache_dir() == Path.home() / ".cache" / "medloom" / "models"


def test_prepares_once_then_reuses(tmp_path: Path, fake_converters: list[Path]) -> None:
    first = prepare_default_model(tmp_path)
    assert first == tmp_path / DEFAULT_MODEL_NAME
    assert is_prepared(first)
    assert prepare_default_model(tmp_path) == first
    assert len(fake_converters) == 1
    # nothing but the model directory and the lock file is left in the cache
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [DEFAULT_MODEL_NAME, f".{DEFAULT_MODEL_NAME}.lock"]
    )


def test_force_and_stale_versions_rebuild(tmp_path: Path, fake_converters: list[Path]) -> None:
    target = prepare_default_model(tmp_path)
    prepare_default_model(tmp_path, force=True)
    assert len(fake_converters) == 2
    (target / model_prep.MARKER_FILE).write_text(json.dumps({"version": -1}))
    assert not is_prepared(target)
    prepare_default_model(tmp_path)
    assert len(fake_converters) == 3 and is_prepared(target)


def test_partial_directory_is_replaced(tmp_path: Path, fake_converters: list[Path]) -> None:
    target = tmp_path / DEFAULT_MODEL_NAME
    target.mkdir()
    (target / "model.safetensors").write_text("half-written")
    prepare_default_model(tmp_path)
    assert is_prepared(target)
    assert not (target / "model.safetensors").exists()


def test_failed_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(build: Path, modules: dict[str, Any]) -> None:
        (build / "config.json").write_text("{}")
        raise ModelPreparationError("conversion failed")

    monkeypatch.setattr(model_prep, "_import_converters", lambda: {})
    monkeypatch.setattr(model_prep, "_build", broken)
    with pytest.raises(ModelPreparationError, match="conversion failed"):
        prepare_default_model(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f".{DEFAULT_MODEL_NAME}.lock"]


def test_missing_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = model_prep.importlib.import_module

    def fake_import(name: str, package: str | None = None) -> Any:
        if name == model_prep.GGUF_PACKAGE:
            raise ImportError(f"No module named '{name}'")
        return real_import(name, package)

    monkeypatch.setattr(model_prep.importlib, "import_module", fake_import)
    with pytest.raises(ModelPreparationError, match=r"medloom\[local\]") as info:
        prepare_default_model(tmp_path)
    assert model_prep.GGUF_PACKAGE in str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / DEFAULT_MODEL_NAME).exists()


def _render(**context: Any) -> str:
    # the way transformers and vLLM render chat templates
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
    )
    return env.from_string(model_prep.chat_template()).render(bos_token="<bos>", **context)


def test_chat_template_renders_gemma_turns() -> None:
    text = _render(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi "},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "Why?"}]},
        ],
        add_generation_prompt=True,
    )
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nWhy?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert text.count("<bos>") == 1


def test_chat_template_without_generation_prompt() -> None:
    text = _render(messages=[{"role": "user", "content": "Q"}], add_generation_prompt=False)
    assert text == "<bos><start_of_turn>user\nQ<end_of_turn>\n"


@pytest.mark.slow
def test_real_preparation_makes_a_servable_directory(prepared_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    assert is_prepared(prepared_model_dir)
    config = json.loads((prepared_model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"].startswith("gemma3")
    assert list(prepared_model_dir.glob("*.safetensors"))

    tokenizer: Any = AutoTokenizer.from_pretrained(str(prepared_model_dir), local_files_only=True)
    bos = tokenizer.bos_token_id
    ids = tokenizer("Question: what causes scurvy?")["input_ids"]
    assert ids[0] == bos and ids.count(bos) == 1

    assert tokenizer.chat_template
    chat = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=True,
        add_generation_prompt=True,
    )
    chat_ids = list(chat["input_ids"] if hasattr(chat, "keys") else chat)
    assert chat_ids[0] == bos and chat_ids.count(bos) == 1
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered.endswith("<start_of_turn>model\n")

    generation = json.loads((prepared_model_dir / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") in generation["eos_token_id"]
