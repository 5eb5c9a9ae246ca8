"""Kubernetes objects for a plan: the vLLM servers that run each placed request, and its Service.

Part of the scheduler's pure core: `manifests(plan, registry, catalog, requests)` returns plain dicts
(the objects `kubectl apply` and server-side apply take); `egs plan --manifests DIR` writes them, and
the controller's Kubernetes adapter will apply them. Nothing here calls Kubernetes.

Per request, replicas of one shape (variant, GPU class, sharing mechanism, tensor-parallel GPUs,
nodes per replica, MIG profile, planned VRAM) become one workload: a Deployment, or a
LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) when a replica spans several nodes (vLLM over Ray:
tensor parallel within a node, pipeline parallel across nodes). Each request gets one Service in
front of its server pods (Deployment pods and LWS leaders).

The plan is the limit the objects keep to:

- the pods may land only on the nodes the plan chose (required node affinity on
  `kubernetes.io/hostname`) and on the GPU product the catalogue names;
- GPUs are requested per sharing mechanism (exclusive / timeslice: `nvidia.com/gpu` or
  `amd.com/gpu`; mig: the instance's resource, `nvidia.com/mig-<profile>`; partition: the AMD
  device plugin's `amd.com/gpu` or `amd.com/<mode>`; kai: KAI Scheduler's `gpu-memory` annotation;
  hami: `nvidia.com/gpumem`), requests equal to limits;
- the pods tolerate the GPU taints placement assumed they tolerate (`nvidia.com/gpu`,
  `amd.com/gpu`) and the request's own tolerations;
- vLLM's `--gpu-memory-utilization` is the planned VRAM over the memory the server sees (the GPU,
  its MIG instance or AMD partition, or HAMi's virtual GPU), rounded down, so that it never takes more than planned;
- a tensor-parallel replica over PCIe runs with `--disable-custom-all-reduce`: vLLM's own
  all-reduce kernel needs peer links (it turns itself off with a warning beyond two PCIe GPUs, and
  on two it depends on PCIe P2P the platform may not give), so NCCL carries it, as the plan's
  throughput factor assumes; the workload records the interconnect and that factor.

Every object is validated before it is returned: built-in kinds against Kubernetes' own schemas in
strict mode (kubernetes-validate, offline), LeaderWorkerSets against the LWS CRD's openAPIV3Schema
vendored in `data/crds/`, with their pod templates checked as Kubernetes PodTemplateSpecs. A plan
that cannot be rendered (a precision vLLM cannot load from the model's checkpoint, a sharing
mechanism the GPU's vendor lacks) raises `ManifestError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import jsonschema
import yaml

from common.errors import InputError
from scheduler._schema import DATA
from scheduler.catalog import Catalog, GpuModel
from scheduler.fleet import GPU_TOLERATIONS, slices_serve
from scheduler.inventory import AMD_PARTITION_LABEL, PARTITIONED_MODES, partitions_per_gpu
from scheduler.plan import Placement, Plan, Request
from scheduler.registry import PRECISION_FLAGS, Model, Registry, Variant

KUBERNETES_VERSION = "1.31"
"""The Kubernetes version whose schemas the objects are validated against."""

IMAGE_NVIDIA = "vllm/vllm-openai:v0.9.0.1"
IMAGE_AMD = "rocm/vllm:rocm6.4.1_vllm_0.9.0.1_20250605"
"""The same vLLM release for both vendors, so that one set of server flags holds for both."""

PORT = 8000
RAY_PORT = 6379
PROBE_PERIOD_S = 10
NAME_MAX = 45
"""Longest workload name: a LeaderWorkerSet names its StatefulSets `<name>-<group>` and their pods
`<name>-<group>-<worker>`, and the StatefulSet's revision label adds 11 characters; at 45 every
derived name stays inside the 63 of a DNS label."""

LWS_API = "leaderworkerset.x-k8s.io/v1"
KAI_SCHEDULER = "kai-scheduler"
KAI_QUEUE_LABEL = "kai.scheduler/queue"
KAI_GPU_MEMORY = "gpu-memory"
KAI_NUM_DEVICES = "gpu-fraction-num-devices"
"""KAI Scheduler's names (NVIDIA/KAI-Scheduler docs/gpu-sharing/gpu-memory.yaml and its constants
package): `gpu-memory` is MiB per device, `gpu-fraction-num-devices` asks for several devices."""
HAMI_GPU_MEMORY = "nvidia.com/gpumem"
"""HAMi's per-GPU memory limit in MiB (Project-HAMi/HAMi examples/nvidia/default_use.yaml)."""
HAMI_BINPACK = {"hami.io/node-scheduler-policy": "binpack", "hami.io/gpu-scheduler-policy": "binpack"}
"""HAMi's per-pod scheduling policy (its default spreads a node's pods over its GPUs): packed, on the
GPU with the least memory left, as placement plans them, so that the room left for the next replica
is where the plan (and a 201's answer) expects it."""
HF_TOKEN_SECRET = "hf-token"
"""Secret (key `token`) holding a Hugging Face token for gated models; optional."""


