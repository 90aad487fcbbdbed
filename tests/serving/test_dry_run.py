"""`medloom serve --dry-run` on a pretend GPU node: a fake `nvidia-smi` first on PATH and a fake
vLLM install (CUDA or CPU build) for a bare interpreter. Nothing is started."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medloom.serving import DEFAULT_MODEL_NAME, default_model_dir
from tests.helpers import medloom_cli

EIGHT_GPUS = "".join(
    f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i}0000000-1111-2222-3333-444444444444)\n" for i in range(8)
)
MIG_LAYOUT = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000000)
  MIG 3g.20gb     Device  0: (UUID: MIG-11111111-aaaa-5555-8888-000000000000)
  MIG 3g.20gb     Device  1: (UUID: MIG-22222222-bbbb-5555-8888-000000000000)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbbbbbb-0000-0000-0000-000000000000)
"""
CPU_ONLY = ("--no-enable-chunked-prefill", "float32")

Install = Callable[[str], dict[str, str]]


@pytest.fixture
def node(tmp_path: Path, bare_python: str, vllm_install: Install, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``node(*args, gpus=..., build=..., env=...)`` → (exit code, plan or stderr) of a dry run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)

    def run(
        *args: str, gpus: str | None = EIGHT_GPUS, build: str = "cuda", env: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        smi = bin_dir / "nvidia-smi"
        smi.unlink(missing_ok=True)
        if gpus is not None:
            (bin_dir / "gpus.txt").write_text(gpus)
            smi.write_text(f"#!/bin/sh\ncat {bin_dir / 'gpus.txt'}\n")
            smi.chmod(0o755)
        full_env = {
            **vllm_install(build),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HF_TOKEN": "hf_not_a_real_token",
            **(env or {}),
        }
        result = medloom_cli("serve", "--dry-run", "--python", bare_python, *args, env=full_env)
        if result.returncode != 0:
            return result.returncode, result.stderr
        return 0, json.loads(result.stdout)

    return run


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_eight_replicas_on_eight_gpus(node: Any) -> None:
    code, plan = node("org/model-70b", "--gpu", "--replicas", "8")
    assert code == 0, plan
    replicas = plan["replicas"]
    assert [r["devices"] for r in replicas] == [[str(i)] for i in range(8)]
    assert [r["port"] for r in replicas] == list(range(8000, 8008))
    for replica in replicas:
        command, env = replica["command"], replica["env"]
        assert command[1:5] == ["-m", "vllm.entrypoints.cli.main", "serve", "org/model-70b"]
        assert not any(flag in command for flag in CPU_ONLY) and "--max-model-len" not in command
        assert not any(key.startswith("VLLM_CPU_") for key in env)
        assert env["CUDA_VISIBLE_DEVICES"] == replica["devices"][0]
        assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert env["HF_TOKEN"] == "***"  # passed through, never printed
    assert plan["device"] == "gpu" and plan["vllm"]["distribution"] == "vllm"


def test_inherited_cuda_visible_devices_are_respected(node: Any) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}
    code, plan = node("m", "--gpu", "--replicas", "4", env=env)
    assert code == 0, plan
    assert [r["devices"] for r in plan["replicas"]] == [["4"], ["5"], ["6"], ["7"]]
    code, message = node("m", "--gpu", "--replicas", "5", env=env)
    assert code == 1
    assert (
        "5 replicas × 1 device each = 5 devices, but 4 are visible (CUDA_VISIBLE_DEVICES=4,5,6,7)" in message
    )


def test_tensor_parallel_groups_get_contiguous_slices(node: Any) -> None:
    code, plan = node("m", "--gpu", "--replicas", "2", "--", "--tensor-parallel-size", "4")
    assert code == 0, plan
    assert [r["env"]["CUDA_VISIBLE_DEVICES"] for r in plan["replicas"]] == ["0,1,2,3", "4,5,6,7"]
    code, message = node("m", "--gpu", "--replicas", "3", "--", "-tp", "4")
    assert code == 1
    assert "3 replicas × 4 devices each = 12 devices, but 8 are visible (nvidia-smi -L)" in message
    code, plan = node("m", "--gpu", "--replicas", "2", "--gpus-per-replica", "4")
    assert code == 0, plan
    assert _flag(plan["replicas"][1]["command"], "--tensor-parallel-size") == "4"
    assert plan["replicas"][1]["devices"] == ["4", "5", "6", "7"]
    code, message = node("m", "--gpu", "--gpus-per-replica", "2", "--", "--tensor-parallel-size=4")
    assert code == 1 and "TP 4 = 4 devices per replica" in message


