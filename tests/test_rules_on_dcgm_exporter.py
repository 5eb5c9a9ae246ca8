"""The `dcgm-exporter` rules, in a real Prometheus scraping what dcgm-exporter writes, record what EGS's
exporter computes itself.

The mixed sim fleet is served as the dcgm-exporter stand-in writes it (`localplay/dcgm_standin.py`: DCGM
fields only, dcgm-exporter's labels, NVIDIA devices, no `egs_*` series), under both common counters
files. For every GPU and MIG instance, `gpu:vram_used:ratio` and `gpu:saturation:ratio` must equal
`exporter.derived.derive()` of the same readings: the exporter's own per-GPU ratios, which the `egs`
rules read. So the two sources give dashboards and the autoscaler the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.config import RulesConfig
from alerts.rules import render
from exporter.derived import SATURATION_RATIO, VRAM_USED_RATIO, derive
from exporter.fleet import Fleet, load_fleet
from exporter.snapshot import Snapshot
from localplay.dcgm_standin import DCP_METRICS_INCLUDED, DEFAULT_COUNTERS, render_dcgm
from localplay.fleet_server import FleetServer
from localplay.localstack import Prometheus, free_port
from tests.conftest import MIXED_FLEET

Key = tuple[str, str, str]
"""(Hostname, gpu, GPU_I_ID) of one device."""


def _key(labels: dict[str, str]) -> Key:
    return labels["Hostname"], labels.get("gpu", ""), labels.get("GPU_I_ID", "")


def _expected(bodies: dict[str, bytes]) -> dict[Key, dict[str, float]]:
    """derive() of each device's values, read back from the bodies Prometheus scrapes."""
    values: dict[Key, dict[str, float]] = {}
    for body in bodies.values():
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                values.setdefault(_key(sample.labels), {})[family.name] = sample.value
    return {key: derive(v) for key, v in values.items()}


@pytest.fixture(scope="module", params=["dcp-metrics-included", "default-counters"])
def dcgm_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Prometheus, dict[Key, dict[str, float]]]]:
    counters = DCP_METRICS_INCLUDED if request.param == "dcp-metrics-included" else DEFAULT_COUNTERS

    def exposition(snap: Snapshot) -> bytes:
        return render_dcgm(snap, counters)

    work = tmp_path_factory.mktemp(f"dcgm-{request.param}")
    # The fleet server reads every GPU once; the fleet file's faults (a lost L4) are the exporter's tests'.
    fleet = Fleet(nodes=tuple(replace(node, faults=()) for node in load_fleet(MIXED_FLEET).nodes))
    server = FleetServer(("127.0.0.1", free_port()), fleet, exposition=exposition)
    server.serve_in_thread()
    rules = work / "rules.yaml"
    rules.write_text(render(RulesConfig(source="dcgm-exporter", slow_interval="1s")))
    prom = Prometheus(
        work / "prometheus",
        [],
        interval="1s",
        rule_files=[rules],
        scrape_configs=server.scrape_configs("nvidia-dcgm-exporter", "1s"),
    )
    try:
        prom.start()
        assert prom.wait_for(f"count(up == 1) == {len(fleet.nodes)}", timeout_s=30), "not every node scraped"
        yield prom, _expected(server.bodies)
    finally:
        prom.stop()
        server.close()


def _recorded(prom: Prometheus, name: str, want: Mapping[Key, float]) -> dict[Key, float]:
    """`name`'s values once they equal `want`, or the last seen after 30 s. Groups read each other's last
    results, so the first evaluations after start may lag a step behind."""
    deadline = time.monotonic() + 30
    while True:
        got = {_key(s["metric"]): float(s["value"][1]) for s in prom.query(name)}
        if got == pytest.approx(want, abs=1e-6) or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_the_stand_in_writes_no_egs_series_and_only_nvidia_gpus(
    dcgm_cluster: tuple[Prometheus, dict[Key, dict[str, float]]],
) -> None:
    prom, _ = dcgm_cluster
    assert prom.wait_for("count(DCGM_FI_DEV_FB_USED) > 0")
    assert prom.query('count({__name__=~"egs_.+"})') == []
    assert prom.query('count(DCGM_FI_DEV_FB_USED{vendor!=""})') == []
    assert set(prom.label_values("Hostname", "DCGM_FI_DEV_FB_USED")) == {
        n.name for n in load_fleet(MIXED_FLEET).nodes if all(g.vendor == "nvidia" for g in n.gpus)
    }


@pytest.mark.parametrize("name", [VRAM_USED_RATIO, SATURATION_RATIO])
def test_the_recorded_ratios_equal_what_the_egs_exporter_derives(
    dcgm_cluster: tuple[Prometheus, dict[Key, dict[str, float]]], name: str
) -> None:
    prom, expected = dcgm_cluster
    want = {key: ratios[name] for key, ratios in expected.items() if name in ratios}
    record = {VRAM_USED_RATIO: "gpu:vram_used:ratio", SATURATION_RATIO: "gpu:saturation:ratio"}[name]
    got = _recorded(prom, record, want)
    assert len(want) >= 8 and any(k[2] for k in want), "the fleet has whole GPUs and MIG instances"
    assert got == pytest.approx(want, abs=1e-6)


def test_capacity_counts_every_whole_nvidia_gpu_once(
    dcgm_cluster: tuple[Prometheus, dict[Key, dict[str, float]]], tmp_path: Path
) -> None:
    prom, expected = dcgm_cluster
    whole = {k: v[SATURATION_RATIO] for k, v in expected.items() if not k[2]}
    assert _recorded(prom, "gpu_whole:saturation:ratio", whole) == pytest.approx(whole, abs=1e-6)
    per_node = {(host, "", ""): float(sum(1 for k in whole if k[0] == host)) for host, _, _ in whole}
    assert _recorded(prom, "Hostname:gpus:count", per_node) == per_node
