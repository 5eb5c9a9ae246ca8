"""A STAND-IN for a Kubernetes API server: kmock's emulator, taught what a real API server does.

For the tests and `egs demo`, where no cluster runs (no kube-apiserver can be installed here):
kmock serves the real REST paths, so the controller's Kubernetes adapter runs its real code through
the official `kubernetes` client. kmock is a database over HTTP, and where it falls short of a real
server this module teaches it (never the adapter):

- server-side apply of an object that does not exist creates it (kmock answers 404);
- a write sets `uid`, `namespace`, `creationTimestamp`, `resourceVersion` and `generation` (bumped
  when `spec` changes), and a patch carrying `metadata.resourceVersion` that is not the current one
  is refused with 409, as optimistic concurrency is;
- writes to the `status` subresource change only `status`;
- server-side apply tracks field managers (`owners`, a real server's managedFields, kept here rather than in
  the object): per object and (manager, operation, subresource) the fields it last set. An apply merges maps
  by key, keyed lists by their keys (`LIST_KEYS`: containers, env, volumes, ports, ... as the Kubernetes
  schema says; every other list, tolerations and node selector terms included, is atomic, replaced whole)
  and then drops each field its manager applied before and no longer applies, unless set by another entry
  (another manager, or the same one's writes that are not applies); forced, it takes from the others each
  field whose value it changes. A write that is not an apply (create, merge patch, `put` and `patch` here,
  which write as the manager `stand-in`) keeps its merge semantics and takes the fields it changed, as a
  real server's Update operation does. Each stored object shows its managers as `metadata.managedFields`
  (FieldsV1, as a real server returns them). Simplified: every apply is taken as forced (EGS forces each),
  `finalizers` (a set) is atomic, a field removed under a map or item another manager still has a field in
  leaves that parent in place, and nothing is defaulted but a Deployment's `spec.replicas`: 1 when a write
  leaves it absent (owned by no manager), as the API server's defaulting does; so an apply that stops
  setting the replicas it alone owned shrinks the Deployment to 1;
- lists (and a watch's first ADDED events) come in etcd's key order, by namespace and then name, never in the
  order the objects were made, so a client that keeps the listed order keeps an order of its own making;
- lists honour equality label selectors and `status.phase` field selectors (`=`, `==`, `!=`, several
  joined by commas, all of which must hold);
- deleting an object garbage-collects the objects that name it in `ownerReferences`;
- TokenReview and SubjectAccessReview answer from `tokens` and `grants` (who may do what); a token
  listed in `audiences` is valid only for those, and a review naming audiences is answered, as a
  real server does, with those of them the token is valid for (a token not listed: all asked);
- it holds the InferenceEndpoint CRD this EGS ships (`customresourcedefinitions`), as a cluster EGS is installed
  in does (the controller checks it on start); a test `put`s an older one to play a CRD Helm did not upgrade;
- each request's arrival is timed (`arrived`), which kmock does not do;
- `fail(method, status, times)` makes the next requests fail before they change anything;
- watches stream every change, whoever made it (a write through the API, or `put`, `patch` and
  `delete` here, which play the other controllers and the kubelet), filtered by namespace and label
  selector; a watch from a `resourceVersion` starts with the changes after it (this stand-in keeps no
  history, so it starts at the present), one without starts with every object ADDED, and
  `timeoutSeconds` ends the stream, as a real server does, and so does stopping the server (which
  would otherwise wait out every open watch);
- reads and writes are answered here rather than by kmock's reaction matching, whose cost grows
  with every request served (a benchmark would measure the stand-in).

`KubeCluster` runs the emulator on 127.0.0.1 in a thread of its own, so synchronous code (the adapter,
or the `egs` processes through a kubeconfig) talks to it as to any server.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import enums, rendering
from kmock._internal.k8s import KubernetesError
from kubernetes import client

from autoscaler.endpoint import crd

CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
RESOURCES = {
    "v1/nodes": {"kind": "Node", "namespaced": False},
    "v1/pods": {"kind": "Pod", "namespaced": True},
    "v1/services": {"kind": "Service", "namespaced": True},
    "apps/v1/deployments": {"kind": "Deployment", "namespaced": True},
    "policy/v1/poddisruptionbudgets": {"kind": "PodDisruptionBudget", "namespaced": True},
    "scheduling.k8s.io/v1/priorityclasses": {"kind": "PriorityClass", "namespaced": False},
    "coordination.k8s.io/v1/leases": {"kind": "Lease", "namespaced": True},
    "events.k8s.io/v1/events": {"kind": "Event", "namespaced": True},
    "egs.dev/v1alpha1/inferenceendpoints": {"kind": "InferenceEndpoint", "namespaced": True},
    "leaderworkerset.x-k8s.io/v1/leaderworkersets": {"kind": "LeaderWorkerSet", "namespaced": True},
    "keda.sh/v1alpha1/scaledobjects": {"kind": "ScaledObject", "namespaced": True},
    "autoscaling.x-k8s.io/v1alpha1/capacitybuffers": {"kind": "CapacityBuffer", "namespaced": True},
    "karpenter.sh/v1/nodepools": {"kind": "NodePool", "namespaced": False},
    CRDS: {"kind": "CustomResourceDefinition", "namespaced": False},
}
APPLY = "application/apply-patch+yaml"
_KINDS = {kmock.resource(r): str(info["kind"]) for r, info in RESOURCES.items()}
FieldPath = tuple[Any, ...]
"""A field's path: map keys (str) and, for an item of a keyed list, its key (a tuple of (field, value) pairs)."""
Scope = tuple[str, str, str]
"""(field manager, operation, subresource), a real server's managedFields entry: what a manager applied ("Apply")
is kept apart from what it wrote otherwise ("Update"), which its applies never drop, and the status's fields
from the object's ("")."""
APPLIED = "Apply"


