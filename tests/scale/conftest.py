"""One local Ray cluster for the whole test session: a head and a second node, each with one CPU and
a custom resource naming the endpoint it "hosts" (``ep_a``, ``ep_b``), as on a GPU cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")  # the machine's vLLM servers are not ours


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[dict[str, Any]]:
    """The cluster, connected; yields the node id that holds each custom resource, and its address."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"ep_a": 1},
            "include_dashboard": False,
        },
    )
    cluster.add_node(num_cpus=1, resources={"ep_b": 1})
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    nodes = {
        name: node["NodeID"]
        for node in ray.nodes()
        for name in ("ep_a", "ep_b")
        if node["Alive"] and name in node["Resources"]
    }
    try:
        yield {**nodes, "address": cluster.address}
    finally:
        ray.shutdown()
        cluster.shutdown()
