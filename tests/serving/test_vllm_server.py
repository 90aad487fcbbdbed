"""The vLLM launcher: configuration, lifecycle against a fake vLLM, and a real CPU server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from medloom.serving import (
    DEFAULT_MODEL_NAME,
    LayoutError,
    ServerConfig,
    ServerExitedError,
    ServerGroup,
    ServerStartError,
    VLLMServer,
)
from tests.vllm_fixtures import require_local_llm

MakeConfig = Callable[..., ServerConfig]


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _pids(make: MakeConfig) -> list[int]:
    return [int(line) for line in make.pidfile.read_text().split()]  # type: ignore[attr-defined]


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            return []
        time.sleep(0.2)
    return [pid for pid in pids if _alive(pid)]


# -- configuration ---------------------------------------------------------------------------


def test_cpu_defaults_and_command(tmp_path: Path) -> None:
    cfg = ServerConfig(model=str(tmp_path), device="cpu").resolved()
    assert cfg.port > 0
    assert cfg.served_model_name == tmp_path.name
    assert (cfg.kv_cache_gib, cfg.max_model_len) == (4, 2048)
    server = VLLMServer(
        ServerConfig(model=str(tmp_path), device="cpu", port=8123, extra_args=["--seed", "1"])
    )
    cmd = server.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    for flag, value in [("--port", "8123"), ("--host", "127.0.0.1"), ("--max-model-len", "2048")]:
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[-2:] == ["--seed", "1"]
    assert "--no-enable-chunked-prefill" in cmd  # seeded requests crash vLLM 0.32's CPU engine otherwise
    assert "--dtype" not in cmd or cmd[cmd.index("--dtype") + 1] in ("float32", "bfloat16")
    env = server.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1"  # a local directory needs no hub
    assert server.base_url == "http://127.0.0.1:8123/v1"


def test_hub_names_gpu_and_env_overrides() -> None:
    server = VLLMServer(
        ServerConfig(
            model="org/model", device="gpu", devices=("1",), host="0.0.0.0", port=9000, env={"X": "1"}
        )
    )
    assert server.model_name == "org/model"
    assert "--max-model-len" not in server.command()
    assert "--no-enable-chunked-prefill" not in server.command()
    env = server.environment()
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["X"] == "1"
    assert "VLLM_CPU_KVCACHE_SPACE" not in env
    assert server.base_url == "http://127.0.0.1:9000/v1"


def test_replicas_get_ports_and_devices(bare_python: str, vllm_install: Callable[[str], object]) -> None:
    vllm_install("none")
    config = ServerConfig(model="m", device="gpu", port=8000, devices=("0", "1"), python=bare_python)
    gpus = ServerGroup.replicas(config, 2)
    assert [s.config.port for s in gpus.servers] == [8000, 8001]
    assert [s.config.devices for s in gpus.servers] == [("0",), ("1",)]
    cpus = ServerGroup.replicas(ServerConfig(model="m", device="cpu"), 2)
    ports = [s.config.port for s in cpus.servers]
    assert len(set(ports)) == 2 and all(p > 0 for p in ports)
    assert cpus.endpoints == [f"http://127.0.0.1:{p}/v1" for p in ports]
    with pytest.raises(LayoutError):
        ServerGroup.replicas(ServerConfig(model="m"), 0)


# -- lifecycle against a fake vLLM -----------------------------------------------------------


def test_start_ready_stop_leaves_no_process(fake_vllm: MakeConfig) -> None:
    with VLLMServer(fake_vllm("ok", served_model_name="tiny")) as server:
        assert server.is_alive()
        models = httpx.get(server.base_url + "/models").json()
        assert models["data"][0]["id"] == "tiny"
        pids = _pids(fake_vllm)
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    assert not server.is_alive()
    assert _wait_gone(pids, 5) == []


def test_exit_before_ready_reports_code_and_log_tail(fake_vllm: MakeConfig) -> None:
    server = VLLMServer(fake_vllm("crash"))
    server.start()
    started = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        server.wait_ready()
    assert time.monotonic() - started < 15
    err = info.value
    assert err.exit_code == 3
    assert "exited with code 3" in str(err)
    assert "the fake engine failed to load the model" in str(err)
    assert "loading line 59" in err.log_tail and "loading line 5\n" not in err.log_tail  # a tail, not the log
    assert str(err.log_path) in str(err)
    assert _wait_gone(_pids(fake_vllm), 5) == []  # the orphaned "engine" went too


def test_ready_timeout_stops_the_server(fake_vllm: MakeConfig) -> None:
    server = VLLMServer(fake_vllm("hang"))
    server.start()
    with pytest.raises(ServerStartError, match="not ready after"):
        server.wait_ready(timeout=3)
    assert not server.is_alive()
    assert _wait_gone(_pids(fake_vllm), 5) == []


def test_stop_escalates_to_sigkill(fake_vllm: MakeConfig) -> None:
    server = VLLMServer(fake_vllm("stubborn"))
    server.start()
    server.wait_ready()
    started = time.monotonic()
    code = server.stop(timeout=1.0)
    assert code == -signal.SIGKILL
    assert time.monotonic() - started < 10
    assert _wait_gone(_pids(fake_vllm), 5) == []


def test_group_detects_a_dead_replica_and_stops_all(fake_vllm: MakeConfig) -> None:
    with ServerGroup([fake_vllm("ok"), fake_vllm("ok", log_path=None)]) as group:
        assert len(group.endpoints) == 2 and len(set(group.endpoints)) == 2
        group.check_alive()
        os.kill(group.servers[0].pid or 0, signal.SIGKILL)
        time.sleep(0.5)
        with pytest.raises(ServerExitedError, match="exited with code -9"):
            group.check_alive()
    assert _wait_gone(_pids(fake_vllm), 5) == []


def test_group_start_failure_stops_the_others(fake_vllm: MakeConfig) -> None:
    group = ServerGroup([fake_vllm("ok"), fake_vllm("crash")])
    with pytest.raises(ServerStartError, match="code 3"):
        group.start()
    assert not any(s.is_alive() for s in group.servers)
    assert _wait_gone(_pids(fake_vllm), 5) == []


@pytest.mark.parametrize("mode", ["ok", "stubborn", "setsid"])
def test_server_dies_with_its_parent(fake_vllm: MakeConfig, tmp_path: Path, mode: str) -> None:
    """SIGKILL the process that launched the server: PDEATHSIG and the watchdog take the group down."""
    cfg = fake_vllm(mode)
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from medloom.serving import server as vs
        vs.vllm_importable = lambda python=None: True
        server = vs.VLLMServer(vs.ServerConfig(model={mode!r}, device="cpu", env={cfg.env!r},
                                               log_path=Path({str(tmp_path / "parent.log")!r})))
        server.start()
        server.wait_ready(timeout=30)
        print("READY", flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "READY"
        pids = _pids(fake_vllm)
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        if mode == "setsid":
            time.sleep(3)  # the watchdog looks for descendants every 2 s (a real vLLM starts for minutes)
        parent.kill()
        parent.wait()
        # "ok" goes at once; "stubborn" ignores SIGTERM until the watchdog's grace (10 s) ends;
        # "setsid"'s engine left the group: the watchdog's snapshot of descendants finds it
        assert _wait_gone(pids, 20) == []
    finally:
        parent.kill()


def test_readiness_with_pass_through_name_and_api_key(fake_vllm: MakeConfig) -> None:
    """`-- --served-model-name X --api-key K` used to make the probe fail (wrong name, 401)."""
    extra = ["--served-model-name", "tiny", "--api-key", "sk-local", "--seed", "1"]
    with VLLMServer(fake_vllm("ok", extra_args=extra)) as server:
        assert server.model_name == "tiny"
        assert "sk-local" not in " ".join(server.command())  # the key goes by environment
        assert httpx.get(server.base_url + "/models").status_code == 401
        headers = {"Authorization": "Bearer sk-local"}
        assert httpx.get(server.base_url + "/models", headers=headers).json()["data"][0]["id"] == "tiny"
    assert _wait_gone(_pids(fake_vllm), 5) == []


def test_readiness_uses_an_inherited_vllm_api_key(
    fake_vllm: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-env")
    with VLLMServer(fake_vllm("ok")) as server:
        assert server.config.api_key == "sk-env"


def test_gpu_waits_past_the_timeout_while_the_log_grows(fake_vllm: MakeConfig) -> None:
    server = VLLMServer(fake_vllm("slow", device="gpu", ready_timeout_s=2.0))
    with server:
        assert server.ready_after_s is not None and server.ready_after_s > 4
    impatient = VLLMServer(fake_vllm("slow", device="gpu", ready_timeout_s=2.0, wait_while_logging=False))
    impatient.start()
    with pytest.raises(ServerStartError, match=r"--ready-timeout SECONDS, or MEDLOOM_VLLM_READY_TIMEOUT"):
        impatient.wait_ready()


def test_gpu_gives_up_once_the_log_is_silent(fake_vllm: MakeConfig) -> None:
    server = VLLMServer(fake_vllm("hang", device="gpu", ready_timeout_s=1.0, log_silence_s=2.0))
    server.start()
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="its log was silent for the last"):
        server.wait_ready()
    assert time.monotonic() - started < 10
    assert _wait_gone(_pids(fake_vllm), 5) == []


def test_serve_entry_point_and_ready_timeout_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLOOM_VLLM_READY_TIMEOUT", "5400")
    config = ServerConfig(model="org/m", device="gpu", entry_point="serve")
    assert config.ready_timeout_s == 5400
    command = VLLMServer(config).command()
    assert command[1:5] == ["-m", "vllm.entrypoints.cli.main", "serve", "org/m"] and "--model" not in command


# -- a real vLLM server on CPU (the prepared Gemma 3 270M) -----------------------------------

FEW_SHOT = """Answer the medical question. Think step by step, then give the letter.

