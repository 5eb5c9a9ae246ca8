"""Kubernetes objects for a plan: each sharing mechanism asks for exactly its resources, a replica
over several nodes becomes a LeaderWorkerSet, every object passes strict schema validation (and the
validator does reject broken objects), vLLM never gets more VRAM than planned, and names are valid.

Plans are built by hand here, so these tests do not depend on the placement engine. Not covered:
whether a real API server, device plugin, KAI or HAMi admits the pods; that needs a cluster.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.catalog import Catalog
from scheduler.manifests import (
    HAMI_GPU_MEMORY,
    IMAGE_AMD,
    KAI_GPU_MEMORY,
    KAI_NUM_DEVICES,
    KAI_QUEUE_LABEL,
    NAME_MAX,
    ManifestError,
    dns_label,
    gpu_memory_utilization,
    manifests,
    validate,
)
from scheduler.plan import Placement, Plan, Request, Toleration, Worker
from scheduler.registry import Registry

REPO = Path(__file__).resolve().parent.parent
CATALOG = Catalog.load()
REGISTRY = Registry.load(REPO / "examples" / "models.yaml", CATALOG)


def replica(
    sharing: str = "exclusive",
    gpu_class: str = "H100-80GB",
    tp: int = 1,
    vram_mib: int = 30_000,
    workers: tuple[Worker, ...] = (Worker("gpu-h100-0", (0,)),),
    request: str = "chat",
    number: int = 0,
    model: str = "llama-3.1-8b-instruct",
    variant: str = "bf16",
) -> Placement:
    precision = REGISTRY.get(model).variant(variant).precision
    return Placement(
        request=request,
        replica=number,
        model=model,
        variant=variant,
        precision=precision,
        quality=1.0,
        gpu_class=gpu_class,
        sharing=sharing,
        tp=tp,
        vram_mib_per_gpu=vram_mib,
        workers=workers,
    )


def render(*placements: Placement, requests: tuple[Request, ...] = ()) -> list[dict[str, Any]]:
    return manifests(Plan(placements=placements), REGISTRY, CATALOG, requests)


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, [o["kind"] for o in objects]
    return found[0]


def container(pod_template: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_template["spec"]["containers"]
    return containers[0]


def flag(args: list[str], name: str) -> str:
    """The value after `name` in a vLLM argument list (or in a leader's shell line)."""
    words = args if len(args) > 1 else args[0].split()
    return words[words.index(name) + 1]


MECHANISMS = {
    "exclusive": (replica("exclusive", tp=2, workers=(Worker("gpu-h100-0", (0, 1)),)), {"nvidia.com/gpu": "2"}),
    "mig": (
        replica("mig", "A100-80GB", vram_mib=9_000, workers=(Worker("gpu-a100-mig-0", (), "1g.10gb"),)),
        {"nvidia.com/mig-1g.10gb": "1"},
    ),
    "timeslice": (
        replica("timeslice", "L4", vram_mib=11_000, workers=(Worker("gpu-l4-0", (1,)),)),
        {"nvidia.com/gpu": "1"},
    ),
    "kai": (replica("kai", vram_mib=20_000), {}),
    "hami": (replica("hami", vram_mib=20_000), {"nvidia.com/gpu": "1", HAMI_GPU_MEMORY: "20000"}),
    "amd": (
        replica("exclusive", "MI300X", workers=(Worker("gpu-mi300x-0", (3,)),)),
        {"amd.com/gpu": "1"},
    ),
}


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_each_mechanism_asks_for_exactly_its_gpu_resources_and_passes_strict_validation(mechanism: str) -> None:
    placement, resources = MECHANISMS[mechanism]
    objects = render(placement)
    for obj in objects:
        validate(obj)  # manifests() validated them already; the objects are also checked here on their own
    pod = only(objects, "Deployment")["spec"]["template"]
    assert container(pod)["resources"] == ({"requests": resources, "limits": resources} if resources else {})


def test_kai_pods_go_to_the_kai_scheduler_with_gpu_memory_in_mib_and_a_queue() -> None:
    single = only(render(MECHANISMS["kai"][0]), "Deployment")["spec"]["template"]
    assert single["spec"]["schedulerName"] == "kai-scheduler"
    assert single["metadata"]["annotations"] == {KAI_GPU_MEMORY: "20000"}
    assert single["metadata"]["labels"][KAI_QUEUE_LABEL] == "default-queue"
    double = replica("kai", tp=2, vram_mib=20_000, workers=(Worker("gpu-h100-0", (0, 1)),))
    pod = only(manifests(Plan((double,)), REGISTRY, CATALOG, kai_queue="inference"), "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {KAI_GPU_MEMORY: "20000", KAI_NUM_DEVICES: "2"}
    assert pod["metadata"]["labels"][KAI_QUEUE_LABEL] == "inference"


def test_pods_are_pinned_to_the_planned_nodes_and_gpu_product_and_tolerate_the_gpu_taint() -> None:
    placements = (
        replica("timeslice", "L4", vram_mib=11_000, workers=(Worker("gpu-l4-0", (0,)),)),
        replica("timeslice", "L4", vram_mib=11_000, workers=(Worker("gpu-l4-1", (2,)),), number=1),
    )
    deployment = only(render(*placements), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    spec = deployment["spec"]["template"]["spec"]
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == [
        {
            "matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-l4-0", "gpu-l4-1"]},
                {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L4", "NVIDIA-L4-SHARED"]},
            ]
        }
    ]
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists"},
        {"key": "amd.com/gpu", "operator": "Exists"},
    ]
    amd = only(render(MECHANISMS["amd"][0]), "Deployment")["spec"]["template"]["spec"]
    assert amd["containers"][0]["image"] == IMAGE_AMD
    product = amd["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert product[0]["matchExpressions"][1] == {
        "key": "amd.com/gpu.product-name",
        "operator": "In",
        "values": ["AMD_Instinct_MI300X_OAM", "AMD_Instinct_MI300X"],
    }
    assert {"key": "amd.com/gpu", "operator": "Exists"} in amd["tolerations"]


