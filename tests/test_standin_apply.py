"""Server-side apply of a whole object on the stand-in drops what its manager stops applying, as a real server does.

The stand-in merged each apply into the stored object as a JSON merge patch does: a toleration, label or env var the
controller stopped applying stayed, and a keyed list (containers, env) was replaced whole, losing what another
manager had put in it. Now each (object, manager) keeps the fields it last applied (managedFields).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from autoscaler.adapters.kubernetes import Cluster
from localplay.kube_standin import KubeCluster, fields

DEPLOYMENTS = "apps/v1/deployments"


def _deployment(labels: dict[str, str], pod: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": "chat", "namespace": "team-a", "labels": labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {"selector": {"matchLabels": {"app": "chat"}}, "template": {"spec": pod}},
    }


def _stored(kube: KubeCluster) -> dict[str, Any]:
    return kube.get(DEPLOYMENTS, "team-a", "chat")  # type: ignore[return-value]


def _pod(kube: KubeCluster) -> dict[str, Any]:
    return _stored(kube)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


H100 = {"key": "gpu", "operator": "Equal", "value": "h100", "effect": "NoSchedule"}
L40S = {"key": "gpu", "operator": "Equal", "value": "l40s", "effect": "NoSchedule"}


def test_a_field_the_next_apply_leaves_out_is_gone(kube: KubeCluster) -> None:
    controller = Cluster(kube.api_client())
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]}}
    container = {"name": "vllm", "image": "vllm:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    controller.apply(
        _deployment(
            {"app": "chat", "move": "yes"}, {"tolerations": [H100], "affinity": affinity, "containers": [container]}
        )
    )
    controller.apply(
        _deployment({"app": "chat"}, {"containers": [{**container, "env": [{"name": "B", "value": "2"}]}]})
    )
    stored = _stored(kube)
    assert stored["metadata"]["labels"] == {"app": "chat"}
    assert _pod(kube) == {"containers": [{**container, "env": [{"name": "B", "value": "2"}]}]}


def test_a_field_another_manager_set_survives(kube: KubeCluster) -> None:
    controller, other = Cluster(kube.api_client()), Cluster(kube.api_client(), field_manager="someone-else")
    controller.apply(_deployment({"app": "chat", "move": "yes"}, {"containers": [{"name": "vllm", "image": "vllm:1"}]}))
    other.apply(_deployment({"team": "a", "move": "yes"}, {"containers": [{"name": "vllm", "image": "vllm:1"}]}))
    kube.patch(DEPLOYMENTS, "team-a", "chat", {"metadata": {"annotations": {"seen": "kubelet"}}})
    controller.apply(_deployment({"app": "chat"}, {"containers": [{"name": "vllm", "image": "vllm:2"}]}))
    stored = _stored(kube)
    # `move` is the other manager's too (it applied the same value), so the controller's leaving it out keeps it.
    assert stored["metadata"]["labels"] == {"app": "chat", "team": "a", "move": "yes"}
    assert stored["metadata"]["annotations"] == {"seen": "kubelet"}
    assert _pod(kube)["containers"] == [{"name": "vllm", "image": "vllm:2"}]


def test_a_keyed_list_merges_by_key_and_keeps_another_managers_items(kube: KubeCluster) -> None:
    controller, injector = Cluster(kube.api_client()), Cluster(kube.api_client(), field_manager="injector")
    vllm = {"name": "vllm", "image": "vllm:1", "env": [{"name": "A", "value": "1"}]}
    controller.apply(_deployment({}, {"containers": [vllm]}))
    sidecar = {"name": "proxy", "image": "envoy"}
    injected = {"name": "vllm", "env": [{"name": "TRACE", "value": "on"}]}
    injector.apply(_deployment({}, {"containers": [injected, sidecar]}))
    controller.apply(_deployment({}, {"containers": [{"name": "vllm", "image": "vllm:2"}]}))
    # The controller's env var A goes; the injector's TRACE and its whole sidecar container stay.
    assert _pod(kube)["containers"] == [
        {"name": "vllm", "image": "vllm:2", "env": [{"name": "TRACE", "value": "on"}]},
        sidecar,
    ]


def test_an_atomic_list_is_replaced_whole_and_taken_over(kube: KubeCluster) -> None:
    controller, other = Cluster(kube.api_client()), Cluster(kube.api_client(), field_manager="someone-else")
    other.apply(_deployment({}, {"tolerations": [H100]}))
    controller.apply(_deployment({}, {"tolerations": [L40S]}))
    assert _pod(kube)["tolerations"] == [L40S]
    # The list changed hands when the controller forced its own value: leaving it out now drops it.
    controller.apply(_deployment({}, {"containers": [{"name": "vllm"}]}))
    assert "tolerations" not in _pod(kube)


def test_a_merge_patch_takes_the_fields_it_changes(kube: KubeCluster) -> None:
    controller = Cluster(kube.api_client())
    controller.apply(_deployment({"app": "chat", "tier": "gold"}, {"containers": [{"name": "vllm"}]}))
    apps = client.AppsV1Api(kube.api_client())
    apps.patch_namespaced_deployment(
        "chat", "team-a", {"metadata": {"labels": {"tier": "silver"}}}, field_manager="ops"
    )
    controller.apply(_deployment({"app": "chat"}, {"containers": [{"name": "vllm"}]}))
    assert _stored(kube)["metadata"]["labels"] == {"app": "chat", "tier": "silver"}


def test_an_object_created_anew_forgets_the_old_ones_fields(kube: KubeCluster) -> None:
    controller = Cluster(kube.api_client())
    controller.apply(_deployment({"app": "chat"}, {"containers": [{"name": "vllm"}]}))
    controller.delete("apps/v1", "Deployment", "team-a", "chat")
    kube.put(DEPLOYMENTS, _deployment({"app": "chat", "owner": "ops"}, {"containers": [{"name": "vllm"}]}))
    controller.apply(_deployment({}, {"containers": [{"name": "vllm"}]}))
    assert _stored(kube)["metadata"]["labels"] == {"app": "chat", "owner": "ops"}


def test_fields_key_ports_and_name_keyed_lists_and_leave_others_atomic() -> None:
    pod = {
        "containers": [{"name": "vllm", "ports": [{"containerPort": 8000, "protocol": "TCP"}]}],
        "tolerations": [H100],
        "nodeSelector": {},
    }
    vllm = (("name", "vllm"),)
    port = (("containerPort", 8000), ("protocol", "TCP"))
    assert fields({"spec": pod}) == {
        ("spec", "containers", vllm),
        ("spec", "containers", vllm, "name"),
        ("spec", "containers", vllm, "ports", port),
        ("spec", "containers", vllm, "ports", port, "containerPort"),
        ("spec", "containers", vllm, "ports", port, "protocol"),
        ("spec", "tolerations"),
        ("spec", "nodeSelector"),
    }
    service = {"metadata": {"name": "chat", "namespace": "a", "uid": "u"}, "spec": {"ports": [{"port": 80}]}}
    assert fields(service) == {
        ("spec", "ports", (("port", 80), ("protocol", None))),
        ("spec", "ports", (("port", 80), ("protocol", None)), "port"),
    }


def test_an_apply_drops_nothing_its_manager_set_by_another_operation(kube: KubeCluster) -> None:
    created = _deployment({"app": "chat"}, {"containers": [{"name": "vllm", "image": "vllm:1"}]})
    client.AppsV1Api(kube.api_client()).create_namespaced_deployment("team-a", created, field_manager="egs-api")  # type: ignore[arg-type]
    api = Cluster(kube.api_client(), field_manager="egs-api")
    meta = {"name": "chat", "namespace": "team-a", "annotations": {"a": "1"}}
    api.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta})
    stored = _stored(kube)
    assert stored["metadata"] == {**stored["metadata"], "labels": {"app": "chat"}, "annotations": {"a": "1"}}
    assert _pod(kube) == {"containers": [{"name": "vllm", "image": "vllm:1"}]}


def test_replicas_an_apply_stops_setting_default_to_one_unless_another_manager_set_them(kube: KubeCluster) -> None:
    controller = Cluster(kube.api_client())
    scaled = _deployment({}, {"containers": [{"name": "vllm"}]})
    scaled["spec"]["replicas"] = 4
    controller.apply(scaled)
    assert _stored(kube)["spec"]["replicas"] == 4
    controller.apply(_deployment({}, {"containers": [{"name": "vllm"}]}))
    # The controller alone owned them: the field goes, and the API server's defaulting makes it 1.
    assert _stored(kube)["spec"]["replicas"] == 1
    controller.apply(scaled)
    kube.patch(DEPLOYMENTS, "team-a", "chat", {"spec": {"replicas": 6}})  # an HPA's scale write, say
    controller.apply(_deployment({}, {"containers": [{"name": "vllm"}]}))
    assert _stored(kube)["spec"]["replicas"] == 6


def test_stored_objects_show_their_managers_as_managed_fields(kube: KubeCluster) -> None:
    Cluster(kube.api_client()).apply(_deployment({"app": "chat"}, {"containers": [{"name": "vllm", "image": "v"}]}))
    kube.patch(DEPLOYMENTS, "team-a", "chat", {"spec": {"replicas": 3}})
    entries = {(e["manager"], e["operation"]): e for e in _stored(kube)["metadata"]["managedFields"]}
    assert set(entries) == {("egs-controller", "Apply"), ("stand-in", "Update")}
    assert entries["stand-in", "Update"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    applied = entries["egs-controller", "Apply"]
    assert (applied["apiVersion"], applied["fieldsType"]) == ("apps/v1", "FieldsV1")
    assert applied["fieldsV1"]["f:metadata"] == {"f:labels": {"f:app": {}}}
    vllm = applied["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"vllm"}']
    assert vllm == {"f:name": {}, "f:image": {}}
