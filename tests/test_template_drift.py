"""A pod template EGS renders otherwise than the serving workload records, with no change of the endpoint's spec
pending (a registry entry changed, an EGS upgrade, or a change of the spec held a loop for room), is made before it
breaks as a change of the spec is: a new workload, the old one serving until it does, a few endpoints at a time.

Rewritten under the old name, the Deployment's rollout (maxSurge 0) took the one serving pod down for a whole
model load: on every endpoint at once after an upgrade, and after a template-only change of the spec held for
room, on the loop after.
"""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.config import parse_config
from autoscaler.decide import Decision, Observation, Settings, TemplateRolloutSettings, decide
from autoscaler.decide.workloads import TEMPLATE, _kept_templates, paced
from benchmarks.churnkit.scenario import FLEETS, endpoint_bodies, fleet
from benchmarks.churnkit.scenario import Shape as ScenarioShape
from benchmarks.reconcile import serving as serving_obs
from common.errors import InputError
from localplay.kube_standin import KubeCluster
from scheduler.registry import Registry
from tests.conftest import REPO
from tests.test_controller import ENDPOINTS, FixedSignals, controller
from tests.test_controller import SETTINGS as CONTROLLER_SETTINGS
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, endpoint, h100, training
from tests.test_reconcile_state import applied, l40s, observed, workloads
from tests.test_shape_change import conditions
from tests.test_template_change import TRADED, respecified

MIRROR = "mirror.internal/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The registry with the model's checkpoint moved to a mirror: each replica's template changes, not its shape."""
    raw = yaml.safe_load((REPO / "examples" / "models.yaml").read_text())
    for model in raw["models"]:
        if model["name"] == MODEL:
            model["source"] = MIRROR
    path = Path(tmp_path_factory.mktemp("registry")) / "models.yaml"
    path.write_text(yaml.safe_dump(raw))
    return Registry.load(path, CATALOG)


def step(
    nodes: list[dict[str, Any]],
    eps: list[dict[str, Any]],
    owned: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    at: float,
    registry: Registry = REGISTRY,
    settings: Settings = SETTINGS,
) -> Decision:
    return decide(Observation(nodes, eps, owned, None, pods=pods), settings, registry, CATALOG, at)


def template(workload: dict[str, Any]) -> Any:
    return workload["spec"]["template"]


def checkpoint(workload: dict[str, Any]) -> str:
    return str(template(workload)["spec"]["containers"][0]["args"][0])


def serving(name: str) -> tuple[list[dict[str, Any]], Decision, list[dict[str, Any]], list[dict[str, Any]]]:
    """One endpoint on an L40S node, l40s-0, applied and serving: (endpoints, decision, owned, pods)."""
    eps = [endpoint(name)]
    first = step([l40s("l40s-0")], eps, [], [], NOW)
    owned, pods = applied(first)
    return observed(first, eps), first, owned, pods


def test_a_registry_change_makes_the_new_template_before_the_old_one_breaks(mirrored: Registry) -> None:
    eps, first, owned, pods = serving("alpha")
    ((old_name, before),) = workloads(first, "alpha").items()
    nodes = [l40s("l40s-0"), l40s("l40s-1")]
    second = step(nodes, eps, owned, pods, NOW + 60, mirrored)
    ((new_name, after),) = workloads(second, "alpha").items()
    # The serving Deployment is not rewritten: its rollout would take its one pod down first.
    assert new_name != old_name and second.deletions == ()
    assert checkpoint(after) == MIRROR and checkpoint(before) != MIRROR
    assert after["metadata"]["annotations"][TEMPLATE] != before["metadata"]["annotations"][TEMPLATE]
    assert "l40s-1" in after["metadata"]["annotations"]["egs.io/placement"]  # on the GPUs that are free
    status = second.statuses[("team-a", "alpha")]
    assert (status["phase"], status["readyReplicas"], status["shapeChange"]) == ("Ready", 1, {"replacing": [old_name]})
    assert conditions(second)["Progressing"] == ("True", "ChangingShape")
    assert "SpecApplied" not in conditions(second)
    # Its new pod is Ready: the old workload goes, and nothing is renamed again.
    new_owned, new_pods = applied(second, ready=True)
    owned_now = [*owned, *(o for o in new_owned if o["metadata"]["name"] == new_name)]
    third = step(nodes, observed(second, eps), owned_now, [*pods, *new_pods], NOW + 120, mirrored)
    assert [d[3] for d in third.deletions] == [old_name]
    assert set(workloads(third, "alpha")) == {new_name}
    assert conditions(third)["Progressing"] == ("False", "AllReplicasReady")


