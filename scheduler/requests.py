"""Inference requests read from a file: which endpoints to serve, how many replicas, at what quality.

Part of the scheduler's pure core, beside the registry and the inventory: `egs plan --requests FILE`
reads a requests file (format: `scheduler/data/requests.schema.json`; example:
`examples/requests.yaml`) with `load_requests(path, registry, catalog)` and hands the `Request`s to
`scheduler.placement.place`. In the cluster the same fields arrive as InferenceEndpoint resources;
this file is how a plan is tried before anything is applied.

Beyond the schema, a request must name a model of the registry and GPU classes of the catalogue,
may not ask for more context than the model supports, and names are unique. Bad input raises
`RequestsError` naming the path of the bad field; nothing is half-loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.errors import InputError, naming
from common.schema import field_path, read_yaml
from scheduler._schema import check
from scheduler.catalog import Catalog, unknown_class
from scheduler.plan import Request, Toleration
from scheduler.registry import Registry, RegistryError


class RequestsError(InputError):
    """A requests file that cannot be used; the message names the bad field."""


def load_requests(path: str | Path, registry: Registry, catalog: Catalog) -> tuple[Request, ...]:
    with naming(path):
        return parse_requests(read_yaml(path, RequestsError), registry, catalog)


def parse_requests(raw: Any, registry: Registry, catalog: Catalog) -> tuple[Request, ...]:
    """The requests in `raw`, each checked against `registry` and `catalog`."""
    check(raw, "requests.schema.json", RequestsError, "the requests file")
    requests = tuple(_request(entry, i, registry, catalog) for i, entry in enumerate(raw["requests"]))
    for i, request in enumerate(requests):
        if request.name in (r.name for r in requests[:i]):
            raise RequestsError(f"{field_path('requests', i, 'name')}: duplicate request name {request.name!r}")
    return requests


def _request(raw: dict[str, Any], i: int, registry: Registry, catalog: Catalog) -> Request:
    where = ("requests", i)
    try:
        model = registry.get(raw["model"])
    except RegistryError as e:
        raise RequestsError(f"{field_path(*where, 'model')}: {e}") from None
    for j, name in enumerate(raw.get("gpu_classes", ())):
        if name not in catalog:
            raise RequestsError(
                f"{field_path(*where, 'gpu_classes', j)}: {unknown_class(name, (g.name for g in catalog))}"
            )
    context = raw.get("context")
    limit = model.architecture.max_context
    if context is not None and limit is not None and context > limit:
        raise RequestsError(
            f"{field_path(*where, 'context')}: {context} tokens is more than {model.name}'s max_context of {limit}"
        )
    return Request(
        name=raw["name"],
        model=model.name,
        replicas=int(raw.get("replicas", 1)),
        min_quality=float(raw.get("min_quality", 0.0)),
        namespace=raw.get("namespace", "default"),
        context=int(context) if context is not None else None,
        concurrency=int(raw["concurrency"]) if "concurrency" in raw else None,
        gpu_classes=tuple(raw.get("gpu_classes", ())),
        tolerations=tuple(_toleration(t, (*where, "tolerations", j)) for j, t in enumerate(raw.get("tolerations", ()))),
    )


def _toleration(raw: dict[str, Any], where: tuple[str | int, ...]) -> Toleration:
    """A toleration as Kubernetes defaults it: operator Equal unless given."""
    operator = raw.get("operator", "Equal")
    if operator == "Exists" and raw.get("value"):
        raise RequestsError(f"{field_path(*where, 'value')}: a toleration with operator Exists takes no value")
    if not raw.get("key") and operator != "Exists":
        raise RequestsError(f"{field_path(*where, 'operator')}: a toleration without a key needs operator Exists")
    return Toleration(raw.get("key", ""), operator, raw.get("value", ""), raw.get("effect", ""))