Question: Which vitamin deficiency causes scurvy?
Options: A) Vitamin A B) Vitamin B12 C) Vitamin C D) Vitamin D
Answer: Step 1: Scurvy presents with bleeding gums and poor wound healing. Step 2: These come from \
defective collagen synthesis, which needs ascorbic acid. The answer is C.

Question: Which organ produces insulin?
Options: A) Liver B) Pancreas C) Kidney D) Spleen
Answer: Step 1: Insulin is made by beta cells. Step 2: Beta cells sit in the islets of Langerhans of \
the pancreas. The answer is B.

Question: A 25-year-old woman has fatigue, pallor and a low ferritin. Which anemia is most likely?
Options: A) Iron deficiency anemia B) Sickle cell anemia C) Aplastic anemia D) Hemolytic anemia
Answer: Step 1:"""


@pytest.mark.vllm
@pytest.mark.slow
def test_real_completion_few_shot(vllm_server: VLLMServer) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=vllm_server.base_url, api_key="EMPTY")
    response = client.completions.create(
        model=DEFAULT_MODEL_NAME, prompt=FEW_SHOT, max_tokens=48, temperature=0, stop=["\n\nQuestion:"]
    )
    text = response.choices[0].text
    assert text.strip(), "empty completion"
    assert "The The The" not in text  # what Gemma writes without <bos>
    assert response.usage is not None and response.usage.completion_tokens > 0


@pytest.mark.vllm
@pytest.mark.slow
def test_real_chat_completion(vllm_server: VLLMServer) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=vllm_server.base_url, api_key="EMPTY")
    response = client.chat.completions.create(
        model=DEFAULT_MODEL_NAME,
        messages=[
            {"role": "system", "content": "You are a concise medical tutor."},
            {"role": "user", "content": "Name one symptom of iron deficiency anemia."},
        ],
        max_tokens=32,
        temperature=0,
    )
    content = response.choices[0].message.content
    assert content and content.strip()


@pytest.mark.vllm
@pytest.mark.slow
def test_real_server_adds_exactly_one_bos(vllm_server: VLLMServer) -> None:
    root = vllm_server.base_url.removesuffix("/v1")
    plain = httpx.post(f"{root}/tokenize", json={"model": DEFAULT_MODEL_NAME, "prompt": "Hello"}).json()
    chat = httpx.post(
        f"{root}/tokenize",
        json={
            "model": DEFAULT_MODEL_NAME,
            "messages": [{"role": "user", "content": "Hello"}],
            "add_generation_prompt": True,
        },
    ).json()
    bos = 2
    for tokens in (plain["tokens"], chat["tokens"]):
        assert tokens[0] == bos and tokens.count(bos) == 1, tokens[:5]


@pytest.mark.vllm
@pytest.mark.slow
def test_real_bad_model_fails_promptly_with_log_tail(tmp_path: Path) -> None:
    require_local_llm()
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    server = VLLMServer(
        ServerConfig(model=str(not_a_model), log_path=tmp_path / "bad.log", ready_timeout_s=300)
    )
    server.start()
    started = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        server.wait_ready()
    assert time.monotonic() - started < 180
    assert info.value.exit_code not in (None, 0)
    assert info.value.log_tail and info.value.log_tail.splitlines()[-1] in str(info.value)
    assert not server.is_alive()


@pytest.mark.vllm
@pytest.mark.slow
def test_real_stop_leaves_no_process(prepared_model_dir: Path, tmp_path: Path) -> None:
    import psutil

    server = VLLMServer(
        ServerConfig(
            model=str(prepared_model_dir),
            served_model_name=DEFAULT_MODEL_NAME,
            kv_cache_gib=1,
            extra_args=["--enforce-eager"],  # skips torch.compile: ready sooner
            log_path=tmp_path / "stop.log",
            ready_timeout_s=900,
        )
    )
    server.start()
    pid = server.pid
    assert pid is not None
    try:
        server.wait_ready()
        children = psutil.Process(pid).children(recursive=True)
        assert children, "vLLM should have spawned its engine process"
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 30
    assert _wait_gone([pid, *(child.pid for child in children)], 5) == []


def test_serve_command_runs_until_sigterm(fake_vllm: MakeConfig) -> None:
    """``run_serve_command`` prints the endpoints, serves until SIGTERM, stops cleanly, exits 0."""
    cfg = fake_vllm("ok")
    script = textwrap.dedent(
        """
        import sys
        from medloom.serving import command, server
        server.vllm_importable = lambda python=None: True
        sys.exit(command.run_serve_command("ok", "cpu", 0, 2, []))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **cfg.env},
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or "Ctrl-C" not in lines[-1]:
            line = proc.stdout.readline()
            assert line, f"run_serve_command ended early: {lines}"
            lines.append(line)
        endpoints = [line.strip() for line in lines if line.startswith("  http://")]
        assert len(endpoints) == 2
        for url in endpoints:
            assert httpx.get(url + "/models").json()["data"][0]["id"] == "ok"
        pids = _pids(fake_vllm)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert _wait_gone(pids, 5) == []
    finally:
        proc.kill()
