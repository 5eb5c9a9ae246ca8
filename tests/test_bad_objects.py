"""Bad objects of every kind are reported on themselves, and the rest proceed (issue 16).

tests/test_isolation.py has the first kinds (a `spec` that is not an object, a Node label that cannot be read,
a variant that cannot be rendered, a fault nobody foresaw). Here, each found by replacing one field of a
served cluster's objects at a time with values of another type or out of range (hbad's sweep, fourteenth
session, in docs/benchmark-notes.md), what failed every endpoint's loop or answer before:

- an InferenceEndpoint status field that is not the list it should be (`recommendations`,
  `consolidation.replacing`, `consolidation.nodes`), as one stored before the CRD's schema said so holds;
- an endpoint status field of another type (`phase` a list, `conditions` of strings) in the API's list and GET;
- an Event on an object of the longest name (253 characters);
- a Node advertising more GPUs than it has (HAMi's device plugin, each GPU 10 times; `1e3`);
- a consolidation move recorded years ahead, which spent every interval's node budget and stayed on the status;
- a negative Prometheus sample (a pod's demand), and a finite one past every bound (1.7e308 req/s);
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from autoscaler.adapters.prometheus import DEMAND, POD_DEMAND, PrometheusMetrics
from autoscaler.decide import Decision, Observation, Settings, decide
from autoscaler.decide.state import Move
from autoscaler.endpoint import schema
from autoscaler.events import ObjectRef, Recorder, event
from autoscaler.kubetime import parse_time, read_time, rfc3339
from autoscaler.signals import BadSample, History, ModelSignals
from scheduler.inventory import HAMI_REGISTER, SharingPolicy, build_inventory
from tests.test_consolidation_moves_counted import TWO, moved, with_move_recorded
from tests.test_consolidation_within_class import lone_endpoints
from tests.test_controller import DEPLOYMENTS, ENDPOINTS, FixedSignals, controller
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, endpoint, h100, serving_pod, signals
from tests.test_prometheus_reads import FakePrometheus, sample
from tests.test_reconcile_state import observed

OTHER = "qwen2.5-14b-instruct"
"""A second model of the example registry."""


def served(kube: Any) -> list[str]:
    """The endpoints the cluster holds a Deployment for (the warm pool's left out)."""
    annotations = [d["metadata"].get("annotations") or {} for d in kube.all(DEPLOYMENTS)]
    return sorted(a["egs.io/request-name"] for a in annotations if "egs.io/request-name" in a)


@pytest.mark.parametrize(
    "status",
    [
        {"recommendations": 5},
        {"consolidation": {"at": "2027-01-15T07:59:00Z", "replacing": 7, "nodes": ["gpu-0"]}},
        {"consolidation": {"at": "2027-01-15T07:59:00Z", "replacing": [], "nodes": True}},
    ],
    ids=["recommendations-number", "replacing-number", "nodes-boolean"],
)
def test_a_status_field_that_is_no_list_is_written_anew_and_the_others_are_placed(
    kube: Any, status: dict[str, Any]
) -> None:
    """It failed the decide step (TypeError: not iterable), so every endpoint's loop and every POST's answer."""
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint("odd", status=status))
    kube.put(ENDPOINTS, endpoint())
    outcome = controller(kube, FixedSignals(demand=1.0)).reconcile()
    assert outcome.errors == []
    assert served(kube) == ["chat", "odd"]
    written = kube.get(ENDPOINTS, "team-a", "odd")["status"]
    assert isinstance(written["recommendations"], list)