def test_an_upgrade_that_renders_the_template_anew_makes_it_before_it_breaks() -> None:
    # What an older EGS rendered: another argument, and its hash of it.
    eps, first, owned, pods = serving("alpha")
    (old_name,) = workloads(first, "alpha")
    for w in owned:
        if w["kind"] == "Deployment":
            w["spec"]["template"]["spec"]["containers"][0]["args"].append("--enable-prefix-caching")
            w["metadata"]["annotations"][TEMPLATE] = "rendered-by-the-egs-before"
    second = step([l40s("l40s-0"), l40s("l40s-1")], eps, owned, pods, NOW + 60)
    ((new_name, after),) = workloads(second, "alpha").items()
    assert new_name != old_name and second.deletions == ()
    assert "--enable-prefix-caching" not in template(after)["spec"]["containers"][0]["args"]
    assert second.statuses[("team-a", "alpha")]["shapeChange"] == {"replacing": [old_name]}


def test_a_template_change_of_the_spec_on_a_full_cluster_waits_and_never_rolls_in_place() -> None:
    # One L40S GPU, the endpoint's only class, and nothing to provision: no room for a second pod.
    eps = [endpoint("alpha", gpuClasses=["L40S"])]
    full = [l40s("l40s-0")]
    first = step(full, eps, [], [], NOW)
    ((old_name, before),) = workloads(first, "alpha").items()
    owned, pods = applied(first)
    changed = respecified(observed(first, eps), 4, **TRADED)
    held = step(full, changed, owned, pods, NOW + 60)
    assert conditions(held, "alpha")["SpecApplied"] == ("False", "Unschedulable")
    # The next loops (the status observed the spec's generation) hold it still: the old template serves on.
    later = observed(held, changed)
    for at in (NOW + 120, NOW + 180):
        again = step(full, later, owned, pods, at)
        rewritten = [w for w in workloads(again, "alpha").values() if template(w) != template(before)]
        assert rewritten == [] and again.deletions == ()
        status = again.statuses[("team-a", "alpha")]
        assert (status["phase"], status["readyReplicas"]) == ("Ready", 1)
        assert conditions(again, "alpha")["SpecApplied"] == ("False", "Unschedulable")
        later = observed(again, changed)
    # Room comes: the new template gets its own workload there, and the old one serves until it does.
    room = step([*full, l40s("l40s-1")], later, owned, pods, NOW + 240)
    ((new_name, after),) = workloads(room, "alpha").items()
    assert new_name != old_name and room.deletions == ()
    assert "--max-num-seqs" in template(after)["spec"]["containers"][0]["args"]
    assert room.statuses[("team-a", "alpha")]["shapeChange"] == {"replacing": [old_name]}
    assert "SpecApplied" not in conditions(room, "alpha")


