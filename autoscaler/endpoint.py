"""The `InferenceEndpoint` resource as plain data: what a user asked for, read and checked.

Part of the autoscaler's pure core. The CRD in `data/inferenceendpoint-crd.yaml` is the one statement
of the fields; this module validates objects against its openAPIV3Schema (closed, as the API server's
strict field validation is, plus the CEL rule `replicas.min <= replicas.max`) so that the endpoint
API answers bad input with the path of the field, and turns a valid object into an `Endpoint` that
`decide` reads. The controller and the API call it; nothing here calls Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from common.errors import InputError
from common.schema import LOADER, by_json_text, field_path
from scheduler.plan import Request

GROUP = "egs.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceEndpoint"
PLURAL = "inferenceendpoints"
CRD_PATH = Path(__file__).parent / "data" / "inferenceendpoint-crd.yaml"
PHASES = ("Pending", "Provisioning", "Ready", "Degraded", "Failed")
SCALING = ("egs", "keda", "hpa")
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class EndpointError(InputError):
    """An InferenceEndpoint the schema rejects; the message starts with the bad field's path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.problem = message


@dataclass(frozen=True)
class Endpoint:
    """One InferenceEndpoint as the controller decides on it."""

    namespace: str
    name: str
    model: str
    quality_floor: float
    min_replicas: int
    max_replicas: int
    gpu_classes: tuple[str, ...] = ()
    context_tokens: int | None = None
    concurrency: int | None = None
    throughput_per_replica: float | None = None
    """Requests per second one replica serves, when the endpoint declares it."""
    scaling: str = "egs"
    generation: int = 0
    uid: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def request(self, replicas: int) -> Request:
        """What the scheduler places for `replicas` replicas of this endpoint."""
        return Request(
            name=self.name,
            model=self.model,
            replicas=replicas,
            min_quality=self.quality_floor,
            namespace=self.namespace,
            context=self.context_tokens,
            concurrency=self.concurrency,
            gpu_classes=self.gpu_classes,
        )


def validate(obj: Any) -> None:
    """Raise `EndpointError` naming the first field of `obj` (a whole InferenceEndpoint) that is wrong."""
    problem = _first_problem(_validators()[0], obj)
    if problem is not None:
        raise EndpointError(*problem)
    replicas = obj["spec"]["replicas"]
    if replicas["min"] > replicas["max"]:
        raise EndpointError("spec.replicas.min", "replicas.min must not exceed replicas.max")


def parse(obj: Mapping[str, Any], checked: bool = False) -> Endpoint:
    """The `Endpoint` of a valid InferenceEndpoint object (raises `EndpointError` otherwise).

    `checked=True` trusts the API server's check of the object's metadata and status (the controller
    reads thousands every loop) and checks its spec only (`_spec_problem`): an object stored before its CRD's
    schema was tightened, or where the CRD has none, is refused on itself, not in the middle of a decide
    step (a minimum of -1 raised there, and no endpoint was decided).
    """
    if checked:
        _check_spec(obj)
    else:
        validate(obj)
    try:
        return _read(obj)
    except (KeyError, TypeError, ValueError) as e:
        validate(obj)  # names the field
        raise EndpointError("spec", f"cannot be read: {e}") from e


def _check_spec(obj: Mapping[str, Any]) -> None:
    """Raise `EndpointError` naming the first field of `obj`'s spec that is wrong."""
    problem = _spec_problem(obj.get("spec"))
    if problem is not None:
        raise EndpointError(*problem)


@by_json_text(held=8192)
def _spec_problem(spec: Any) -> tuple[str, str] | None:
    """The first wrong field of a spec and what is wrong with it, or None. Remembered: a spec seldom changes
    (3.5 us a spec to key it, 36 to check it)."""
    return _first_problem(_validators()[1], spec, "spec")


def _first_problem(validator: Draft202012Validator, obj: Any, *at: str) -> tuple[str, str] | None:
    """The path (under `at`) of the first field of `obj`, in document order, that `validator` rejects, and why."""
    first = min(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path], default=None)
    return None if first is None else (field_path(*at, *first.absolute_path) or "(root)", first.message)