AT = "2027-01-15T07:59:00Z"
WORKER = {"node": "gpu-0", "gpus": [0]}
PLACED = {
    "variant": "bf16",
    "gpuClass": "H100-80GB",
    "sharing": "exclusive",
    "tensorParallel": 1,
    "vramMiBPerGpu": 34003,
}
EVERY_FIELD: dict[str, Any] = {
    "phase": "Provisioning", "variant": "bf16", "gpuClass": "H100-80GB", "readyReplicas": 0, "desiredReplicas": 1,
    "url": "http://odd.team-a.svc:8000", "costPerHour": 2.5, "estimatedReadyTime": AT, "observedGeneration": 3,
    "lastScaleTime": AT,
    "promise": {"answer": "Accepted", "estimatedReadyTime": AT, "variant": "bf16", "gpuClass": "H100-80GB",
                "observedGeneration": 3, "placements": [{**PLACED, "workers": [WORKER]}]},
    "consolidation": {"at": AT, "replacing": ["odd-bf16-h100-80gb"], "nodes": ["gpu-0"], "for": "team-a/chat"},
    "shapeChange": {"replacing": ["odd-bf16-h100-80gb"]},
    "recommendations": [{"time": AT, "replicas": 1}],
    "conditions": [{"type": "Ready", "status": "False", "reason": "WaitingForCapacity", "message": "1 waits",
                    "lastTransitionTime": AT, "observedGeneration": 3}],
}  # fmt: skip
"""A status with every field the CRD's schema has."""
OTHER_TYPES: tuple[Any, ...] = (None, "x", -1, 1e30, True, [], ["x"], {}, {"a": 1})
FIELDS = [(k,) for k in EVERY_FIELD] + [(k, f) for k, v in EVERY_FIELD.items() if isinstance(v, dict) for f in v]


def test_every_status_field_is_written_here() -> None:
    fields = schema()["properties"]["status"]["properties"]
    assert set(EVERY_FIELD) == set(fields)
    for name, field in fields.items():
        if field.get("type") == "object":
            assert set(EVERY_FIELD[name]) == set(field["properties"]), name


@pytest.mark.parametrize("path", FIELDS, ids=".".join)
def test_a_status_field_of_any_other_type_stops_no_other_endpoint(path: tuple[str, ...]) -> None:
    """Each field (and each field of its objects) of a full status in turn, as another type: the decide step goes
    on, and places the others (before, `recommendations` and `consolidation.replacing`/`nodes` failed it)."""
    for value in OTHER_TYPES:
        status: dict[str, Any] = copy.deepcopy(EVERY_FIELD)
        field, *inner = path
        if inner:
            status[field][inner[0]] = value
        else:
            status[field] = value
        obs = Observation([h100("gpu-0")], [endpoint("odd", status=status), endpoint()], signals=signals())
        decision = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW)
        assert {d.name: d.placed for d in decision.endpoints}["chat"] == 1, value


def test_a_negative_sample_is_dropped_and_listed_and_every_endpoint_is_placed() -> None:
    """A pod's demand of -1 req/s failed the decide step (replica_target refuses a negative demand), so every
    endpoint's loop; where it did not, it gave the model's other endpoints the demand it took off. Every series
    read is a rate, a count, a ratio, a time or a price."""
    pod = {"namespace": "team-a", "pod": "odd-0"}
    prom = FakePrometheus({
        DEMAND: [sample(MODEL, "6")],
        f"timestamp({DEMAND})": [sample(MODEL, str(NOW - 5))],
        POD_DEMAND: [{"metric": pod, "value": [NOW, "-1"]}],
    })  # fmt: skip
    try:
        snapshot = PrometheusMetrics(prom.url).snapshot(NOW, 600, 60)
    finally:
        prom.shutdown()
    assert snapshot.bad == (BadSample(POD_DEMAND, 'namespace="team-a",pod="odd-0"', "negative", "-1"),)
    obs = Observation(
        [h100("gpu-0")], [endpoint("odd"), endpoint()], signals=snapshot.signals, pods=[serving_pod("odd-0", "odd")],
        pod_signals=snapshot.pods,
    )  # fmt: skip
    decision = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW)
    assert {d.name: d.replicas for d in decision.endpoints} == {"odd": 2, "chat": 2}  # 3 req/s each: 3.6 / 2


def test_a_demand_past_every_bound_is_the_maximum_and_the_others_are_placed() -> None:
    """A finite sample of 1.7e308 req/s made its replicas overflow to infinity (OverflowError), which failed every
    endpoint's loop: as a demand of its own and in its model's history, which warm pools read."""
    huge = 1.7e308
    sig = {MODEL: ModelSignals(MODEL, 1.0, sampled_at=NOW - 10), OTHER: ModelSignals(OTHER, huge, sampled_at=NOW - 10)}
    history = {OTHER: History(NOW - 3600, 300.0, (huge,) * 13)}
    classes = {name: replace(c, policy="egs") for name, c in SETTINGS.classes.items()}
    obs = Observation([h100("gpu-0"), h100("gpu-1")], [endpoint("odd", model=OTHER), endpoint()], signals=sig)
    decision = decide(replace(obs, history=history), replace(SETTINGS, classes=classes), REGISTRY, CATALOG, NOW)
    assert {d.name: (d.replicas, d.placed) for d in decision.endpoints} == {"odd": (8, 8), "chat": (1, 1)}