RECORDED = "egs.io/"

_LWS_SCHEMA = DATA / "crds" / "leaderworkerset.x-k8s.io_v1.openapi.yaml"

# LWS injects LWS_LEADER_ADDRESS and LWS_GROUP_SIZE into every pod of a group. The leader starts the
# Ray head and waits until every worker has joined before vLLM starts, since vLLM sizes its
# pipeline from the Ray cluster it finds; workers retry until the head answers.
_WAIT_FOR_WORKERS = (
    "until python3 -c \"import os, ray; ray.init(address='auto', logging_level='ERROR'); "
    "exit(sum(n['Alive'] for n in ray.nodes()) < int(os.environ['LWS_GROUP_SIZE']))\"; do sleep 5; done"
)
_JOIN_LEADER = f'until ray start --address="$LWS_LEADER_ADDRESS:{RAY_PORT}" --block; do sleep 5; done'


class ManifestError(InputError):
    """A plan that cannot be rendered, or an object that fails its schema; the message says which."""


def manifests(
    plan: Plan,
    registry: Registry,
    catalog: Catalog,
    requests: Sequence[Request] = (),
    image_nvidia: str = IMAGE_NVIDIA,
    image_amd: str = IMAGE_AMD,
    kai_queue: str = "default-queue",
    validated: bool = True,
) -> list[dict[str, Any]]:
    """The validated objects serving every placed replica of `plan`.

    `requests` gives each endpoint's context and concurrency (the model's serving defaults for a
    request not among them); `kai_queue` is the KAI queue of pods on KAI-shared GPUs. `validated=False`
    skips the schema check (about 0.1 s an object) for a caller whose API server checks each object
    anyway: the controller applies with strict field validation, every loop.
    """
    sizing = {r.name: r for r in requests}
    objects: list[dict[str, Any]] = []
    for name, placements in _by_request(plan.placements):
        request = sizing.get(name, Request(name, placements[0].model, namespace=placements[0].namespace))
        used: set[str] = set()
        for group in _by_shape(placements):
            model = registry.get(group[0].model)
            gpu = catalog.get(group[0].gpu_class)
            image = image_amd if gpu.vendor == "amd" else image_nvidia
            server = _Server(request, group, model, model.variant(group[0].variant), gpu, image, kai_queue)
            name = numbered(server.workload_name, used)
            used.add(name)
            objects.append(_workload(server, name))
        objects.append(_service(request))
    for obj in objects if validated else ():
        validate(obj)
    return objects


