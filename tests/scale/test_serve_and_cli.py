"""Issue 19: `medloom serve --ray` (replicas as Ray actors, checked with a fake server command),
`medloom run --backend ray` from the command line, and Ray staying an optional, lazy extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from medloom.core.errors import ConfigError
from medloom.serving.server import ServerConfig
from medloom.testing.fake import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE, medloom_cli, only_run, read_report

FAKE_SERVER = [sys.executable, "-m", "medloom.testing.fake", "--host", "{host}", "--port", "{port}"]


def test_import_medloom_does_not_import_ray() -> None:
    code = "import sys, medloom, medloom.scale.driver, medloom.scale.serve; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from medloom.scale import require_ray
    from medloom.scale.driver import ShardOptions, run_sharded

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'medloom\[ray\]'"):
        require_ray()
    with pytest.raises(ConfigError, match=r"medloom\[ray\]"):
        run_sharded(RECIPE, options=ShardOptions(shards=2), endpoints=["http://127.0.0.1:9/v1"])


def test_shards_need_the_ray_backend(tmp_path: Path) -> None:
    done = medloom_cli("run", str(RECIPE), "--shards", "2", "--endpoint", "http://127.0.0.1:9/v1")
    assert done.returncode == 2 and "--shards needs --backend ray" in done.stderr


def test_serve_ray_dry_run_plans_one_actor_per_tensor_parallel_group() -> None:
    done = medloom_cli(
        "serve",
        "/models/m",
        "--ray",
        "--gpu",
        "--replicas",
        "2",
        "--dry-run",
        "--",
        "--tensor-parallel-size",
        "4",
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert [r["resources"]["num_gpus"] for r in plan["replicas"]] == [4, 4]
    command = plan["replicas"][0]["command"]
    assert command[command.index("--port") + 1] == "{port}" and "/models/m" in command


def test_ray_replicas_serve_a_sharded_run_and_stop_with_it(
    ray_cluster: dict[str, Any], tmp_path: Path
) -> None:
    """Two fake-server replicas as Ray actors: healthy URLs go to a sharded run (each shard pinned
    to its replica's node); after the run they are stopped and no longer answer."""
    pytest.importorskip("ray")
    from medloom.scale.driver import ShardOptions, run_sharded
    from medloom.scale.serve import RayServers, RayServeSpec

    spec = RayServeSpec(
        config=ServerConfig(model="fake-model", ready_timeout_s=60),
        replicas=2,
        cpus_per_replica=0.1,
        command=FAKE_SERVER,
    )
    with RayServers(spec) as servers:
        assert len(set(servers.urls)) == 2
        for url in servers.urls:
            assert httpx.get(f"{url}/models", timeout=5).status_code == 200
        result = run_sharded(
            RECIPE,
            options=ShardOptions(shards=2, pins=servers.pins, shard_cpus=0.1),
            endpoints=servers.urls,
            limit=4,
            concurrency=2,
            runs_dir=tmp_path,
        )
        urls = servers.urls
    assert result.report.items == 4
    for url in urls:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/models", timeout=2)


def test_the_cli_runs_and_resumes_a_sharded_run(ray_cluster: dict[str, Any], tmp_path: Path) -> None:
    """`medloom run --backend ray --shards 2` on the cluster ($RAY_ADDRESS); a resume with another
    shard count is refused (exit 1, the message names the count to use)."""
    env = {"RAY_ADDRESS": ray_cluster["address"]}
    with FakeOpenAIServer(McqStudent()) as server:
        args = [
            "run",
            str(RECIPE),
            "--endpoint",
            server.base_url,
            "--runs-dir",
            str(tmp_path),
            "--limit",
            "4",
        ]
        done = medloom_cli(*args, "--backend", "ray", "--shards", "2", env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "shard 0 done" in done.stderr and "shard 1 done" in done.stderr
        run_dir = only_run(tmp_path)
        assert read_report(run_dir)["items"] == 4
        again = [
            "run",
            "--resume",
            run_dir.name,
            "--runs-dir",
            str(tmp_path),
            "--backend",
            "ray",
            "--shards",
            "3",
        ]
        refused = medloom_cli(*again, env=env)
        assert refused.returncode == 1 and "resume with --shards 2" in refused.stderr
        stats = medloom_cli("stats", str(run_dir), "--json")
        assert stats.returncode == 0 and json.loads(stats.stdout)["report"]["items"] == 4