@dataclass
class Fault:
    method: str
    status: int
    times: int
    path_part: str = ""
    message: str = ""
    """The Status's message (default `injected <status>`): what an admission plugin or RBAC would say."""


@attrs.define(kw_only=True)
class Realistic(kmock.KubernetesEmulator):
    """kmock's emulator with the behaviours of a real API server listed in the module docstring."""

    tokens: dict[str, tuple[str, tuple[str, ...]]] = attrs.field(factory=dict)
    """Bearer token -> (user name, groups)."""
    grants: set[tuple[str, str, str]] = attrs.field(factory=set)
    """(user, verb, namespace) a SubjectAccessReview allows; namespace `*` allows every one."""
    audiences: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    """Bearer token -> the audiences it was issued for (absent: the API server's own, which any review accepts)."""
    faults: list[Fault] = attrs.field(factory=list)
    arrived: dict[int, float] = attrs.field(factory=dict)
    """Request id -> when it arrived (`time.time()`): kmock keeps no time, and a benchmark times clients by it."""
    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))
    _watchers: list[tuple[Any, asyncio.Queue[dict[str, Any] | None]]] = attrs.field(factory=list)
    """Each open watch's resource and queue; None in a queue ends that watch."""
    _ended: bool = False
    """Set once the server stops: a watch that arrives after is ended at once."""
    owners: dict[Any, dict[Scope, set[FieldPath]]] = attrs.field(factory=dict)
    """Each stored object's field managers: the fields each set last (a real server's `managedFields`)."""
    managed: dict[Any, list[dict[str, Any]]] = attrs.field(factory=dict)
    """Each stored object's `owners` as its `metadata.managedFields` (`shown`), rendered at each write."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for resource, info in RESOURCES.items():
            self.resources[resource] = {  # type: ignore[assignment]
                "kind": info["kind"],
                "namespaced": info["namespaced"],
                "singular": "",
                "verbs": ["get", "list", "create", "patch", "delete"],
                "shortnames": [],
                "categories": [],
                "subresources": ["status"],
            }

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        self.arrived[request.id] = time.time()
        if request.resource is None:
            return await super()._handle(request)
        self._inject_fault(request)
        if request.resource.plural in ("tokenreviews", "subjectaccessreviews"):
            return aiohttp.web.json_response(self._review(request))
        key: Any = (request.resource, request.namespace, request.name)
        if request.action in (enums.action.FETCH, enums.action.LIST):
            # Served here, not by kmock's reaction matching, whose cost grows with every request
            # served so far: a long benchmark would measure the stand-in, not the client.
            return aiohttp.web.json_response(await self._read(key, request))
        if request.action == enums.action.WATCH:
            # Streamed as kmock streams it, without its reaction matching too: by minute 20 of a churn run
            # (50,000 requests) each watch cost seconds of this one thread, and a new controller replica's watches
            # held every client back meanwhile (the old leader read nothing for its last 4.6 s).
            return await rendering.Response(payload=self._serve_watch)(request)
        if request.action == enums.action.UPDATE and request.subresource == "status":
            return await self._write_status(key, request)
        if request.action in (enums.action.CREATE, enums.action.UPDATE, enums.action.DELETE):
            return await self._write(key, request)
        return await super()._handle(request)

    async def _write(self, key: Any, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """Create, patch (server-side apply creating what is absent) and delete, as a real server."""
        data = dict(request.data or {})
        async with self._lock:
            scope = _scope(request)
            if request.action == enums.action.CREATE:
                meta = data.get("metadata") or {}
                key = (request.resource, request.namespace or meta.get("namespace"), meta.get("name"))
                if not self._absent(key):
                    raise KubernetesError(status=409, reason="AlreadyExists", message=f"{key[2]} already exists")
                self._put_new(key, data, scope)
                return aiohttp.web.json_response(self.shown(key), status=201)
            if self._absent(key):
                if request.action == enums.action.UPDATE and scope[1] == APPLIED:
                    self._put_new(key, data, scope)  # apply creates
                    return aiohttp.web.json_response(self.shown(key), status=201)
                raise KubernetesError(status=404, reason="NotFound", message=f"{key[2]} not found")
            if request.action == enums.action.DELETE:
                self._check_uid(key, (data.get("preconditions") or {}).get("uid"))
                last = self._objects[key].raw
                self.forget(key)
                self._collect_garbage()
                return aiohttp.web.json_response(last)
            self._check_version(key, data)
            before = self._objects[key].raw
            self._change(key, data, scope)
            self._stamp_change(key, request.namespace, before)
            return aiohttp.web.json_response(self.shown(key))

    def _put_new(self, key: Any, data: dict[str, Any], scope: Scope) -> None:
        self.owners[key] = {}
        if scope[1] == APPLIED:
            data = apply_fields({}, data, self.owners[key], scope)
        else:
            update_fields(None, data, self.owners[key], scope)
        if key in self._objects:
            self._objects[key].create(data)  # a name used before, deleted since
        else:
            self._objects[key] = data
        self._stamp(key, created=True, namespace=key[1])

    def _change(self, key: Any, data: dict[str, Any], scope: Scope) -> None:
        """A stored object changed by `scope`: an apply as server-side apply merges it and drops what `scope` no
        longer applies; any other write as a merge patch, `scope` taking the fields it changed."""
        obj, owners = self._objects[key], self.owners.setdefault(key, {})
        if scope[1] == APPLIED:
            obj.create(copy.deepcopy(apply_fields(obj.raw, data, owners, scope)))  # kmock's `create` appends a version
        else:
            before = obj.raw
            obj.patch(data)
            update_fields(before, obj.raw, owners, scope)
        _default(obj)

    async def _write_status(self, key: tuple[Any, ...], request: rendering.Request) -> aiohttp.web.StreamResponse:
        """The status subresource: it changes `status` and nothing else."""
        async with self._lock:
            if self._absent(key):
                raise KubernetesError(status=404, reason="NotFound", message=f"{key[2]} not found")
            self._check_uid(key, ((request.data or {}).get("metadata") or {}).get("uid"))
            status = {"status": (request.data or {}).get("status", {})}
            self._change(key, status, _scope(request, "status"))
            self._stamp(key, created=False, namespace=request.namespace)
            return aiohttp.web.json_response(self.shown(key))

    def _check_uid(self, key: tuple[Any, ...], uid: str | None) -> None:
        """A uid in a status write's metadata or a delete's preconditions is checked as the API server's
        storage checks it: the name may hold another object now, deleted and created again."""
        if uid and uid != (self._objects[key].raw.get("metadata") or {}).get("uid"):
            message = f"Precondition failed: UID in precondition: {uid}, UID in object meta: another"
            raise KubernetesError(status=409, reason="Conflict", message=message)

    async def _read(self, key: Any, request: rendering.Request) -> Any:
        if request.action == enums.action.FETCH:
            async with self._lock:
                if self._absent(key):
                    raise KubernetesError(status=404, reason="NotFound", message=f"{key[2]} not found")
                return self.shown(key)
        return await self._serve_list(request)

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        kind = _KINDS.get(request.resource) if request.resource is not None else None
        if kind is None:  # a resource whose CRD is not installed
            raise KubernetesError(
                status=404, reason="NotFound", message=f"the server could not find {request.resource}"
            )
        async with self._lock:
            items = [self.shown(key) for key in self.listed(request.resource, request.namespace)]
        listed: Any = {"metadata": {"resourceVersion": "..."}, "items": items}
        selector = _selector(request.params.get("labelSelector", ""))
        phases = _phase_requirements(request.params.get("fieldSelector", ""))
        items = [
            o
            for o in listed["items"]
            if all((o.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in selector.items())
            and all(((o.get("status") or {}).get("phase") == value) == equal for equal, value in phases)
        ]
        return {**listed, "kind": f"{kind}List", "items": items}

    def _inject_fault(self, request: rendering.Request) -> None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and fault.path_part in str(request.url.path):
                fault.times -= 1
                raise KubernetesError(
                    status=fault.status, reason="Injected", message=fault.message or f"injected {fault.status}"
                )

    def _review(self, request: rendering.Request) -> dict[str, Any]:
        body = dict(request.data or {})
        spec = body.get("spec", {})
        if request.resource is not None and request.resource.plural == "tokenreviews":
            token = spec.get("token", "")
            who = self.tokens.get(token)
            asked = spec.get("audiences") or []
            valid = [a for a in asked if a in self.audiences[token]] if token in self.audiences else asked
            if asked and not valid:
                who = None
            status: dict[str, Any] = {"authenticated": who is not None}
            if who is not None:
                status["user"] = {"username": who[0], "groups": list(who[1])}
                status["audiences"] = valid
        else:
            attrs = spec.get("resourceAttributes", {})
            user, verb, ns = spec.get("user", ""), attrs.get("verb", ""), attrs.get("namespace", "")
            allowed = (user, verb, ns) in self.grants or (user, verb, "*") in self.grants
            status = {"allowed": allowed}
        return {**body, "status": status}

    def _absent(self, key: tuple[Any, ...]) -> bool:
        return key not in self._objects or bool(self._objects[key].deleted)

    def _check_version(self, key: tuple[Any, ...], data: dict[str, Any]) -> None:
        wanted = (data.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and not self._absent(key):
            current = self._objects[key].get("metadata", {}).get("resourceVersion")
            if wanted != current:
                raise KubernetesError(status=409, reason="Conflict", message="the object has been modified")

    def _stamp(self, key: tuple[Any, ...], created: bool, namespace: str | None, spec_changed: bool = False) -> None:
        obj = self._objects[key]
        _default(obj)
        meta = obj.get("metadata", {})
        stamp: dict[str, Any] = {"resourceVersion": str(next(self._versions))}
        if created:
            stamp |= {
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "creationTimestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            if namespace:
                stamp["namespace"] = namespace
        elif spec_changed:
            stamp["generation"] = int(meta.get("generation", 1)) + 1
        obj.patch({"metadata": stamp})
        self.managed[key] = managed_fields(self.owners.get(key, {}), obj.raw.get("apiVersion", ""))
        self.publish(key, "ADDED" if created else "MODIFIED")

    def _stamp_change(self, key: tuple[Any, ...], namespace: str | None, before: dict[str, Any]) -> None:
        """`_stamp` a write to a stored object that held `before`: a new generation where its spec changed, as a
        real API server bumps it (a change of metadata or status leaves it)."""
        spec_changed = self._objects[key].raw.get("spec") != before.get("spec")
        self._stamp(key, created=False, namespace=namespace, spec_changed=spec_changed)

    def listed(self, resource: Any, namespace: str | None) -> list[Any]:
        """The keys of `resource`'s stored objects (in `namespace`, if given) in the order a real server lists them:
        etcd's key order, by namespace and then name (a cluster-scoped kind's, by name), not the order made in."""
        keys = [
            key
            for key, o in self._objects.items()
            if key[0] == resource and (namespace is None or key[1] == namespace) and not o.deleted
        ]
        return sorted(keys, key=lambda key: (key[1] or "", key[2]))

    def shown(self, key: Any) -> dict[str, Any]:
        """The stored object as the API answers it, with its `metadata.managedFields`: kept apart, since every write
        copies the stored object whole (kmock's versions), and with them in it a Deployment's apply cost twice."""
        raw = self._objects[key].raw
        return {**raw, "metadata": {**raw.get("metadata", {}), "managedFields": self.managed.get(key, [])}}

    def forget(self, key: tuple[Any, ...]) -> None:
        """Delete the stored object, its field managers with it, and tell its watches (in the server's thread)."""
        self._objects[key].delete()
        self.owners.pop(key, None)
        self.managed.pop(key, None)
        self.publish(key, "DELETED")

    def publish(self, key: tuple[Any, ...], change: str) -> None:
        """Tell every watch of the object's resource (call in the server's thread)."""
        watching = [queue for resource, queue in self._watchers if resource == key[0]]
        if watching:
            raw = json.loads(json.dumps(self.shown(key) if change != "DELETED" else self._objects[key].last.raw))
            for queue in watching:
                queue.put_nowait({"type": change, "object": raw})

    def end_watches(self) -> None:
        """End every open watch, as a stopping API server does: its server would wait out each one."""
        self._ended = True
        for _, queue in self._watchers:
            queue.put_nowait(None)

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        yield b""  # the headers, at once
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        watcher = (request.resource, queue)
        timeout = float(request.params.get("timeoutSeconds") or 1800)
        deadline = asyncio.get_running_loop().time() + timeout
        selector = _selector(request.params.get("labelSelector", ""))
        async with self._lock:
            if self._ended:
                return
            self._watchers.append(watcher)
            if not request.params.get("resourceVersion"):
                for key in self.listed(request.resource, None):
                    queue.put_nowait({"type": "ADDED", "object": json.loads(json.dumps(self.shown(key)))})
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return
                try:
                    change = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    return
                if change is None:
                    return
                meta = change["object"].get("metadata") or {}
                if request.namespace not in (None, meta.get("namespace")):
                    continue
                if all((meta.get("labels") or {}).get(k) == v for k, v in selector.items()):
                    yield change
        finally:
            self._watchers.remove(watcher)

    def _collect_garbage(self) -> None:
        """Delete every object whose owners are all gone (the garbage collector's foreground pass)."""
        while True:
            alive = {o.get("metadata", {}).get("uid") for o in self._objects.values() if not o.deleted}
            orphans = [
                k
                for k, o in self._objects.items()
                if not o.deleted
                and (refs := o.get("metadata", {}).get("ownerReferences"))
                and not any(r.get("uid") in alive for r in refs)
            ]
            if not orphans:
                return
            for k in orphans:
                self.forget(k)


# -- field management: what each field manager last set, and what its next apply drops --------------------------


LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "imagePullSecrets": ("name",),
    "resourceClaims": ("name",),
    "ownerReferences": ("uid",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "conditions": ("type",),
}
"""The lists EGS writes that the schema makes maps (`listType=map`), by field name, with their keys; `ports` is
keyed too (a container's by containerPort and protocol, a Service's by port and protocol). Every other list is
atomic, as the schema says for tolerations, node selector terms and match expressions, args, command, a
NodePool's requirements and a ScaledObject's triggers (a CRD's list is atomic unless its schema says otherwise);
`finalizers` (`listType=set`) is taken as atomic too, which only matters if two managers shared one."""
SYSTEM_FIELDS = {("apiVersion",), ("kind",)} | {
    ("metadata", f)
    for f in ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")
}
"""Fields the server owns, or that name the object: no manager owns them, no apply drops them."""
STAND_IN: Scope = ("stand-in", "Update", "")
"""Who `KubeCluster.put` and `KubeCluster.patch` write as: the other controllers and the kubelet."""


def _list_keys(name: Any, items: list[Any]) -> tuple[str, ...]:
    """The keys of a keyed list named `name` (empty: atomic)."""
    if not items or not all(isinstance(i, dict) for i in items):
        return ()
    if name == "ports":
        return ("containerPort", "protocol") if "containerPort" in items[0] else ("port", "protocol")
    return LIST_KEYS.get(name, ())


def _item_key(item: dict[str, Any], keys: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    return tuple((k, item.get(k)) for k in keys)


def fields(value: Any, path: FieldPath = ()) -> set[FieldPath]:
    """Every field `value` sets: its leaves (a scalar, an atomic list, an empty map) and each keyed list's items."""
    if isinstance(value, dict) and value:
        return {f for k, v in value.items() for f in fields(v, (*path, k)) if f not in SYSTEM_FIELDS}
    if isinstance(value, list) and (keys := _list_keys(path[-1] if path else None, value)):
        items = [(*path, _item_key(i, keys)) for i in value]
        return set(items).union(*(fields(i, p) for i, p in zip(value, items, strict=True)))
    return {path} if path and value is not None else set()


def _at(value: Any, path: FieldPath) -> Any:
    """The value at `path`, or None."""
    for step in path:
        if isinstance(step, tuple) and isinstance(value, list):
            keys = tuple(k for k, _ in step)
            value = next((i for i in value if isinstance(i, dict) and _item_key(i, keys) == step), None)
        elif isinstance(value, dict):
            value = value.get(step)
        else:
            return None
        if value is None:
            return None
    return value


def merged(live: Any, applied: Any, name: Any = None) -> Any:
    """`applied` merged into `live` as server-side apply merges: maps by key, keyed lists by their keys (the live
    order kept, new items after), anything else replaced; a null applied is no field."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for k, v in applied.items():
            if v is not None:
                out[k] = merged(live.get(k), v, k)
        return out
    keys = _list_keys(name, applied) if isinstance(applied, list) else ()
    if keys and isinstance(live, list) and all(isinstance(i, dict) for i in live):
        new = {_item_key(i, keys): i for i in applied}
        kept = [merged(i, new.pop(_item_key(i, keys)), None) if _item_key(i, keys) in new else i for i in live]
        return kept + list(new.values())
    return applied


def _without(value: Any, path: FieldPath, kept: set[FieldPath], prefix: FieldPath = ()) -> Any:
    """`value` without the field at `path`; a map or list left empty by it goes too unless a field in `kept`."""
    if not path:
        return None
    step, rest = path[0], path[1:]
    here = (*prefix, step)
    if isinstance(value, dict) and step in value:
        inner = _without(value[step], rest, kept, here)
        out = {k: v for k, v in value.items() if k != step}
        if inner is not None and (inner not in ({}, []) or here in kept):
            out[step] = inner
        return out
    if isinstance(value, list) and isinstance(step, tuple):
        keys = tuple(k for k, _ in step)
        out_items = []
        for item in value:
            if isinstance(item, dict) and _item_key(item, keys) == step:
                inner = _without(item, rest, kept, here)
                if inner is not None:
                    out_items.append(inner)
            else:
                out_items.append(item)
        return out_items
    return value


def apply_fields(
    live: dict[str, Any], applied: dict[str, Any], owners: dict[Scope, set[FieldPath]], scope: Scope
) -> dict[str, Any]:
    """`live` after `scope` applies `applied` (forced): merged in, then each field `scope` set last time and sets
    no more dropped unless another manager set it too; `owners` is brought up to date in place."""
    now = fields(applied)
    others: set[FieldPath] = set().union(*(f for s, f in owners.items() if s != scope))
    result: dict[str, Any] = merged(live, applied)
    # What `scope` stopped setting goes (an item whole, not field by field, which would change its key), but for
    # a map or an item with a field below it that someone still sets.
    kept, gone = others | now, set[FieldPath]()
    for path in sorted(owners.get(scope, set()) - kept, key=len):
        if not any(path[:i] in gone for i in range(1, len(path))) and not any(o[: len(path)] == path for o in kept):
            result = _without(result, path, kept)
            gone.add(path)
    _take(owners, scope, now, live, result)
    return result


def update_fields(
    before: dict[str, Any] | None, after: dict[str, Any], owners: dict[Scope, set[FieldPath]], scope: Scope
) -> None:
    """A write that is not an apply (create, merge patch, update): `scope` takes every field it changed, as a real
    server's Update manager does."""
    changed = {f for f in fields(after) if before is None or _at(before, f) != _at(after, f)}
    _take(owners, scope, owners.get(scope, set()) | changed, before or {}, after)


def _take(owners: dict[Scope, set[FieldPath]], scope: Scope, mine: set[FieldPath], before: Any, after: Any) -> None:
    """`scope` now owns `mine`; the others lose a value `scope` changed (an item of a keyed list stays shared), and
    every manager loses a field that is no longer there."""
    present = fields(after)
    for other, owned in owners.items():
        if other != scope:
            owned -= {f for f in mine if not isinstance(f[-1], tuple) and _at(before, f) != _at(after, f)}
            owned &= present
    owners[scope] = mine & present


def managed_fields(owners: dict[Scope, set[FieldPath]], api_version: str) -> list[dict[str, Any]]:
    """`owners` as a real server shows them in `metadata.managedFields`: an entry per (manager, operation,
    subresource) that owns a field, its fields as FieldsV1 (`f:<name>` a map key, `k:<json>` a keyed list's item)."""
    entries, names = [], dict[Any, str]()
    for (manager, operation, subresource), owned in sorted(owners.items()):
        tree: dict[str, Any] = {}
        for path in owned:
            node = tree
            for step in path:
                if step not in names:
                    is_item = isinstance(step, tuple)
                    names[step] = f"k:{json.dumps(dict(step), separators=(',', ':'))}" if is_item else f"f:{step}"
                node = node.setdefault(names[step], {})
        entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "fieldsType": "FieldsV1"}
        if tree:
            entries.append({**entry, **({"subresource": subresource} if subresource else {}), "fieldsV1": tree})
    return entries


def _default(obj: Any) -> None:
    """The API server's defaulting the stand-in does: a stored Deployment's `spec.replicas` is 1 when absent."""
    raw = obj.raw
    if raw.get("kind") == "Deployment" and isinstance(raw.get("spec"), dict) and "replicas" not in raw["spec"]:
        obj.patch({"spec": {"replicas": 1}})


def _scope(request: rendering.Request, subresource: str = "") -> Scope:
    """The write's managedFields entry: its field manager (the one it names, else its client's name, as a real
    server falls back to) and whether it applies."""
    manager = str(request.params.get("fieldManager") or request.headers.get("User-Agent", "").split("/")[0])
    return manager, APPLIED if request.headers.get("Content-Type") == APPLY else "Update", subresource


def _phase_requirements(text: str) -> list[tuple[bool, str]]:
    """A field selector's requirements on `status.phase`, each (equal, value): `=` and `==` want the
    phase, `!=` any other; as the API server reads them, each must hold."""
    requirements = []
    for part in text.split(","):
        key, unequal, value = part.partition("!=")
        if not unequal:
            key, _, value = part.partition("=")
            value = value.removeprefix("=")
        if key.strip() == "status.phase":
            requirements.append((not unequal, value.strip()))
    return requirements


def _selector(text: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in text.split(",") if "=" in part)
    return {k.rstrip("="): v.lstrip("=") for k, v in pairs}


class KubeCluster:
    """The realistic emulator served on 127.0.0.1 from a thread; `objects(...)` reads its state."""

    def __init__(self) -> None:
        self.emulator = Realistic()
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="kmock", daemon=True)

    async def _serve(self) -> None:
        async with self.emulator, kmock.Server(self.emulator, host="127.0.0.1") as server:
            self.url = str(server.url).rstrip("/")
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            self.emulator.end_watches()

    def start(self) -> KubeCluster:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("kmock did not start")
        self.put(CRDS, crd())
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def api_client(self, token: str = "") -> client.ApiClient:
        config = client.Configuration()
        config.host = self.url
        if token:
            config.api_key = {"authorization": token}
            config.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(config)

    def kubeconfig(self, path: Path, token: str = "controller-token") -> Path:
        """A kubeconfig file for the `egs` processes, pointing at this server."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "egs", "user": {"token": token}}],
            "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "egs"}}],
            "current-context": "kmock",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        """Store `obj` as if created through the API (uid, generation and namespace set)."""
        meta = obj["metadata"]
        key = (kmock.resource(resource), meta.get("namespace"), meta["name"])
        self._call(self._put, key, obj)

    def _put(self, key: tuple[Any, ...], obj: dict[str, Any]) -> None:
        objects, owners = self.emulator.objects, self.emulator.owners
        before = None if key not in objects or objects[key].deleted else objects[key].raw
        owners[key] = owners.get(key, {}) if before is not None else {}
        objects[key] = obj
        update_fields(before, obj, owners[key], STAND_IN)
        self.emulator._stamp(key, created=True, namespace=key[1])

    def patch(self, resource: str, namespace: str | None, name: str, changes: dict[str, Any]) -> None:
        """Change a stored object as a workload controller, the kubelet or a user would (e.g. its status). An
        object deleted since the writer read it is left gone: a real writer's update gets 404 and is dropped."""
        key = (kmock.resource(resource), namespace, name)

        def change() -> None:
            if key not in self.emulator.objects:
                raise KeyError(f"no such object: {key}")
            if self.emulator.objects[key].deleted:
                return
            before = self.emulator.objects[key].raw
            self.emulator.objects[key].patch(changes)
            after = self.emulator.objects[key].raw
            update_fields(before, after, self.emulator.owners.setdefault(key, {}), STAND_IN)
            self.emulator._stamp_change(key, namespace, before)  # told to watches, as a change through the API

        self._call(change)

    def delete(self, resource: str, namespace: str | None, name: str) -> None:
        """Remove a stored object as its owner would (the node autoscaler giving a node back)."""
        key = (kmock.resource(resource), namespace, name)

        self._call(partial(self.emulator.forget, key))

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object, or None; read in the server's thread, so never while a write is half done."""
        key = (kmock.resource(resource), namespace, name)

        def read() -> dict[str, Any] | None:
            objects = self.emulator.objects
            if key not in objects or objects[key].deleted:
                return None
            return self.emulator.shown(key)

        found: dict[str, Any] | None = self._call(read)
        return found

    def all(self, resource: str) -> list[dict[str, Any]]:
        """Every stored object of `resource`, as the server lists it (namespace, name), read in the server's thread
        (see `get`)."""
        wanted = kmock.resource(resource)
        found: list[dict[str, Any]] = self._call(
            lambda: [self.emulator.shown(k) for k in self.emulator.listed(wanted, None)]
        )
        return found

    def fail(self, method: str, status: int, times: int = 1, path_part: str = "", message: str = "") -> None:
        self.emulator.faults.append(Fault(method, status, times, path_part, message))

    def requests(self, method: str | None = None) -> list[Any]:
        return [r for r in self.emulator._requests if method is None or r.method == method]

    def _call(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` run in the server's thread; its result, or what it raised, comes back here."""
        assert self._loop is not None
        done = threading.Event()
        box: list[Any] = []
        failed: list[BaseException] = []

        def run() -> None:
            try:
                box.append(fn(*args))
            except Exception as e:
                failed.append(e)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        if not done.wait(10):
            raise TimeoutError("the Kubernetes API stand-in's thread did not run the call within 10 s")
        if failed:
            raise failed[0]
        return box[0]