def _read(obj: Mapping[str, Any]) -> Endpoint:
    meta, spec = obj.get("metadata") or {}, obj["spec"]
    if spec["replicas"]["min"] > spec["replicas"]["max"]:
        raise EndpointError("spec.replicas.min", "replicas.min must not exceed replicas.max")
    return Endpoint(
        namespace=meta.get("namespace", "default"),
        name=meta["name"],
        model=spec["model"],
        quality_floor=float(spec["qualityFloor"]),
        min_replicas=spec["replicas"]["min"],
        max_replicas=spec["replicas"]["max"],
        gpu_classes=tuple(spec.get("gpuClasses", ())),
        context_tokens=spec.get("contextTokens"),
        concurrency=spec.get("concurrency"),
        throughput_per_replica=spec.get("throughputPerReplica"),
        scaling=spec.get("scaling", "egs"),
        generation=int(meta.get("generation", 0)),
        uid=meta.get("uid", ""),
    )


def manifest(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A new InferenceEndpoint object with `spec` (validated; raises `EndpointError`)."""
    obj = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}}
    obj["spec"] = dict(spec)
    validate(obj)
    return obj


def crd() -> dict[str, Any]:
    """The CRD as a new dict, read by libyaml where PyYAML has it (`LOADER`: PyYAML's own parser took
    15-30 ms of a start for this one file)."""
    loaded: dict[str, Any] = yaml.load(CRD_PATH.read_text(), Loader=LOADER)
    return loaded


def schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served version, closed like strict field validation."""
    version = next(v for v in crd()["spec"]["versions"] if v["name"] == VERSION)
    root: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    _close(root["properties"]["spec"])
    root["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            # a DNS-1123 subdomain, the rule the API server applies to custom object names
            "name": {
                "type": "string",
                "maxLength": 253,
                "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
            },
            "namespace": {"type": "string"},
        },
    }
    return root


CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_APPLY = "kubectl apply --server-side -f helm/egs/crds/ (or the packaged autoscaler/data/inferenceendpoint-crd.yaml)"
"""How a cluster gets this EGS's CRD: Helm installs `crds/` once and never upgrades them."""


def stale_status_fields(served: Mapping[str, Any]) -> list[str]:
    """The status fields this EGS's CRD declares that the served CRD `served` lacks (dotted paths). The
    controller applies statuses with strict field validation, so the API server refuses a whole status that
    holds one of them: a CRD older than the controller (Helm never upgrades it) fails every such write."""
    versions = {v.get("name"): v for v in (served.get("spec") or {}).get("versions") or []}
    if VERSION not in versions:
        return [f"version {VERSION}"]
    root = ((versions[VERSION].get("schema") or {}).get("openAPIV3Schema") or {}).get("properties") or {}
    wanted = schema()["properties"]["status"]
    return _missing(root.get("status") or {}, wanted, "status") if "status" in root else ["status"]


def _missing(served: Mapping[str, Any], wanted: Mapping[str, Any], path: str) -> list[str]:
    """The fields under `wanted` (an OpenAPI v3 schema) that `served` does not declare, where it keeps no
    unknown field."""
    if served.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    declared = served.get("properties") or {}
    for name, child in (wanted.get("properties") or {}).items():
        at = f"{path}.{name}"
        found += [at] if name not in declared else _missing(declared[name], child, at)
    for key, mark in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(wanted.get(key), Mapping) and isinstance(served.get(key), Mapping):
            found += _missing(served[key], wanted[key], path + mark)
    return found


def _close(node: dict[str, Any]) -> None:
    if "properties" in node:
        node.setdefault("additionalProperties", False)
        for child in node["properties"].values():
            _close(child)
    if isinstance(node.get("items"), dict):
        _close(node["items"])


@cache
def _validators() -> tuple[Draft202012Validator, Draft202012Validator]:
    """The whole object's validator and its spec's, from one read of the CRD."""
    root = schema()
    return Draft202012Validator(root), Draft202012Validator(root["properties"]["spec"])