def validate(obj: Mapping[str, Any]) -> None:
    """Raise `ManifestError` unless `obj` passes its schema: Kubernetes' own in strict mode (unknown
    fields rejected), or for a LeaderWorkerSet the LWS CRD's with its pod templates as PodTemplateSpecs."""
    # Imported here, not above: the schemas are 108 MB that the controller, which builds objects with
    # validated=False, leaves out of its image (the `plan` extra, not `controller`).
    import kubernetes_validate  # type: ignore[import-untyped]

    what = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        if obj.get("apiVersion") == LWS_API and obj.get("kind") == "LeaderWorkerSet":
            jsonschema.validate(obj, _lws_schema(), cls=jsonschema.Draft202012Validator)
            templates = obj["spec"]["leaderWorkerTemplate"]
            for role in ("leaderTemplate", "workerTemplate"):
                if role in templates:
                    template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": obj["metadata"]}
                    template["template"] = templates[role]
                    kubernetes_validate.validate(template, KUBERNETES_VERSION, strict=True)
        else:
            kubernetes_validate.validate(dict(obj), KUBERNETES_VERSION, strict=True)
    except jsonschema.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path) or "(root)"
        raise ManifestError(f"{what}: {where}: {e.message}") from e
    except kubernetes_validate.SchemaNotFoundError as e:
        raise ManifestError(f"{what}: {e.message}") from e


def gpu_memory_utilization(placement: Placement, gpu: GpuModel) -> float:
    """The share of the memory vLLM sees that the plan gave it, rounded down to the flag's two decimals.

    vLLM sees the whole GPU, except in a MIG instance (its memory) and under HAMi, whose virtual GPU
    reports `nvidia.com/gpumem` (the planned VRAM) as its total.
    """
    visible = _visible_mib(placement, gpu)
    return math.floor(100 * min(placement.vram_mib_per_gpu, visible) / visible) / 100


def dns_label(text: str, max_len: int = NAME_MAX) -> str:
    """`text` as a DNS-1035 label of at most `max_len` characters (valid for every object name and
    label value); a name that had to change gets a hash of the original, so that two requests never
    share one."""
    slug = _slug(text)
    if slug == text and len(slug) <= max_len:
        return slug
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{slug[: max_len - len(digest) - 1].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class _Server:
    """What one workload runs: a group of same-shape replicas of one request."""

    request: Request
    replicas: tuple[Placement, ...]
    model: Model
    variant: Variant
    gpu: GpuModel
    image: str
    kai_queue: str

    @property
    def shape(self) -> Placement:
        return self.replicas[0]

    @property
    def label(self) -> str:
        return dns_label(self.request.name)

    @property
    def workload_name(self) -> str:
        return workload_name(self.request.name, self.variant.name, self.gpu.name)

    @property
    def nodes(self) -> list[str]:
        return sorted({w.node for p in self.replicas for w in p.workers})


def _by_request(placements: Sequence[Placement]) -> Iterator[tuple[str, list[Placement]]]:
    grouped: dict[str, list[Placement]] = {}
    for p in placements:
        grouped.setdefault(p.request, []).append(p)
    yield from grouped.items()


def _by_shape(placements: Sequence[Placement]) -> list[tuple[Placement, ...]]:
    """Replicas that one pod template serves: everything but the nodes and GPU indices alike."""
    grouped: dict[tuple[object, ...], list[Placement]] = {}
    for p in sorted(placements, key=lambda p: p.replica):
        worker = p.workers[0]
        key: tuple[object, ...] = (p.variant, p.gpu_class, p.sharing, p.tp, len(p.workers), worker.mig_profile)
        key += (worker.resource, p.vram_mib_per_gpu)
        grouped.setdefault(key, []).append(p)
    return [tuple(g) for g in grouped.values()]


def _workload(server: _Server, name: str) -> dict[str, Any]:
    shape = server.shape
    metadata = {
        "name": name,
        "namespace": server.request.namespace,
        "labels": _labels(server.label),
        "annotations": _recorded(server),
    }
    selector = {"egs.io/workload": name}
    rollout = {"maxSurge": 0, "maxUnavailable": 1}  # a surge pod would need GPUs the plan did not reserve
    if not shape.multi_node:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": len(server.replicas),
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": rollout},
                "template": _pod_template(server, name, "server"),
            },
        }
    return {
        "apiVersion": LWS_API,
        "kind": "LeaderWorkerSet",
        "metadata": metadata,
        "spec": {
            "replicas": len(server.replicas),
            "startupPolicy": "LeaderCreated",
            "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": rollout},
            "leaderWorkerTemplate": {
                "size": len(shape.workers),
                # One lost pod breaks the Ray cluster and the pipeline: restart the group together.
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": _pod_template(server, name, "leader"),
                "workerTemplate": _pod_template(server, name, "worker"),
            },
        },
    }