def listed(*endpoints: dict[str, Any]) -> list[dict[str, Any]]:
    """The items `GET /v1/namespaces/team-a/endpoints` answers with `endpoints` in the cluster (a 200 asserted), each
    endpoint's own `GET` answered 200 too."""
    from fastapi.testclient import TestClient

    from autoscaler.adapters.api import Services, create_app
    from autoscaler.adapters.kubernetes import Cluster
    from localplay.kube_standin import KubeCluster

    cluster = KubeCluster().start()
    try:
        cluster.emulator.tokens["t"] = ("alice", ())
        cluster.emulator.grants |= {("alice", "list", "team-a"), ("alice", "get", "team-a")}
        for obj in endpoints:
            cluster.put(ENDPOINTS, obj)
        app = TestClient(create_app(Services(Cluster(cluster.api_client()), SETTINGS, REGISTRY, CATALOG)))
        headers = {"Authorization": "Bearer t"}
        answer = app.get("/v1/namespaces/team-a/endpoints", headers=headers)
        assert answer.status_code == 200, answer.text
        for obj in endpoints:
            one = app.get(f"/v1/namespaces/team-a/endpoints/{obj['metadata']['name']}", headers=headers)
            assert one.status_code == 200, one.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items
    finally:
        cluster.stop()


OF_THE_VIEWS_TYPE: dict[str, tuple[Any, ...]] = {
    **dict.fromkeys(("phase", "variant", "gpuClass", "url", "estimatedReadyTime"), ("x",)),
    **dict.fromkeys(("readyReplicas", "desiredReplicas"), (-1,)),
    "costPerHour": (-1, 1e30),
    "conditions": ([],),
}
"""The values of `OTHER_TYPES` of a status field's own type as the API's view declares it: shown as they are."""


def test_the_api_lists_a_namespace_whose_endpoints_have_status_fields_of_other_types() -> None:
    """Each field of a full status in turn, as each other type, on an endpoint of its own: the view of one failed its
    pydantic model (`phase` a list, `readyReplicas` a word) or its conditions (`conditions` of strings), a 500 for the
    namespace's whole list and for its GET, until the controller wrote its status anew."""
    broken = {
        f"odd-{i}-{j}": (field, value) for i, field in enumerate(EVERY_FIELD) for j, value in enumerate(OTHER_TYPES)
    }
    odd = [endpoint(name, status={**EVERY_FIELD, field: value}) for name, (field, value) in broken.items()]
    items = {i["name"]: i for i in listed(*odd, endpoint(status=EVERY_FIELD))}
    whole = items.pop("chat")
    assert (whole["phase"], whole["readyReplicas"], whole["conditions"][0]["reason"]) == (
        "Provisioning", 0, "WaitingForCapacity"
    )  # fmt: skip
    for name, (field, value) in broken.items():
        shown = {k: v for k, v in items[name].items() if k != "name" and v != whole.get(k)}
        assert set(shown) <= {field}, (name, field, value, shown)
        expected = value if value in OF_THE_VIEWS_TYPE.get(field, ()) else [] if field == "conditions" else None
        assert items[name].get(field) == expected, (name, field, value)  # the field itself shown as absent


def test_an_event_on_an_object_of_the_longest_name_has_a_name_the_api_server_takes() -> None:
    """client-go's `<name>.<nanoseconds in hex>` is 270 characters for a 253-character InferenceEndpoint: the API
    server refused every Event on it, its `Failed` among them."""
    made: list[Mapping[str, Any]] = []

    class Sink:
        def create_event(self, namespace: str, body: Mapping[str, Any]) -> None:
            made.append(body)

        def patch_event(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
            raise AssertionError("a first Event is created")

    longest = "a" * 235 + "-" + "b" * 17
    regarding = ObjectRef("egs.dev/v1alpha1", "InferenceEndpoint", "team-a", longest)
    Recorder(Sink(), "a", clock=lambda: NOW).record(event(regarding, "Warning", "InvalidSpec", "Reconcile", "no"))
    (body,) = made
    name = body["metadata"]["name"]
    assert len(name) <= 253 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name)
    assert body["regarding"]["name"] == longest