def test_the_server_runs_the_planned_variant_with_the_requests_sizing_and_records_the_plan() -> None:
    placement = replica(variant="fp8", vram_mib=30_000)
    objects = render(placement, requests=(Request("chat", "llama-3.1-8b-instruct", context=4096, concurrency=8),))
    deployment = only(objects, "Deployment")
    server = container(deployment["spec"]["template"])
    assert server["command"] == ["vllm", "serve"]
    args = server["args"]
    assert args[0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert (flag(args, "--quantization"), flag(args, "--tensor-parallel-size")) == ("fp8", "1")
    assert (flag(args, "--max-model-len"), flag(args, "--max-num-seqs")) == ("4096", "8")
    assert server["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    annotations = deployment["metadata"]["annotations"]
    assert annotations["egs.io/variant"] == "fp8"
    assert annotations["egs.io/vram-mib-per-gpu"] == "30000"
    assert json.loads(annotations["egs.io/placement"]) == [{"replica": 0, "workers": [["gpu-h100-0", [0]]]}]
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "egs"
    assert labels["egs.io/request"] == "chat"
    assert labels["app.kubernetes.io/name"] == "vllm"


def test_a_replica_over_several_nodes_becomes_a_leaderworkerset_behind_one_service() -> None:
    workers = (Worker("gpu-gb200-0", (0, 1, 2, 3)), Worker("gpu-gb200-1", (0, 1, 2, 3)))
    placement = replica(
        gpu_class="GB200", tp=4, vram_mib=107_182, workers=workers, model="llama-3.1-405b-instruct", request="frontier"
    )
    objects = render(placement)
    assert [o["kind"] for o in objects] == ["LeaderWorkerSet", "Service"]
    lws = objects[0]
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    template = lws["spec"]["leaderWorkerTemplate"]
    assert (lws["spec"]["replicas"], template["size"]) == (1, 2)
    leader, worker = container(template["leaderTemplate"]), container(template["workerTemplate"])
    assert flag(leader["args"], "--pipeline-parallel-size") == "2"
    assert flag(leader["args"], "--tensor-parallel-size") == "4"
    assert leader["resources"]["limits"] == worker["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert "ports" not in worker and "LWS_LEADER_ADDRESS" in worker["args"][0]
    service = objects[1]
    assert service["spec"]["selector"] == {"egs.io/request": "frontier", "app.kubernetes.io/component": "server"}
    assert template["leaderTemplate"]["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
    assert template["workerTemplate"]["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"


def test_replicas_of_different_shapes_get_one_workload_each_and_one_service() -> None:
    placements = (
        replica("exclusive", vram_mib=30_000),
        replica("mig", "A100-80GB", vram_mib=9_000, workers=(Worker("gpu-a100-mig-0", (), "1g.10gb"),), number=1),
    )
    objects = render(*placements)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Deployment", "chat-bf16-h100-80gb"),
        ("Deployment", "chat-bf16-a100-80gb"),
        ("Service", "chat"),
    ]


def test_the_validator_rejects_an_unknown_field_a_wrong_type_and_a_broken_lws_pod_template() -> None:
    objects = render(MECHANISMS["exclusive"][0])
    deployment = only(objects, "Deployment")
    broken = copy.deepcopy(deployment)
    container(broken["spec"]["template"])["gpus"] = 2
    with pytest.raises(ManifestError, match=r"spec\.template\.spec\.containers\.0: .*'gpus' was unexpected"):
        validate(broken)
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicas"] = "two"
    with pytest.raises(ManifestError, match=r"spec\.replicas: 'two' is not of type 'integer'"):
        validate(broken)

    workers = (Worker("gpu-gb200-0", (0, 1, 2, 3)), Worker("gpu-gb200-1", (0, 1, 2, 3)))
    lws = render(replica(gpu_class="GB200", tp=4, workers=workers, model="llama-3.1-405b-instruct"))[0]
    broken = copy.deepcopy(lws)
    broken["spec"]["leaderWorkerTemplate"]["groupSize"] = 2
    with pytest.raises(ManifestError, match=r"spec\.leaderWorkerTemplate: .*'groupSize' was unexpected"):
        validate(broken)
    broken = copy.deepcopy(lws)
    broken["spec"]["startupPolicy"] = "Eventually"
    with pytest.raises(ManifestError, match=r"spec\.startupPolicy: .Eventually. is not one of"):
        validate(broken)
    broken = copy.deepcopy(lws)
    container(broken["spec"]["leaderWorkerTemplate"]["workerTemplate"])["resources"]["limits"] = "4 GPUs"
    with pytest.raises(ManifestError, match=r"template\.spec\.containers\.0\.resources\.limits"):
        validate(broken)


@given(
    mechanism=st.sampled_from(["exclusive", "timeslice", "kai", "hami", "mig"]),
    fraction=st.floats(min_value=0.05, max_value=1.0),
)
def test_vllm_never_takes_more_vram_than_planned(mechanism: str, fraction: float) -> None:
    gpu = CATALOG.get("A100-80GB")
    mig = gpu.mig_profile("3g.40gb") if mechanism == "mig" else None
    visible_total = mig.memory_mib if mig else gpu.vram_mib
    planned = max(1, int(visible_total * fraction))
    workers = (Worker("gpu-a100-mig-0", (), "3g.40gb") if mig else Worker("gpu-a100-mig-0", (0,)),)
    placement = replica(mechanism, "A100-80GB", vram_mib=planned, workers=workers)
    args = container(only(render(placement), "Deployment")["spec"]["template"])["args"]
    utilization = float(flag(args, "--gpu-memory-utilization"))
    assert utilization == gpu_memory_utilization(placement, gpu)
    # HAMi's virtual GPU reports its nvidia.com/gpumem limit (the planned VRAM) as the total.
    seen = planned if mechanism == "hami" else visible_total
    assert 0 < utilization * seen <= planned


def test_names_are_dns_labels_and_distinct_names_stay_distinct() -> None:
    assert dns_label("chat") == "chat"
    odd = dns_label("Chat_Bot.V2")
    assert odd.startswith("chat-bot-v2-") and odd != dns_label("chat-bot-v2")
    assert dns_label("CHAT") != dns_label("chat")
    assert dns_label("7b-tests").startswith("egs-7b-tests")
    long = dns_label("a-very-long-request-name-" * 4)
    assert len(long) <= NAME_MAX and long[-1] != "-"
    objects = render(replica(request="Team A / Chat!"), requests=(Request("Team A / Chat!", "llama-3.1-8b-instruct"),))
    for obj in objects:
        assert obj["metadata"]["name"].startswith("team-a-chat-")


def test_a_plan_that_cannot_be_served_is_refused() -> None:
    # int8 without a pre-quantised checkpoint: the registry refuses it when read, so built here by hand
    qwen = REGISTRY.get("qwen2.5-14b-instruct")
    int8 = dataclasses.replace(qwen.variant("int8"), source=None, quantization=None)
    registry = Registry((dataclasses.replace(qwen, variants=(int8,)),))
    plan = Plan(placements=(replica(model="qwen2.5-14b-instruct", variant="int8"),))
    with pytest.raises(ManifestError, match="pre-quantised `source`"):
        manifests(plan, registry, CATALOG)
    with pytest.raises(ManifestError, match="needs NVIDIA GPUs"):
        render(replica("kai", "MI300X", workers=(Worker("gpu-mi300x-0", (0,)),)))


def test_a_variant_with_its_own_checkpoint_is_served_from_it() -> None:
    objects = render(replica(model="qwen2.5-14b-instruct", variant="int8"))
    deployment = only(objects, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "Qwen/Qwen2.5-14B-Instruct-GPTQ-Int8"
    assert args[args.index("--quantization") + 1] == "gptq"


def test_pods_carry_the_requests_own_tolerations_after_the_gpu_ones() -> None:
    toleration = Toleration("dedicated", "Equal", "batch", "NoSchedule")
    request = Request("chat", "llama-3.1-8b-instruct", tolerations=(toleration,))
    pod = only(render(replica(), requests=(request,)), "Deployment")["spec"]["template"]["spec"]
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists"},
        {"key": "amd.com/gpu", "operator": "Exists"},
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
    ]