def _pod_template(server: _Server, workload: str, role: str) -> dict[str, Any]:
    """The pod of every mechanism and role: `server` (a Deployment's pod), `leader` or `worker` (LWS)."""
    shape, gpu = server.shape, server.gpu
    serves = role != "worker"
    # The Service selects `server` pods: a Deployment's pods and LWS leaders, not LWS workers.
    component = "server" if serves else "worker"
    labels = {**_labels(server.label), "egs.io/workload": workload, "app.kubernetes.io/component": component}
    # The plan is recorded on the workload, not here: a new GPU index must not restart every pod.
    annotations: dict[str, str] = {}
    if shape.sharing == "kai":
        labels[KAI_QUEUE_LABEL] = server.kai_queue
        annotations[KAI_GPU_MEMORY] = str(shape.vram_mib_per_gpu)
        if shape.tp > 1:
            annotations[KAI_NUM_DEVICES] = str(shape.tp)
    elif shape.sharing == "hami":
        annotations |= HAMI_BINPACK
    gpus = _gpu_resources(shape, gpu)
    container: dict[str, Any] = {
        "name": "vllm",
        "image": server.image,
        **_command(server, role),
        "env": [
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": HF_TOKEN_SECRET, "key": "token", "optional": True}},
            }
        ],
        "resources": {"requests": dict(gpus), "limits": dict(gpus)} if gpus else {},
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
    }
    if serves:
        container["ports"] = [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
        container["readinessProbe"] = _health_probe(3)
        # Twice the registry's load-time estimate before a server that never came up is restarted.
        container["startupProbe"] = _health_probe(math.ceil(2 * server.variant.load_seconds / PROBE_PERIOD_S))
    spec: dict[str, Any] = {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": _node_selector(server)}},
        "tolerations": _tolerations(server.request),
        "containers": [container],
        # Tensor-parallel workers exchange activations through shared memory; the default 64 MiB is too small.
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}],
    }
    if shape.sharing == "kai":
        spec["schedulerName"] = KAI_SCHEDULER
    metadata: dict[str, Any] = {"labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": spec}


def _tolerations(request: Request) -> list[dict[str, str]]:
    """The GPU taints every EGS pod tolerates (what placement assumed, `scheduler.fleet`), then the request's."""
    rendered = []
    for t in (*GPU_TOLERATIONS, *request.tolerations):
        toleration = {"key": t.key, "operator": t.operator, "value": t.value, "effect": t.effect}
        rendered.append({k: v for k, v in toleration.items() if v})
    return rendered


def _health_probe(failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": PROBE_PERIOD_S,
        "failureThreshold": failures,
    }


def _command(server: _Server, role: str) -> dict[str, list[str]]:
    if role == "worker":
        return {"command": ["/bin/sh", "-c"], "args": [_JOIN_LEADER]}
    serve = ["vllm", "serve", *_vllm_args(server)]
    if role == "server":
        return {"command": serve[:2], "args": serve[2:]}
    pipeline = ["--pipeline-parallel-size", str(len(server.shape.workers)), "--distributed-executor-backend", "ray"]
    script = f"ray start --head --port={RAY_PORT} && {_WAIT_FOR_WORKERS} && exec {shlex.join(serve + pipeline)}"
    return {"command": ["/bin/sh", "-c"], "args": [script]}


