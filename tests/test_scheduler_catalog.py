"""The GPU catalogue: coverage of the GPU classes EGS must know, label resolution, capability
queries, price overrides, and rejection of bad entries with the path of the bad field.

Label strings are those NVIDIA GPU Feature Discovery and the ROCm node labeller write; their exact
values are data in gpus.yaml, so these tests check that every listed value resolves (and the
suffixes around it are stripped) rather than restating them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from scheduler.catalog import DEFAULT_CATALOG, Catalog, CatalogError, GpuModel

REQUIRED = (
    "T4",
    "L4",
    "A10G",
    "L40S",
    "A100-40GB",
    "A100-80GB",
    "H100-80GB",
    "H100-NVL-94GB",
    "H200-141GB",
    "B200",
    "RTX-4090",
    "RTX-6000-Ada",
    "MI210",
    "MI250X",
    "MI300X",
    "MI325X",
    "V100-16GB",
    "V100-32GB",
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def product_label(gpu: GpuModel, product: str) -> dict[str, str]:
    key = "nvidia.com/gpu.product" if gpu.vendor == "nvidia" else "amd.com/gpu.product-name"
    return {key: product}


def test_catalogue_covers_the_required_gpu_classes(catalog: Catalog) -> None:
    assert set(REQUIRED) <= {g.name for g in catalog}
    assert len(catalog) >= 17


def test_every_product_label_resolves_to_its_class(catalog: Catalog) -> None:
    for gpu in catalog:
        for product in gpu.products:
            assert catalog.for_node_labels(product_label(gpu, product)) is gpu, product


def test_time_slicing_and_mig_suffixes_are_stripped(catalog: Catalog) -> None:
    a100 = catalog.get("A100-80GB")
    for product in (
        "NVIDIA-A100-SXM4-80GB-SHARED",
        "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb",
        "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb-SHARED",
        "NVIDIA-A100-SXM4-80GB-MIG-INVALID",
    ):
        assert catalog.for_node_labels({"nvidia.com/gpu.product": product}) is a100, product


def test_mixed_strategy_mig_product_labels_name_the_parent(catalog: Catalog) -> None:
    labels = {"nvidia.com/mig-3g.40gb.product": "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb"}
    assert catalog.for_node_labels(labels) is catalog.get("H100-80GB")


def test_amd_count_style_and_device_id_labels_resolve(catalog: Catalog) -> None:
    mi300x = catalog.get("MI300X")
    assert catalog.for_node_labels({"beta.amd.com/gpu.product-name.AMD_Instinct_MI300X_OAM": "8"}) is mi300x
    assert catalog.for_node_labels({"amd.com/gpu.device-id": "74a1", "amd.com/gpu.family": "AI"}) is mi300x
    assert catalog.for_node_labels({"beta.amd.com/gpu.device-id.74a5": "8"}) is catalog.get("MI325X")


def test_unknown_missing_or_mixed_labels_name_no_class(catalog: Catalog) -> None:
    assert catalog.for_node_labels({"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3060"}) is None
    assert catalog.for_node_labels({"kubernetes.io/hostname": "cpu-0"}) is None
    assert catalog.for_node_labels({"amd.com/gpu.family": "AI"}) is None
    two = {
        "beta.amd.com/gpu.product-name.AMD_Instinct_MI210": "4",
        "beta.amd.com/gpu.product-name.AMD_Instinct_MI300X": "4",
    }
    assert catalog.for_node_labels(two) is None


def test_fp8_follows_compute_capability_and_gfx(catalog: Catalog) -> None:
    fp8 = {g.name for g in catalog if g.fp8}
    expected = {g.name for g in catalog if g.vendor == "nvidia" and g.compute_capability in ("8.9", "9.0", "10.0")}
    expected |= {"MI300X", "MI325X"}
    assert fp8 == expected
    assert {"L4", "L40S", "RTX-4090", "H100-80GB", "B200"} <= fp8
    assert not {"A100-80GB", "T4", "MI210", "MI250X"} & fp8


def test_precision_support_follows_the_hardware_floors(catalog: Catalog) -> None:
    assert not catalog.get("T4").supports("bf16")
    assert catalog.get("T4").supports("int4")
    assert not catalog.get("V100-16GB").supports("int4")
    assert catalog.get("A100-40GB").supports("bf16")
    assert catalog.get("MI210").supports("bf16")
    with pytest.raises(CatalogError, match="unknown precision 'fp4'"):
        catalog.get("T4").supports("fp4")


def test_meets_compares_compute_capability_numerically(catalog: Catalog) -> None:
    assert catalog.get("B200").meets(min_cc="9.0")  # "10.0" < "9.0" as strings
    assert not catalog.get("H100-80GB").meets(min_cc="10.0")
    assert catalog.get("H100-80GB").meets(min_gfx="gfx942")  # an AMD floor asks nothing of NVIDIA
    assert catalog.get("MI300X").meets(min_gfx="gfx90a")
    assert not catalog.get("MI210").meets(min_gfx="gfx942")
    assert catalog.get("MI210").meets(min_cc="9.0")


def test_mig_profiles_where_the_hardware_has_them(catalog: Catalog) -> None:
    with_mig = {g.name for g in catalog if g.mig_profiles}
    assert {"A100-40GB", "A100-80GB", "H100-80GB", "H100-NVL-94GB", "H200-141GB", "B200"} <= with_mig
    assert not {"T4", "L4", "L40S", "MI300X"} & with_mig
    profile = catalog.get("A100-80GB").mig_profile("1g.10gb")
    assert profile is not None
    assert (profile.memory_mib, profile.compute_slices, profile.max_instances) == (9728, 1, 7)
    for gpu in catalog:
        for p in gpu.mig_profiles:
            assert p.memory_mib * p.max_instances <= gpu.vram_mib, (gpu.name, p.name)


def test_peer_links_and_domain_sizes(catalog: Catalog) -> None:
    assert catalog.get("H100-80GB").peer_links
    assert catalog.get("MI300X").interconnect == "xgmi"
    assert not catalog.get("L4").peer_links
    assert catalog.get("H100-NVL-94GB").link_domain_size == 2


def test_prices_can_be_overridden(catalog: Catalog) -> None:
    priced = Catalog.load(prices={"H100-80GB": 2.5})
    assert priced.get("H100-80GB").price_per_hour == 2.5
    assert priced.get("T4").price_per_hour == catalog.get("T4").price_per_hour


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"H101": 1.0}, "prices.H101: no GPU class 'H101'"),
        ({"T4": -1.0}, "prices.T4: a non-negative number"),
    ],
)
def test_bad_price_overrides_are_rejected(prices: dict[str, float], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        Catalog.load(prices=prices)


def test_get_names_the_known_classes_when_the_name_is_unknown(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match=r"no GPU class 'H300'.*T4"):
        catalog.get("H300")


def shipped() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_CATALOG.read_text())
    return raw


def with_first(change: dict[str, Any], drop: str | None = None, index: int = 0) -> dict[str, Any]:
    raw = copy.deepcopy(shipped())
    raw["gpus"][index].update(change)
    if drop:
        del raw["gpus"][index][drop]
    return raw


AMD = next(i for i, g in enumerate(shipped()["gpus"]) if g["vendor"] == "amd")
A100 = next(i for i, g in enumerate(shipped()["gpus"]) if g["name"] == "A100-80GB")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (with_first({"tdp_w": 300}), r"^gpus\[0\]\.tdp_w: unknown key"),
        (with_first({"vendor": "intel"}), r"^gpus\[0\]\.vendor: 'intel' is not one of"),
        (with_first({"vram_mib": 0}), r"^gpus\[0\]\.vram_mib: 0 is less than or equal to the minimum of 0"),
        (with_first({"vram_mib": "16GB"}), r"^gpus\[0\]\.vram_mib: '16GB' is not of type 'integer'"),
        (with_first({"compute_capability": "nine"}), r"^gpus\[0\]\.compute_capability: 'nine' is not a compute"),
        (with_first({}, drop="compute_capability"), r"^gpus\[0\]\.compute_capability: required"),
        (with_first({"gfx": "gfx942"}), r"^gpus\[0\]\.gfx: does not apply to nvidia GPUs"),
        (with_first({}, drop="gfx", index=AMD), rf"^gpus\[{AMD}\]\.gfx: required"),
        (with_first({"interconnect": {"kind": "infiniband", "bandwidth_gbs": 50}}), r"^gpus\[0\]\.interconnect\.kind"),
        (with_first({"products": []}), r"^gpus\[0\]\.products: \[\] should be non-empty"),
        (with_first({"name": "T4"}), r"^gpus\[\d+\]\.name: 'T4' is already the name"),
        (with_first({"products": ["Tesla-T4"]}), r"^gpus\[\d+\]: 'Tesla-T4' already names"),
        (
            with_first({"mig": [{"profile": "1g.10", "max_instances": 7}]}, index=A100),
            rf"^gpus\[{A100}\]\.mig\[0\]\.profile: '1g.10' is not a MIG profile",
        ),
        (
            with_first({"mig": [{"profile": "7g.80gb", "max_instances": 1, "memory_mib": 90000}]}, index=A100),
            rf"^gpus\[{A100}\]\.mig\[0\]\.memory_mib: 90000 MiB is more than",
        ),
        ({"gpus": []}, r"^gpus: \[\] should be non-empty"),
        ([], r"^the GPU catalogue: \[\] is not of type 'object'"),
    ],
)
def test_a_bad_catalogue_entry_is_rejected_with_its_path(raw: Any, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        Catalog.parse(raw)


def test_an_unreadable_catalogue_file_is_rejected(tmp_path: Any) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpus: [")
    with pytest.raises(CatalogError, match="not valid YAML"):
        Catalog.load(bad)


GPUS = tuple(Catalog.load())


@given(st.sampled_from(["fp16", "bf16", "fp8", "int8", "int4"]), st.sampled_from(GPUS), st.sampled_from(GPUS))
def test_a_gpu_at_least_as_new_as_another_supports_what_it_supports(
    precision: str, gpu: GpuModel, other: GpuModel
) -> None:
    if gpu.vendor != other.vendor or not gpu.meets(other.compute_capability, other.gfx):
        return
    assert gpu.supports(precision) or not other.supports(precision)