def hami_node(counted: bool) -> dict[str, Any]:
    """An 8-GPU H100 node as HAMi's device plugin reports it: each GPU advertised 10 times (`deviceSplitCount`), each
    registered with its UUID and index; `counted`: GPU Feature Discovery's count label is there too."""
    node = h100("gpu-0")
    node["status"]["allocatable"]["nvidia.com/gpu"] = "80"
    node["metadata"]["annotations"] = {
        HAMI_REGISTER: json.dumps([{"id": f"GPU-{i}", "index": i, "type": "NVIDIA"} for i in range(8)])
    }
    if not counted:
        del node["metadata"]["labels"]["nvidia.com/gpu.count"]
    return node


@pytest.mark.parametrize("counted", [True, False], ids=["gpu-count-label", "registered-devices"])
def test_a_node_has_no_more_whole_gpus_than_physical_ones(counted: bool) -> None:
    """HAMi's 8-GPU node advertises 80 `nvidia.com/gpu`: it was read as 80 GPUs of 80 GB each, and planned on as such
    (with its GPU Feature Discovery count label, or with only HAMi's registered devices to count them)."""
    (read,) = build_inventory([hami_node(counted)], CATALOG, sharing=SharingPolicy({"H100-80GB": "hami"}), strict=False)
    assert (len(read.gpus), read.physical_gpus, len(read.devices)) == (8, 8, 8)


def test_a_node_saying_more_gpus_than_it_has_takes_no_more_replicas_than_its_gpus() -> None:
    """Allocatable `1e3` on a node GPU Feature Discovery counts 8 GPUs on: 16 replicas were placed on it."""
    lying = h100("gpu-0")
    lying["status"]["allocatable"]["nvidia.com/gpu"] = "1e3"
    many = signals(demand=100.0)
    decision = decide(Observation([lying], [endpoint(hi=16)], signals=many), SETTINGS, REGISTRY, CATALOG, NOW)
    (chat,) = decision.endpoints
    assert (chat.replicas, chat.placed, chat.waiting) == (16, 8, 8)


@pytest.mark.parametrize("ahead_s", [660.0, 10 * 365 * 86400.0], ids=["a leader 11 minutes fast", "a status edited"])
def test_a_move_dated_ahead_counts_one_interval_from_when_it_is_read_and_is_then_recorded_as_read(
    ahead_s: float,
) -> None:
    """One endpoint's `status.consolidation` dated ahead counts its nodes against the budget from when it is read,
    not until its date: before, one ten years ahead was kept and written back every loop (`status.consolidation.at`
    2036), and, once d6d0380 dropped it in `consolidate` alone, a fast leader's real moves of this interval were
    counted by no leader after it, which could then disrupt twice the budget."""
    nodes, eps, owned, pods = lone_endpoints(("alpha", "beta", "gamma", "delta"))
    ahead = Move(NOW + ahead_s, "team-a", (), nodes=("l40s-8", "l40s-9"))
    eps = [with_move_recorded(e, ahead) if e["metadata"]["name"] == "gamma" else e for e in eps]

    def loop(at: float, settings: Settings = TWO) -> Decision:
        obs = Observation(nodes, eps, owned, signals(age_s=NOW + 10 - at), pods=pods)
        return decide(obs, settings, REGISTRY, CATALOG, at)

    decision = loop(NOW)
    assert moved(decision) == []  # its two nodes spend this interval's budget of two
    assert decision.statuses[("team-a", "gamma")]["consolidation"]["at"] == rfc3339(NOW)
    # The next interval the others move again; once settled, the status records no move.
    eps = observed(decision, eps)
    assert len(moved(loop(NOW + TWO.consolidation.interval_s))) == 2
    assert "consolidation" not in loop(NOW + TWO.consolidation.settled_s, SETTINGS).statuses[("team-a", "gamma")]


def test_a_time_field_of_another_type_reads_as_none_wherever_it_is_read() -> None:
    """One reading for every time another writer may have set (`read_time`): two differed, and the status's read
    `20261208` as a date where consolidation's read it as none."""
    assert [read_time(v) for v in (*OTHER_TYPES, 20261208, "", "2026-13-40")] == [None] * (len(OTHER_TYPES) + 3)
    assert read_time(AT) == parse_time(AT)