def _vllm_args(server: _Server) -> list[str]:
    shape, model, variant, request = server.shape, server.model, server.variant, server.request
    if variant.source:
        checkpoint = variant.source
        flags: tuple[str, ...] = ("--quantization", variant.quantization) if variant.quantization else ()
    elif variant.precision in PRECISION_FLAGS:
        checkpoint, flags = model.source or model.name, PRECISION_FLAGS[variant.precision]
    else:
        raise ManifestError(
            f"request {request.name!r}: vLLM cannot serve {model.name} {variant.name} ({variant.precision}) from "
            f"{model.source or model.name}; give the variant a pre-quantised `source` in the registry"
        )
    args = [
        checkpoint,
        "--served-model-name",
        model.name,
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        "--tensor-parallel-size",
        str(shape.tp),
        *flags,
        "--max-model-len",
        str(request.context or model.serving.context_tokens),
        "--max-num-seqs",
        str(request.concurrency or model.serving.concurrency),
        "--gpu-memory-utilization",
        f"{gpu_memory_utilization(shape, server.gpu):.2f}",
    ]
    if (variant.kv_cache_dtype or model.serving.kv_cache_dtype) == "fp8":
        args += ["--kv-cache-dtype", "fp8"]
    if shape.tp > 1 and not server.gpu.peer_links:
        args.append("--disable-custom-all-reduce")
    return args


def _gpu_resources(shape: Placement, gpu: GpuModel) -> dict[str, str]:
    """Extended resources per mechanism (KAI asks by annotation instead, so it has none)."""
    if gpu.vendor == "amd" and shape.sharing not in ("exclusive", "partition"):
        raise ManifestError(f"request {shape.request!r}: {shape.sharing} sharing needs NVIDIA GPUs, not {gpu.name}")
    whole = "amd.com/gpu" if gpu.vendor == "amd" else "nvidia.com/gpu"
    if shape.sharing in ("mig", "partition"):
        # The instance's own resource: nvidia.com/mig-<profile> (MIG mixed), nvidia.com/gpu (MIG
        # single), amd.com/gpu or amd.com/<mode> (AMD device plugin, single or mixed naming).
        worker = shape.workers[0]
        return {worker.resource or f"nvidia.com/mig-{worker.mig_profile}": "1"}
    if shape.sharing == "kai":
        return {}
    if shape.sharing == "hami":
        return {whole: str(shape.tp), HAMI_GPU_MEMORY: str(shape.vram_mib_per_gpu)}
    # exclusive: whole GPUs; timeslice: replicas of the device plugin, one per tensor-parallel rank.
    return {whole: str(shape.tp)}


def _visible_mib(placement: Placement, gpu: GpuModel) -> int:
    if placement.sharing == "mig":
        profile = gpu.mig_profile(placement.workers[0].mig_profile or "")
        if profile is None:
            raise ManifestError(f"request {placement.request!r}: {gpu.name} has no MIG profile in the catalogue")
        return profile.memory_mib
    if placement.sharing == "partition":
        parts = partitions_per_gpu(gpu, placement.workers[0].mig_profile or "")
        if isinstance(parts, str):
            raise ManifestError(f"request {placement.request!r}: {parts}")
        return gpu.vram_mib // parts
    if placement.sharing == "hami":
        return placement.vram_mib_per_gpu
    return gpu.vram_mib


