"""A real Prometheus scrapes sim exporters; PromQL sees every contract metric with its labels.

Covers: every field of the catalogue on a node that supports it, identical label names for NVIDIA
and AMD, MIG instances and AMD partitions, topology, the info metric and the self-metrics, a lost GPU.
Does not cover the NVML/amdsmi reads themselves (see test_backend_contracts and the backend tests).
"""

from __future__ import annotations

import pytest

from exporter.exposition import GPU_LABELS, INSTANCE_LABELS
from exporter.fields import FIELDS
from tests.conftest import SimCluster

SELF_METRICS = (
    "egs_exporter_gpu_up",
    "egs_exporter_read_errors_total",
    "egs_exporter_gpus",
    "egs_exporter_driver_up",
    "egs_exporter_pod_attribution_up",
    "egs_exporter_collect_duration_seconds",
    "egs_exporter_collections_total",
    "egs_exporter_snapshot_age_seconds",
    "egs_exporter_info",
)


@pytest.mark.parametrize("field", [f.name for f in FIELDS])
def test_every_catalogue_field_reaches_prometheus_with_the_dcgm_labels(sim_cluster: SimCluster, field: str) -> None:
    series = sim_cluster.prometheus.wait_for(f'{field}{{Hostname="sim-h100-0"}}')
    assert len(series) == 8, f"{field}: expected one series per H100, got {len(series)}"
    for s in series:
        missing = set(GPU_LABELS) - set(s["metric"])
        assert not missing, f"{field} lacks labels {missing}"
        assert s["metric"]["vendor"] == "nvidia"


def test_amd_partitions_and_nvidia_mig_instances_carry_instance_labels(sim_cluster: SimCluster) -> None:
    prom = sim_cluster.prometheus
    amd = prom.wait_for('DCGM_FI_DEV_FB_USED{vendor="amd", GPU_I_PROFILE="CPX"}')
    assert len(amd) == 16
    mig = prom.wait_for('DCGM_FI_DEV_FB_USED{Hostname="sim-a100-mig-0", GPU_I_PROFILE!=""}')
    assert sorted({s["metric"]["GPU_I_PROFILE"] for s in mig}) == ["1g.10gb", "2g.20gb", "3g.40gb"]
    assert len(mig) == 12
    for s in amd + mig:
        assert set(GPU_LABELS) | set(INSTANCE_LABELS) <= set(s["metric"])


def test_both_vendors_use_the_same_label_names(sim_cluster: SimCluster) -> None:
    prom = sim_cluster.prometheus
    names = {}
    for vendor in ("nvidia", "amd"):
        series = prom.wait_for(f'DCGM_FI_DEV_GPU_UTIL{{vendor="{vendor}"}}')
        names[vendor] = {frozenset(s["metric"]) - {"instance", "job"} for s in series}
    assert names["nvidia"] == names["amd"]


def test_info_topology_and_self_metrics_are_exported(sim_cluster: SimCluster) -> None:
    prom = sim_cluster.prometheus
    info = prom.wait_for('egs_gpu_info{Hostname="sim-mi300x-cpx-0", GPU_I_ID=""}')
    assert {s["metric"]["arch"] for s in info} == {"gfx942"}
    assert {s["metric"]["vram_bytes"] for s in info} == {str(196592 * 1024 * 1024)}
    h100 = prom.wait_for('egs_gpu_info{Hostname="sim-h100-0"}')
    assert {s["metric"]["compute_capability"] for s in h100} == {"9.0"}
    links = prom.wait_for('egs_gpu_p2p_link{Hostname="sim-h100-0", link_type="nvlink"}')
    assert len(links) == 8 * 7
    assert prom.wait_for('egs_gpu_p2p_link{Hostname="sim-mi300x-cpx-0", link_type="xgmi"}')
    assert prom.wait_for('egs_gpu_p2p_link{Hostname="sim-l4-0", link_type="pcie"}')
    for name in SELF_METRICS:
        assert prom.wait_for(name), f"{name} missing"
    simulated = prom.query('egs_exporter_info{simulated="true", backend="sim"}')
    assert len(simulated) == len(sim_cluster.exporters)


def test_a_lost_gpu_is_down_while_the_others_keep_exporting(sim_cluster: SimCluster) -> None:
    prom = sim_cluster.prometheus
    down = prom.wait_for('egs_exporter_gpu_up{Hostname="sim-l4-0"} == 0')
    assert [s["metric"]["gpu"] for s in down] == ["2"]
    util = prom.wait_for('DCGM_FI_DEV_GPU_UTIL{Hostname="sim-l4-0"}')
    assert sorted(s["metric"]["gpu"] for s in util) == ["0", "1", "3"]
    assert prom.wait_for('egs_exporter_read_errors_total{reason="lost", gpu="2"} > 0')


def test_a_field_the_device_lacks_is_absent_not_zero(sim_cluster: SimCluster) -> None:
    prom = sim_cluster.prometheus
    prom.wait_for('DCGM_FI_DEV_GPU_TEMP{Hostname="sim-l4-0"}')
    assert prom.query('DCGM_FI_DEV_MEMORY_TEMP{Hostname="sim-l4-0"}') == []
    assert prom.wait_for('egs_exporter_read_errors_total{reason="unsupported"}')