def test_mig_slices_are_assigned_by_uuid(node: Any) -> None:
    code, plan = node("m", "--gpu", "--replicas", "3", gpus=MIG_LAYOUT)
    assert code == 0, plan
    assert [r["env"]["CUDA_VISIBLE_DEVICES"] for r in plan["replicas"]] == [
        "MIG-11111111-aaaa-5555-8888-000000000000",
        "MIG-22222222-bbbb-5555-8888-000000000000",
        "1",
    ]
    code, message = node("m", "--gpu", "--", "-tp", "2", gpus=MIG_LAYOUT)
    assert code == 1 and "one MIG slice" in message


def test_gpu_without_a_device_or_with_the_cpu_build_fails_clearly(node: Any) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a real nvidia-smi")
    code, message = node("m", "--gpu", gpus=None)
    assert code == 1
    assert "no GPU is visible (nvidia-smi is not on PATH)" in message and "CUDA_VISIBLE_DEVICES" in message
    code, message = node("m", "--gpu", env={"CUDA_VISIBLE_DEVICES": ""})
    assert code == 1 and "no GPU is visible (CUDA_VISIBLE_DEVICES=)" in message
    code, message = node("m", "--gpu", build="cpu")
    assert code == 1
    assert "the installed vLLM is the CPU build (vllm-cpu 0.32.0" in message and "medloom[gpu]" in message


def test_auto_asks_the_installed_vllm_for_its_platform(node: Any) -> None:
    # no nvidia-smi: the old code assumed CPU and sent CPU flags to a CUDA build
    code, plan = node("m", gpus=None)
    assert code == 0, plan
    command = plan["replicas"][0]["command"]
    assert plan["device"] == "gpu" and not any(flag in command for flag in CPU_ONLY)
    code, plan = node("m", build="cpu")
    assert code == 0, plan
    assert plan["device"] == "cpu" and "--no-enable-chunked-prefill" in plan["replicas"][0]["command"]
    assert plan["vllm"]["entry_point"] == "api_server"  # vllm-cpu's `vllm serve` cannot run


def test_vllm_flags_after_the_separator_keep_the_default_model(node: Any) -> None:
    code, plan = node("--gpu", "--", "--max-model-len", "4096")
    assert code == 0, plan
    assert plan["model"] == str(default_model_dir()) and plan["served_model_name"] == DEFAULT_MODEL_NAME
    assert plan["replicas"][0]["command"][-2:] == ["--max-model-len", "4096"]


def test_flags_medloom_owns_are_lifted_out_of_the_vllm_args(node: Any) -> None:
    args = ["--", "--served-model-name", "med", "--port", "9100", "--api-key", "sk-test", "--seed", "3"]
    code, plan = node("org/m", "--gpu", "--replicas", "2", *args)
    assert code == 0, plan
    first, second = plan["replicas"]
    assert (first["port"], second["port"]) == (9100, 9101)
    for replica in (first, second):
        command = replica["command"]
        assert command.count("--served-model-name") == 1 and _flag(command, "--served-model-name") == "med"
        assert "--api-key" not in command and "sk-test" not in json.dumps(replica)
        assert replica["env"]["VLLM_API_KEY"] == "***" and command[-2:] == ["--seed", "3"]
    code, message = node("org/m", "--gpu", "--port", "8000", "--", "--port", "9000")
    assert code == 1 and "disagree" in message


def test_tools_adds_the_tool_call_flags_once_with_the_parser_of_the_model_family(node: Any) -> None:
    code, plan = node("Qwen/Qwen3-8B", "--gpu", "--replicas", "2", "--tools", "auto")
    assert code == 0, plan
    for replica in plan["replicas"]:
        command = replica["command"]
        assert command.count("--enable-auto-tool-choice") == 1
        assert _flag(command, "--tool-call-parser") == "hermes"
    code, plan = node("meta-llama/Llama-3.1-8B-Instruct", "--gpu", "--tools", "auto")
    assert code == 0 and _flag(plan["replicas"][0]["command"], "--tool-call-parser") == "llama3_json"
    # An explicit parser wins over the family; the same flags after `--` are not repeated.
    args = ["--tools", "mistral", "--", "--enable-auto-tool-choice", "--tool-call-parser", "mistral"]
    code, plan = node("org/model", "--gpu", *args)
    assert code == 0, plan
    command = plan["replicas"][0]["command"]
    assert command.count("--enable-auto-tool-choice") == 1 and command.count("--tool-call-parser") == 1
    code, plan = node("org/model", "--gpu")
    assert code == 0 and "--enable-auto-tool-choice" not in plan["replicas"][0]["command"]


def test_tools_refuses_an_unknown_family_and_a_conflicting_parser(node: Any) -> None:
    code, message = node("Qwen/Qwen3-8B", "--gpu", "--tools", "auto", "--", "--tool-call-parser", "mistral")
    assert code == 1 and "disagree" in message
    code, message = node("--cpu", "--tools", "auto", build="cpu")  # the embedded base model
    assert code == 1
    assert "--tools auto does not know the tool-call format" in message and "mode: completion" in message