def _node_selector(server: _Server) -> dict[str, Any]:
    """The nodes the plan chose, and the catalogue's product (time-sliced NVIDIA nodes add -SHARED, which a
    pod of several GPUs keeps off: the device plugin may hand it slices of one GPU, or refuse it). A per-node
    value here is left out of the template hash (`autoscaler.decide.workloads._placement_free`), or a move
    reads as a spec change."""
    if server.gpu.vendor == "amd":
        key, products = "amd.com/gpu.product-name", list(server.gpu.products)
    else:
        suffixes = ("", "-SHARED") if slices_serve(server.shape.tp) else ("",)
        key, products = "nvidia.com/gpu.product", [p + s for p in server.gpu.products for s in suffixes]
    expressions = [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": server.nodes},
        {"key": key, "operator": "In", "values": products},
    ]
    if server.shape.sharing == "partition" and server.shape.workers[0].resource == "amd.com/gpu":
        # Under the device plugin's single naming an amd.com/gpu is a partition only in this mode.
        mode = server.shape.workers[0].mig_profile or ""
        expressions.append({"key": AMD_PARTITION_LABEL, "operator": "In", "values": [mode]})
    elif server.gpu.vendor == "amd" and server.shape.sharing != "partition":
        # Whole GPUs, and a partitioned node's amd.com/gpu is a partition: keep off partitioned nodes
        # (NotIn also takes the nodes the labeller gives no mode).
        expressions.append({"key": AMD_PARTITION_LABEL, "operator": "NotIn", "values": list(PARTITIONED_MODES)})
    return {"nodeSelectorTerms": [{"matchExpressions": expressions}]}


def _service(request: Request) -> dict[str, Any]:
    label = dns_label(request.name)
    common = {"egs.io/request": label, "app.kubernetes.io/component": "server"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": label,
            "namespace": request.namespace,
            "labels": _labels(label),
            "annotations": {f"{RECORDED}request-name": request.name, f"{RECORDED}model": request.model},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": common,
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _labels(label: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": label,
        "app.kubernetes.io/managed-by": "egs",
        "egs.io/request": label,
    }


def _recorded(server: _Server) -> dict[str, str]:
    """The plan, recorded on the objects so that the controller can read back what it applied."""
    shape = server.shape
    recorded = {
        "request-name": server.request.name,
        "model": server.model.name,
        "variant": server.variant.name,
        "precision": server.variant.precision,
        "gpu-class": server.gpu.name,
        "sharing": shape.sharing,
        "tensor-parallel": str(shape.tp),
        "nodes-per-replica": str(len(shape.workers)),
        "vram-mib-per-gpu": str(shape.vram_mib_per_gpu),
        "placement": json.dumps(
            [{"replica": p.replica, "workers": [[w.node, list(w.gpus)] for w in p.workers]} for p in server.replicas],
            separators=(",", ":"),
        ),
    }
    if shape.workers[0].mig_profile:
        recorded["mig-profile"] = shape.workers[0].mig_profile
    if shape.tp > 1:
        recorded["interconnect"] = server.gpu.interconnect
        recorded["throughput-factor"] = f"{shape.throughput:g}"
    return {f"{RECORDED}{k}": v for k, v in recorded.items()}


@lru_cache(maxsize=16_384)
def _slug(text: str) -> str:
    """Lower-case letters, digits and single '-', starting with a letter; remembered (the 16,384 texts used last:
    a serving loop at 1,000 endpoints asks for 13,000 slugs of the same few thousand names, 2 us each)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug if slug[:1].isalpha() else f"egs-{slug}".rstrip("-")


def _fit(name: str) -> str:
    return name if len(name) <= NAME_MAX else dns_label(name)


def workload_name(request: str, variant: str, gpu_class: str) -> str:
    """The name of a request's workload of one variant and GPU class, before any `-2`, `-3` (`numbered`)."""
    return _fit(f"{dns_label(request)}-{_slug(variant)}-{_slug(gpu_class)}")


def numbered(name: str, taken: Container[str]) -> str:
    """`name`, else the first of `name-2`, `name-3`... not `taken`: a request's two shapes of one variant
    and class, and the controller's workload that a consolidation makes beside the one it replaces
    (`autoscaler.decide.workloads.named`), are named by this one rule."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = _fit(f"{name}-{n}")
    return candidate


@cache
def _lws_schema() -> dict[str, Any]:
    """The vendored CRD schema, closed like the API server's strict field validation: an object
    that lists its properties rejects others unless it preserves unknown fields."""
    schema: dict[str, Any] = yaml.safe_load(_LWS_SCHEMA.read_text())

    def close(node: dict[str, Any]) -> None:
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for child in node.get("properties", {}).values():
            close(child)

    close(schema)
    return schema