def test_template_changes_go_a_few_endpoints_at_a_time_the_others_serve_as_they_are(mirrored: Registry) -> None:
    names = ["alpha", "beta", "gamma"]
    eps = [endpoint(n) for n in names]
    nodes = [l40s(f"l40s-{i}") for i in range(6)]
    first = step(nodes[:3], eps, [], [], NOW)
    owned, pods = applied(first)
    at_once = Settings(**{**SETTINGS.__dict__, "template_rollout": TemplateRolloutSettings(max_endpoints=1)})
    second = step(nodes, observed(first, eps), owned, pods, NOW + 60, mirrored, at_once)
    renamed = {n for n in names if set(workloads(second, n)) != set(workloads(first, n))}
    assert renamed == {"alpha"} and second.deletions == ()
    # The others are written with the templates they run (no pod restarts), and say why.
    by_name = {o["metadata"]["name"]: o for o in owned}
    for n in ("beta", "gamma"):
        ((name, obj),) = workloads(second, n).items()
        assert template(obj) == template(by_name[name])
        assert obj["metadata"]["annotations"][TEMPLATE] == by_name[name]["metadata"]["annotations"][TEMPLATE]
        said = conditions(second, n)
        assert said["SpecApplied"] == ("False", "TemplateChangeQueued")
        assert f"team-a/{n}" not in second.kept  # not held: its replicas follow demand meanwhile
    # While alpha's change is under way, the others still wait.
    new_owned, new_pods = applied(second, ready=False)
    (alpha_new,) = workloads(second, "alpha")
    owned = [*owned, *(o for o in new_owned if o["metadata"]["name"] == alpha_new)]
    pods = [*pods, *(p for p in new_pods if p["metadata"]["name"].startswith(alpha_new))]
    third = step(nodes, observed(second, eps), owned, pods, NOW + 120, mirrored, at_once)
    assert {n for n in names if conditions(third, n).get("SpecApplied")} == {"beta", "gamma"}
    assert set(workloads(third, "alpha")) == {alpha_new}
    # Once alpha's old workload is gone, beta's turn comes.
    done = [o for o in owned if o["metadata"]["name"] not in workloads(first, "alpha")]
    for o in done:
        if o["metadata"]["name"] == alpha_new:
            o["status"] = {"readyReplicas": 1}
    for p in pods:
        p["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    pods = [p for p in pods if not p["metadata"]["name"].startswith(tuple(workloads(first, "alpha")))]
    fourth = step(nodes, observed(third, eps), done, pods, NOW + 180, mirrored, at_once)
    assert set(workloads(fourth, "beta")) != set(workloads(first, "beta"))
    assert set(workloads(fourth, "gamma")) == set(workloads(first, "gamma"))
    assert conditions(fourth, "gamma")["SpecApplied"] == ("False", "TemplateChangeQueued")


def test_a_template_loop_after_loop_is_no_change() -> None:
    eps, first, owned, pods = serving("alpha")
    again = step([l40s("l40s-0"), l40s("l40s-1")], eps, owned, pods, NOW + 60)
    assert workloads(again, "alpha") == workloads(first, "alpha")
    assert "SpecApplied" not in conditions(again)


def test_an_endpoint_held_for_room_goes_after_the_others() -> None:
    held = {"conditions": [{"type": "SpecApplied", "status": "False", "reason": "Unschedulable"}]}
    statuses = {"ns/a": held, "ns/b": {}, "ns/c": {}}
    assert paced(["ns/a", "ns/b", "ns/c"], statuses, (), 2) == (frozenset({"ns/b", "ns/c"}), frozenset({"ns/a"}))
    assert paced(["ns/a", "ns/b", "ns/c"], statuses, ["ns/x"], 2) == (frozenset({"ns/b"}), frozenset({"ns/a", "ns/c"}))
    assert paced(["ns/a", "ns/b"], statuses, ["ns/x", "ns/y", "ns/z"], 2) == (frozenset(), frozenset({"ns/a", "ns/b"}))
    # Deferred (no room this loop): it waits, and a change under way that does not fit counts in no turn.
    assert paced(["ns/b", "ns/c"], statuses, ["ns/x"], 1, deferred={"ns/b", "ns/x"}) == (
        frozenset({"ns/c"}),
        frozenset({"ns/b"}),
    )
    assert paced(["ns/b", "ns/c"], statuses, (), 2, turns={"ns/c"}) == (frozenset({"ns/c"}), frozenset({"ns/b"}))


def spec_applied(decision: Decision, name: str) -> dict[str, Any]:
    status = decision.statuses[("team-a", name)]
    return next(c for c in status["conditions"] if c["type"] == "SpecApplied")


def one_at_a_time() -> Settings:
    return Settings(**{**SETTINGS.__dict__, "template_rollout": TemplateRolloutSettings(max_endpoints=1)})


def test_on_a_full_cluster_every_template_waits_for_room_stably_and_no_pod_restarts(mirrored: Registry) -> None:
    # Three one-GPU endpoints on three L40S GPUs, nothing to provision: no new template has room beside its old one.
    names = ["alpha", "beta", "gamma"]
    eps = [endpoint(n, gpuClasses=["L40S"]) for n in names]
    nodes = [l40s(f"l40s-{i}") for i in range(3)]
    first = step(nodes, eps, [], [], NOW)
    owned, pods = applied(first)
    by_name = {o["metadata"]["name"]: o for o in owned}
    now = observed(first, eps)
    said: list[dict[str, Any]] = []
    for loop in range(1, 6):
        d = step(nodes, now, owned, pods, NOW + 60 * loop, mirrored, one_at_a_time())
        assert d.kept == () and d.deletions == ()  # none held: each follows demand in the template it runs
        for n in names:
            ((name, obj),) = workloads(d, n).items()
            assert template(obj) == template(by_name[name])
        said.append({n: spec_applied(d, n) for n in names})
        now = observed(d, now)
    # alpha and beta tried on the first loop (one turn each, neither fits), gamma on the next; from then on each
    # says it waits for room, as it said (no rewrite), loop after loop.
    assert [said[0][n]["reason"] for n in names] == ["TemplateChangeWaitsForRoom"] * 2 + ["TemplateChangeQueued"]
    assert said[1] == said[2] == said[3] == said[4]
    assert {c["reason"] for c in said[1].values()} == {"TemplateChangeWaitsForRoom"}
    # Room comes: a new template goes on it, the old workload serving until it does.
    room = step([*nodes, l40s("l40s-3")], now, owned, pods, NOW + 600, mirrored, one_at_a_time())
    assert sum(set(workloads(room, n)) != set(workloads(first, n)) for n in names) == 1


def test_a_template_with_room_for_some_replicas_takes_no_gpu_and_lets_the_others_go(mirrored: Registry) -> None:
    # alpha (two replicas) and beta on two 2-GPU L40S nodes: one GPU free, room for beta's new pod, not alpha's two.
    eps = [endpoint("alpha", gpuClasses=["L40S"], lo=2), endpoint("beta", gpuClasses=["L40S"])]
    nodes = [l40s("l40s-0", 2), l40s("l40s-1", 2)]
    first = step(nodes, eps, [], [], NOW)
    owned, pods = applied(first)
    by_name = {o["metadata"]["name"]: o for o in owned}
    second = step(nodes, observed(first, eps), owned, pods, NOW + 60, mirrored, one_at_a_time())
    ((alpha_name, alpha),) = workloads(second, "alpha").items()
    assert alpha_name in by_name and template(alpha) == template(by_name[alpha_name])  # not rolled, nor doubled
    assert conditions(second, "alpha")["SpecApplied"] == ("False", "TemplateChangeWaitsForRoom")
    assert set(workloads(second, "beta")) != set(workloads(first, "beta"))  # beta's turn, on the free GPU
    assert "SpecApplied" not in conditions(second, "beta") and second.deletions == ()


@pytest.mark.parametrize(("given", "allowed"), [(None, 1), ("10%", 1), (3, 3), ("3", 3), ("50%", 2), (0, 0)])
def test_the_pace_is_a_number_or_a_share_of_the_endpoints(given: Any, allowed: int) -> None:
    raw = {} if given is None else {"templateRollout": {"maxEndpoints": given}}
    settings, _ = parse_config(copy.deepcopy(raw))
    assert settings.template_rollout.endpoints_allowed(3) == allowed


@pytest.mark.parametrize("given", ["150%", "many", -1, True])
def test_a_pace_that_is_no_number_nor_share_is_refused(given: Any) -> None:
    with pytest.raises(InputError, match="templateRollout"):
        parse_config({"templateRollout": {"maxEndpoints": given}})


@pytest.mark.parametrize("kind", sorted(FLEETS))
def test_no_fleet_kind_reads_the_templates_it_wrote_as_changed(kind: str) -> None:
    # Every sharing (MIG, AMD partitions, time-slicing, HAMi, KAI, tensor-parallel over PCIe): the template an
    # incumbent renders in is the one its workload was written with, or each loop would renew it again.
    rng = random.Random(7)
    settings = Settings(sharing=dict(FLEETS[kind].sharing))
    eps = [
        {
            "apiVersion": "egs.dev/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": {"name": body["name"], "namespace": ns, "uid": f"uid-{ns}-{body['name']}", "generation": 1},
            "spec": {k: v for k, v in body.items() if k != "name"},
        }
        for ns, body in endpoint_bodies(24, rng, "ep", ("a", "b"))
    ]
    obs = Observation(fleet(CATALOG, rng, 24, ScenarioShape(fleet=kind)), eps, (), None)
    first = decide(obs, settings, REGISTRY, CATALOG, NOW)
    again = decide(serving_obs(first, obs), settings, REGISTRY, CATALOG, NOW + 60)
    assert sum(d.placed for d in again.endpoints) > 0
    assert [d.key for d in again.endpoints if d.shape_change] == []
    assert [d.key for d in again.endpoints if d.not_applied and d.not_applied[0] == "TemplateChangeQueued"] == []
    written = {o["metadata"]["name"] for o in first.objects if o["kind"] in ("Deployment", "LeaderWorkerSet")}
    assert {o["metadata"]["name"] for o in again.objects if o["kind"] in ("Deployment", "LeaderWorkerSet")} <= written


def test_a_waiting_endpoint_costs_its_workload_no_write(kube: KubeCluster, mirrored: Registry) -> None:
    # Through the controller and the stand-in: the template it waits with is the one the API server holds.
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    paused = replace(CONTROLLER_SETTINGS, template_rollout=TemplateRolloutSettings(max_endpoints=0))
    ctl = controller(kube, FixedSignals(demand=3.0), settings=paused)
    ctl.reconcile()
    for d in kube.all("apps/v1/deployments"):  # its pods run (the stand-in runs none): a pod that serves
        if d["metadata"]["namespace"] == "team-a":
            labels, spec = d["spec"]["template"]["metadata"]["labels"], d["spec"]["template"]["spec"]
            kube.put("v1/pods", running(f"{d['metadata']['name']}-0", labels, spec["containers"]))
    assert ctl.reconcile().writes == 0
    before = {d["metadata"]["name"]: d for d in kube.all("apps/v1/deployments")}
    ctl.registry = mirrored  # restarted with the registry changed
    ctl.reconcile()
    after = {d["metadata"]["name"]: d for d in kube.all("apps/v1/deployments")}
    assert set(after) == set(before)
    for name, was in before.items():
        assert after[name]["metadata"]["resourceVersion"] == was["metadata"]["resourceVersion"]
    (ep,) = kube.all(ENDPOINTS)
    [said] = [c for c in ep["status"]["conditions"] if c["type"] == "SpecApplied"]
    assert (said["status"], said["reason"]) == ("False", "TemplateChangeQueued")
    assert ctl.reconcile().writes == 0


def running(name: str, labels: dict[str, str], containers: list[Any]) -> dict[str, Any]:
    """A pod of a workload, bound to gpu-0 and Ready."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a", "labels": labels},
        "spec": {"nodeName": "gpu-0", "containers": containers},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_a_template_change_under_way_that_stalls_for_room_does_not_hold_the_queue(mirrored: Registry) -> None:
    # alpha (two replicas, L40S only) has its turn on a new L40S node; beta (H100 only) waits for it.
    eps = [endpoint("alpha", gpuClasses=["L40S"], lo=2), endpoint("beta", gpuClasses=["H100-80GB"])]
    first = step([l40s("l40s-0", 2), h100("gpu-0")], eps, [], [], NOW)
    owned, pods = applied(first)
    nodes = [l40s("l40s-0", 2), h100("gpu-0"), l40s("l40s-1", 2)]
    second = step(nodes, observed(first, eps), owned, pods, NOW + 60, mirrored, one_at_a_time())
    (alpha_new,) = (n for n in workloads(second, "alpha") if n not in workloads(first, "alpha"))
    assert conditions(second, "beta")["SpecApplied"] == ("False", "TemplateChangeQueued")
    # One of alpha's new pods is bound; another workload took the GPU the other was planned on: it stalls.
    new_owned, new_pods = applied(second, ready=False)
    owned = [*owned, *(o for o in new_owned if o["metadata"]["name"] == alpha_new)]
    mine = [p for p in new_pods if p["metadata"]["name"].startswith(alpha_new)][:1]
    pods = [*pods, *mine, training("l40s-1", 1)]
    third = step(nodes, observed(second, eps), owned, pods, NOW + 120, mirrored, one_at_a_time())
    assert alpha_new in workloads(third, "alpha")  # still under way, waiting for room as a change of its spec would
    assert set(workloads(third, "beta")) != set(workloads(first, "beta"))  # beta's turn comes meanwhile
    assert "SpecApplied" not in conditions(third, "beta")


def test_a_waiting_leader_worker_set_keeps_its_templates_where_a_new_version_adds_a_leader() -> None:
    # What runs: workers only (an older EGS); what is rendered now adds a leader template. Rewritten with it,
    # the LeaderWorkerSet would roll its serving pods in place.
    pod = {"metadata": {"labels": {"role": "worker"}}, "spec": {"containers": [{"name": "vllm", "image": "old"}]}}
    running: dict[str, Any] = {"size": 2, "workerTemplate": pod}
    before = {"metadata": {"annotations": {TEMPLATE: "old"}}, "spec": {"replicas": 1, "leaderWorkerTemplate": running}}
    new_pod = {"metadata": {"labels": {"role": "leader"}}, "spec": {"containers": [{"name": "vllm", "image": "new"}]}}
    lws = {"size": 2, "leaderTemplate": new_pod, "workerTemplate": new_pod}
    rendered: dict[str, Any] = {
        "metadata": {"annotations": {TEMPLATE: "new"}},
        "spec": {"replicas": 2, "leaderWorkerTemplate": lws},
    }
    _kept_templates(rendered, before)
    assert rendered["spec"] == {"replicas": 2, "leaderWorkerTemplate": running}
    assert rendered["metadata"]["annotations"][TEMPLATE] == "old"
