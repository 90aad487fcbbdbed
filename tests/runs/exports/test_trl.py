"""Each training export, written by `medloom export`, read back with `datasets` and checked with TRL's
own dataset utilities on the embedded model's tokenizer (its minimal Gemma chat template)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import datasets
import pytest

from tests.helpers import medloom_cli
from tests.vllm_fixtures import REQUIRE_ENV

SYSTEM = "You are a careful clinician. Reason step by step, one numbered step a line, then state the answer."


@pytest.fixture(scope="module")
def tokenizer(prepared_model_dir: Path) -> Any:
    if importlib.util.find_spec("trl") is None:
        reason = "trl is not installed (it comes with the local stack: bash scripts/install_local.sh)"
        if os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0", "false", "no"):
            pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
        pytest.skip(reason)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(prepared_model_dir))


def export(run: Path, out: Path, fmt: str, *flags: str) -> datasets.Dataset:
    result = medloom_cli("export", str(run), "--format", fmt, "--out", str(out), *flags)
    assert result.returncode == 0, result.stderr
    ds = datasets.Dataset.from_parquet(str(out / "data.parquet"), cache_dir=str(out / ".cache"))
    assert isinstance(ds, datasets.Dataset) and len(ds) > 0
    assert f"exported {len(ds)} rows ({fmt})" in result.stdout
    assert all(ds["trace_id"])
    card = (out / "README.md").read_text()
    assert f"## Training export: `{fmt}`" in card and "data_files: data.parquet" in card
    return ds


def test_sft_messages_render_with_the_chat_template(refine_run: Path, tmp_path: Path, tokenizer: Any) -> None:
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    ds = export(refine_run, tmp_path / "sft", "sft", "--reasoning", "think")
    row = ds[0]
    assert is_conversational(row)
    text = maybe_apply_chat_template(row, tokenizer)["text"]
    reply = row["messages"][-1]["content"]
    assert text == f"<bos><start_of_turn>user\n{SYSTEM}\n\n{row['messages'][1]['content']}<end_of_turn>\n" + (
        f"<start_of_turn>model\n{reply}<end_of_turn>\n"
    )
    assert reply.startswith("<think>\nStep 1:") and "</think>\n\nAnswer: " in reply


def test_sft_prompt_completion_splits_at_the_generation_prompt(
    refine_run: Path, tmp_path: Path, tokenizer: Any
) -> None:
    from trl.data_utils import apply_chat_template, is_conversational

    ds = export(refine_run, tmp_path / "sftpc", "sft", "--sft-style", "prompt_completion", "--system", "")
    row = ds[0]
    assert is_conversational(row)
    out = apply_chat_template(row, tokenizer)
    assert out["prompt"] == f"<bos><start_of_turn>user\n{row['prompt'][0]['content']}<end_of_turn>\n" + (
        "<start_of_turn>model\n"
    )
    assert out["completion"] == f"{row['completion'][0]['content']}<end_of_turn>\n"


def test_dpo_rows_render_as_a_preference_example(refine_run: Path, tmp_path: Path, tokenizer: Any) -> None:
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    ds = export(refine_run, tmp_path / "dpo", "dpo", "--pairs-per-item", "1")
    for row in ds:
        assert is_conversational(row)
        out = maybe_apply_chat_template(row, tokenizer)
        assert out["prompt"].startswith("<bos><start_of_turn>user\n" + SYSTEM)
        assert out["prompt"].endswith("<start_of_turn>model\n")
        assert out["chosen"] == row["chosen"][0]["content"] + "<end_of_turn>\n"
        assert out["rejected"] == row["rejected"][0]["content"] + "<end_of_turn>\n"
        assert out["chosen"] != out["rejected"] and row["rejected_reason"]
    assert len(set(ds["item_id"])) == len(ds)  # one pair per item


def test_standard_dpo_is_not_conversational_and_tokenizes(
    refine_run: Path, tmp_path: Path, tokenizer: Any
) -> None:
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    ds = export(refine_run, tmp_path / "dpos", "dpo", "--layout", "standard")
    row = ds[0]
    assert not is_conversational(row)
    assert maybe_apply_chat_template(row, tokenizer) == row  # plain strings pass through unchanged
    assert tokenizer(row["prompt"] + row["chosen"])["input_ids"][0] == tokenizer.bos_token_id


def test_kto_rows_keep_their_label_through_the_template(
    refine_run: Path, tmp_path: Path, tokenizer: Any
) -> None:
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    ds = export(refine_run, tmp_path / "kto", "kto")
    assert set(ds["label"]) == {True, False}
    for row in ds:
        assert is_conversational(row)
        out = maybe_apply_chat_template(row, tokenizer)
        assert out["label"] is row["label"]
        assert out["completion"] == row["completion"][0]["content"] + "<end_of_turn>\n"


def test_prm_rows_are_stepwise_supervision(refine_run: Path, tmp_path: Path, tokenizer: Any) -> None:
    from trl.data_utils import is_conversational

    ds = export(refine_run, tmp_path / "prm", "prm")
    assert ds.features["labels"].feature.dtype == "bool"
    for row in ds:
        assert not is_conversational(row)  # TRL's stepwise layout is standard (plain strings)
        assert len(row["completions"]) == len(row["labels"]) > 0
        # what a PRM trainer tokenizes: the prompt, then each step followed by a separator
        ids = tokenizer(row["prompt"])["input_ids"]
        steps = [tokenizer(s + "\n", add_special_tokens=False)["input_ids"] for s in row["completions"]]
        assert ids[0] == tokenizer.bos_token_id and all(steps)
