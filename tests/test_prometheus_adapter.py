"""The Prometheus adapter against a real Prometheus recording from a stand-in vLLM's metrics.

Covers: per-model demand, queue and KV-cache read through the recording rules, the same per serving
pod, sample times for
staleness, `query_range` history with gaps as NaN, and an unreachable Prometheus. The GPU
saturation view is checked against the session's sim exporters.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.adapters.prometheus import MetricsUnavailable, PrometheusMetrics
from localplay.localstack import Prometheus, free_port
from localplay.vllm_standin import Server, VllmStandIn
from tests.conftest import SimCluster

RULES = Path(__file__).resolve().parent.parent / "alerts" / "egs.rules.yaml"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, VllmStandIn]]:
    vllm = VllmStandIn(
        [
            Server("llama-3.1-8b-instruct", "team-a", "vllm-0", rps=4.0, waiting=7, running=16, kv_cache=0.85),
            Server("mistral-7b-instruct-v0.3", "team-a", "vllm-1", rps=1.0, waiting=0, running=2, kv_cache=0.2),
        ]
    )
    jobs = [{"job_name": "vllm", "static_configs": [{"targets": [vllm.address]}]}]
    prom = Prometheus(tmp_path_factory.mktemp("prom-vllm"), [], interval="1s", rule_files=[RULES], scrape_configs=jobs)
    prom.start()
    try:
        assert prom.wait_for("count(model:requests:rate5m > 0) == 2", timeout_s=60), "rules never recorded"
        yield prom, vllm
    finally:
        prom.stop()
        vllm.close()


def test_signals_per_model_from_the_recording_rules(recorded: tuple[Prometheus, VllmStandIn]) -> None:
    prom, _ = recorded
    signals = PrometheusMetrics(prom.url).snapshot(time.time(), 600, 5).signals
    assert set(signals) == {"llama-3.1-8b-instruct", "mistral-7b-instruct-v0.3"}
    llama = signals["llama-3.1-8b-instruct"]
    # rate() over 5m divides by the whole window, so a young Prometheus records less than 4 req/s:
    # the adapter must hand on what the rule recorded, whatever it is.
    recorded_rate = {s["metric"]["model_name"]: float(s["value"][1]) for s in prom.query("model:requests:rate5m")}
    assert llama.demand_rps == pytest.approx(recorded_rate["llama-3.1-8b-instruct"], rel=0.5)
    assert llama.demand_rps > signals["mistral-7b-instruct-v0.3"].demand_rps > 0
    assert (llama.waiting, llama.running, llama.kv_cache_usage) == (7, 16, 0.85)
    assert signals["mistral-7b-instruct-v0.3"].kv_cache_usage == 0.2
    assert time.time() - llama.sampled_at < 10


def test_signals_per_serving_pod(recorded: tuple[Prometheus, VllmStandIn]) -> None:
    prom, _ = recorded
    per_pod = PrometheusMetrics(prom.url).snapshot(time.time(), 600, 5).pods
    assert set(per_pod) == {("team-a", "vllm-0"), ("team-a", "vllm-1")}
    llama, mistral = per_pod[("team-a", "vllm-0")], per_pod[("team-a", "vllm-1")]
    assert (llama.waiting, mistral.waiting) == (7, 0)
    assert llama.demand_rps is not None and mistral.demand_rps is not None and llama.demand_rps > mistral.demand_rps > 0
    assert llama.gpu_saturation is None  # no GPU exporter maps a GPU to these pods here


def test_history_is_regular_with_gaps_as_nan(recorded: tuple[Prometheus, VllmStandIn]) -> None:
    prom, _ = recorded
    metrics = PrometheusMetrics(prom.url)
    deadline = time.monotonic() + 20
    while True:  # the newest aligned step must be younger than the first recorded sample
        now = time.time()
        llama = metrics.snapshot(now, 600, 5).history.get("llama-3.1-8b-instruct")
        if (llama is not None and not math.isnan(llama.values[-1])) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert llama is not None
    assert len(llama.values) in (120, 121)
    assert llama.start_s % 5 == 0 and llama.step_s == 5
    assert math.isnan(llama.values[0])  # ten minutes ago Prometheus was not running
    assert llama.values[-1] > 0


def test_gpu_saturation_by_product(sim_cluster: SimCluster) -> None:
    saturation = PrometheusMetrics(sim_cluster.prometheus.url).gpu_saturation(time.time())
    assert saturation == {} or all(0 <= v <= 1.5 for v in saturation.values())


def test_an_unreachable_prometheus_is_unavailable() -> None:
    with pytest.raises(MetricsUnavailable, match="model:requests:rate5m"):
        PrometheusMetrics(f"http://127.0.0.1:{free_port()}", timeout_s=2).snapshot(time.time(), 600, 5)
