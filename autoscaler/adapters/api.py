"""The endpoint API (`egs api`): users ask for an endpoint over HTTP and hear at once when it serves.

A FastAPI app (the OpenAPI document at `/openapi.json` is generated from the pydantic models below)
in front of the Kubernetes adapter. `POST /v1/namespaces/{ns}/endpoints` validates the request
against the InferenceEndpoint CRD's schema, asks where its replicas would go (`autoscaler.admission`
on the capacity the decide step leaves free, built from the cluster and reused for
`capacity_ttl_s`), creates the InferenceEndpoint, and answers

- `201 Created` when warm capacity takes every replica now, or
- `202 Accepted` with `estimatedReadyTime` when a node must be provisioned first (the promise is
  written to the endpoint's status, where the controller keeps it),

both with `Location`. `GET` one or the list, and `DELETE` (its workloads are garbage-collected with
it). Kubernetes authenticates and authorises: the bearer token goes to a TokenReview (401 when
unknown; `Limits.token_audiences` when set), the user to a SubjectAccessReview for the verb on
`inferenceendpoints` in the namespace (403 when denied). `GET /healthz` and `GET /metrics` (the
process's own `process_*` series) answer without either.

What a caller can cost is bounded (`autoscaler.adapters.api_limits.Limits`), unauthenticated ones
first: a body over `max_body_bytes` is answered 413 by the outermost layer, before it is read or
the token reviewed; answers to reviews are kept in a bounded cache keyed by the token's SHA-256, for
`review_ttl_s` (a no for `denial_ttl_s`); TokenReviews for tokens not in the cache are rate-limited
(`reviews_per_s`, 429 beyond it), so a flood of made-up tokens neither grows memory nor floods the
API server. Bad input is 400 (not JSON) or 422 naming the field, and changes nothing.

Kubernetes errors, wherever they happen (review, create, status write), are answered by type, with
the API server's message and never a traceback: not found 404, an object the API server refuses 422,
an existing name 409, anything else (unavailable, overloaded, the API's own RBAC) 503 with
`Retry-After`. A POST is all or nothing: when the status write after the create fails, the endpoint
is deleted again; should that delete fail too, the same POST retried at the same replica completes the
endpoint left behind (same spec, no status yet) and answers as the first one would have, instead of 409.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies in the route signatures,
# which name closures, from the evaluated annotations.

import hashlib
import json
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Depends, FastAPI, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from autoscaler import endpoint as ie
from autoscaler.adapters.api_limits import CAPACITY_TTL_S, REMADE_HOLD_LOOPS, Limits
from autoscaler.adapters.kubernetes import (
    Cluster,
    ConflictError,
    ForbiddenError,
    InvalidError,
    KubernetesError,
    NotFoundError,
    PolicyRefusedError,
)
from autoscaler.admission import (
    REMADE_ANNOTATION,
    Admitted,
    Capacity,
    admit,
    capacity,
    earlier,
    hold,
    remade,
    waiting_eta,
    waiting_law,
)
from autoscaler.decide import (
    PROMISE_ANNOTATION,
    PROVISIONING_PREFIX,
    EndpointDecision,
    Observation,
    Settings,
    answer_status,
    decide,
    endpoint_key,
    promise_of,
    report,
)
from autoscaler.decide.state import WORKLOAD_KINDS, read_owned
from autoscaler.events import ref
from autoscaler.fields import as_list, as_text
from autoscaler.leader import LEASE_NAME
from autoscaler.orders import OrderBook, track
from autoscaler.pods import GPU_INDEXES_NOTE, merged_indexes, read_carried
from common.errors import InputError, TemporaryError
from scheduler.catalog import Catalog
from scheduler.inventory import Allocation, Inventory, held_by
from scheduler.plan import Placement
from scheduler.registry import Registry

log = logging.getLogger("egs.api")

FIELD_MANAGER = "egs-api"
"""Who the API's applies to an endpoint (a re-made answer's annotation) are recorded as, apart from
the controller (`autoscaler.adapters.kubernetes.FIELD_MANAGER`), which would drop on its next apply of the
object any field it owns and no longer applies. The status an answer writes is the controller's: it applies
every status field, and drops those it no longer applies (an ETA once the endpoint serves)."""

NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAMESPACE = Annotated[str, Path(pattern=NAME, max_length=63, description="The Kubernetes namespace.")]
ENDPOINT = Annotated[str, Path(pattern=NAME, max_length=45, description="The endpoint's name.")]


class Replicas(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int = Field(ge=0, le=1000, description="Never fewer replicas (0 lets an idle endpoint scale to zero).")
    max: int = Field(ge=1, le=1000, description="Never more replicas.")


class EndpointRequest(BaseModel):
    """An endpoint to create: the InferenceEndpoint's spec, and its name."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME, max_length=45, description="A DNS label; the Service gets this name.")
    model: str = Field(min_length=1, max_length=253, description="A model of the EGS model registry.")
    qualityFloor: float = Field(ge=0, le=1, description="Lowest variant quality accepted (fp16 = 1.0).")
    replicas: Replicas
    gpuClasses: list[Annotated[str, Field(min_length=1, max_length=63)]] | None = Field(None, max_length=32)
    contextTokens: int | None = Field(None, ge=1, le=10_485_760)
    concurrency: int | None = Field(None, ge=1, le=65_536)
    throughputPerReplica: float | None = Field(None, ge=0.001, le=1e6)
    scaling: Literal["egs", "keda", "hpa"] = "egs"


class Condition(BaseModel):
    type: str
    status: str
    reason: str = ""
    message: str = ""


class EndpointView(BaseModel):
    """An endpoint as the API shows it: what was asked, and what EGS has made of it so far."""

    name: str
    namespace: str
    model: str
    phase: str | None = None
    variant: str | None = None
    gpuClass: str | None = None
    readyReplicas: int | None = None
    desiredReplicas: int | None = None
    url: str | None = None
    estimatedReadyTime: str | None = None
    costPerHour: float | None = Field(None, description="USD per hour of its replicas at the configured prices.")
    conditions: list[Condition] = []


class EndpointList(BaseModel):
    items: list[EndpointView]


class Problem(BaseModel):
    """What went wrong; `field` names the bad field of the request when there is one."""

    detail: str
    field: str | None = None


def _process_series() -> CollectorRegistry:
    """A registry with prometheus_client's process_* series (CPU, memory, file descriptors)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return registry


@dataclass(frozen=True)
class Services:
    """What the app needs: the cluster, and what the decide step is configured with."""

    cluster: Cluster
    settings: Settings
    registry: Registry
    catalog: Catalog
    clock: Callable[[], float] = time.time
    capacity_ttl_s: float = CAPACITY_TTL_S
    """How long the capacity POSTs are answered from is used before it is built from the cluster again."""
    limits: Limits = field(default_factory=Limits)
    """What one request, and unauthenticated requests together, may cost."""
    exposition: CollectorRegistry = field(default_factory=_process_series)
    """What `GET /metrics` serves: the process's own series."""
    gpu_indexes: Callable[[float], Mapping[str, Mapping[str, int]]] | None = None
    """Per node, NVML's index of each GPU UUID at a time (`PrometheusMetrics.gpu_indexes`; raises a
    TemporaryError when it cannot say), read every decide step (a POST's build only tries it once, before any
    read was tried), so that the API numbers KAI's shared GPUs as the
    controller does; None: numbered by EGS (`autoscaler.pods.with_devices`)."""


def _no_moves(settings: Settings) -> Settings:
    """The settings the API's decide step runs with: consolidation off. Moves are the leader's, made after it has
    placed new endpoints; one planned here held the GPUs it would take in the capacity answered from, room the
    leader gives a POST. A move begun is on its endpoint's status, its new workload in the cluster: still counted."""
    return replace(settings, consolidation=replace(settings.consolidation, enabled=False))


@dataclass(frozen=True)
class Caller:
    user: str
    groups: tuple[str, ...]


def create_app(services: Services) -> FastAPI:
    admissions = _Admissions(services)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The node orders are read while the server runs (uvicorn's startup to its shutdown).
        stop = threading.Event()
        threading.Thread(target=admissions.follow_orders, args=(stop,), daemon=True, name="egs-api-orders").start()
        yield
        stop.set()

    app = FastAPI(
        title="EGS endpoint API",
        version="v1",
        description="Create inference endpoints; 201 when warm GPU capacity serves them now, 202 Accepted with an "
        "estimated ready time when a node must be provisioned.",
        lifespan=lifespan,
    )
    app.add_middleware(_BodyLimit, max_bytes=services.limits.max_body_bytes)
    cluster = services.cluster
    reviews = _Reviews(cluster, services.clock, services.limits)
    problems: dict[int | str, dict[str, Any]] = {
        400: {"model": Problem, "description": "The body is not JSON."},
        401: {"model": Problem, "description": "No bearer token, or one Kubernetes does not know."},
        403: {
            "model": Problem,
            "description": "Kubernetes RBAC does not allow this on inferenceendpoints here, or a policy of the cluster "
            "(a ResourceQuota, an admission webhook) refused the endpoint: the detail quotes it.",
        },
        413: {"model": Problem, "description": "The body is larger than the API reads; nothing of it was read."},
        422: {"model": Problem, "description": "A field is wrong; `field` names it."},
        429: {"model": Problem, "description": "Too many new tokens to review at once; try again after Retry-After."},
        503: {"model": Problem, "description": "The Kubernetes API server did not answer; try again."},
    }

    def caller(authorization: Annotated[str | None, Header()] = None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(401, "a bearer token is required (Authorization: Bearer <token>)")
        who = reviews.token(token.strip())
        if who is None:
            raise _Refused(401, "Kubernetes does not know this token")
        return who

    def allowed(verb: str) -> Callable[..., Caller]:
        def check(namespace: NAMESPACE, who: Annotated[Caller, Depends(caller)]) -> Caller:
            if not reviews.access(who.user, who.groups, verb, namespace):
                raise _Refused(403, f"{who.user} may not {verb} inferenceendpoints in namespace {namespace}")
            return who

        return check

    @app.exception_handler(_Refused)
    def refused(request: Request, e: _Refused) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else {}
        if e.status in (429, 503):
            headers["Retry-After"] = str(e.retry_after_s)
        return JSONResponse({"detail": e.detail, "field": e.field}, status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        if first.get("type") == "json_invalid":
            return JSONResponse({"detail": f"the body is not JSON: {first.get('msg')}", "field": None}, 400)
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "(body)"
        return JSONResponse({"detail": f"{where}: {first.get('msg')}", "field": where}, 422)

    for kind, (status, what) in _KUBERNETES_ANSWERS.items():

        def answer(request: Request, e: Exception, status: int = status, what: str = what) -> JSONResponse:
            return refused(request, _Refused(status, f"{what}: {e}"))

        app.add_exception_handler(kind, answer)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """The process's own series (process_*), for its ServiceMonitor: no authentication, no Kubernetes call."""
        return Response(generate_latest(services.exposition), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        """Liveness and readiness: the process serves. Neither authenticates nor calls Kubernetes."""
        return PlainTextResponse("ok\n")

    @app.post(
        "/v1/namespaces/{namespace}/endpoints",
        status_code=201,
        response_model=EndpointView,
        responses={**problems, 202: {"model": EndpointView, "description": "Accepted: a node is being provisioned."},
                   409: {"model": Problem, "description": "An endpoint of this name exists."}},
    )  # fmt: skip
    def create(
        namespace: NAMESPACE,
        body: EndpointRequest,
        response: Response,
        who: Annotated[Caller, Depends(allowed("create"))],
    ) -> EndpointView:
        spec = body.model_dump(exclude_none=True, exclude={"name"})
        try:
            obj = ie.manifest(namespace, body.name, spec)
        except ie.EndpointError as e:
            field = e.field.removeprefix("spec.")
            raise _Refused(422, f"{field}: {e.problem}", field) from e
        try:
            services.registry.get(body.model)
        except InputError as e:
            raise _Refused(422, f"model: {e}", "model") from e
        try:
            decision, created, status = admissions.admit(obj)
        except ConflictError as e:
            raise _Refused(409, f"endpoint {namespace}/{body.name} exists", "name") from e
        if created is None:
            field = "gpuClasses" if body.gpuClasses else "model"
            raise _Refused(422, f"{field}: no GPU class can serve it: {decision.message}", field)
        uid = ref(created).uid
        try:
            # The endpoint it created: one deleted and posted again meanwhile keeps its own status.
            cluster.apply_status(namespace, body.name, status, uid)
        except KubernetesError:
            admissions.undo(namespace, body.name, uid)
            raise
        response.status_code = 201 if decision.serves_now else 202
        response.headers["Location"] = f"/v1/namespaces/{namespace}/endpoints/{body.name}"
        return _view({**created, "status": status})

    @app.get("/v1/namespaces/{namespace}/endpoints", response_model=EndpointList, responses=problems)
    def list_endpoints(namespace: NAMESPACE, who: Annotated[Caller, Depends(allowed("list"))]) -> EndpointList:
        return EndpointList(items=[_view(o) for o in cluster.endpoints(namespace)])

    @app.get(
        "/v1/namespaces/{namespace}/endpoints/{name}",
        response_model=EndpointView,
        responses={**problems, 404: {"model": Problem, "description": "No such endpoint."}},
    )
    def read(namespace: NAMESPACE, name: ENDPOINT, who: Annotated[Caller, Depends(allowed("get"))]) -> EndpointView:
        return _view(_existing(cluster, namespace, name))

    @app.delete(
        "/v1/namespaces/{namespace}/endpoints/{name}",
        status_code=204,
        responses={**problems, 404: {"model": Problem, "description": "No such endpoint."}},
    )
    def delete(namespace: NAMESPACE, name: ENDPOINT, who: Annotated[Caller, Depends(allowed("delete"))]) -> Response:
        _existing(cluster, namespace, name)
        cluster.delete(ie.API_VERSION, ie.KIND, namespace, name)
        admissions.forget((namespace, name))
        return Response(status_code=204)

    return app


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Expiring(Generic[K, V]):
    """Answers reused until they expire, at most `size` of them: the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()  # FastAPI runs the routes' dependencies on a thread pool

    def get(self, key: K, now: float) -> tuple[bool, V | None]:
        """(True, the answer) while one is kept for `key` and not expired, else (False, None)."""
        with self._lock:
            kept = self._entries.get(key)
            if kept is None or kept[0] <= now:
                return False, None
            self._entries.move_to_end(key)
            return True, kept[1]

    def put(self, key: K, value: V, until: float) -> None:
        with self._lock:
            self._entries[key] = (until, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class _Bucket:
    """A token bucket: `rate` takes per second, up to `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._level, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self._level = min(self.burst, self._level + max(0.0, now - self._at) * self.rate)
            self._at = now
            if self._level < 1:
                return False
            self._level -= 1
            return True


class _Reviews:
    """TokenReview and SubjectAccessReview answers, each reused for a few seconds, within `Limits`."""

    def __init__(self, cluster: Cluster, clock: Callable[[], float], limits: Limits) -> None:
        self.cluster, self.clock, self.limits = cluster, clock, limits
        self._tokens: _Expiring[bytes, Caller | None] = _Expiring(limits.cached_answers)
        self._access: _Expiring[tuple[str, tuple[str, ...], str, str], bool] = _Expiring(limits.cached_answers)
        self._new_tokens = _Bucket(limits.reviews_per_s, limits.review_burst, clock)

    def token(self, token: str) -> Caller | None:
        """Who `token` is (None: Kubernetes does not know it); `_Refused` 429 when too many new
        tokens are being reviewed."""
        now = self.clock()
        key = hashlib.sha256(token.encode()).digest()  # a leaked cache leaks no token
        found, caller = self._tokens.get(key, now)
        if found:
            return caller
        if not self._new_tokens.take():
            raise _Refused(429, "too many new bearer tokens to review right now; try again", retry_after_s=1)
        try:
            who = self.cluster.review_token(token, self.limits.token_audiences)
        except InvalidError as e:  # the API server would not review it: as good as unknown
            log.info("TokenReview refused: %s", e)
            who = None
        caller = Caller(*who) if who is not None else None
        self._tokens.put(key, caller, now + (self.limits.review_ttl_s if caller else self.limits.denial_ttl_s))
        return caller

    def access(self, user: str, groups: tuple[str, ...], verb: str, namespace: str) -> bool:
        now = self.clock()
        key = (user, groups, verb, namespace)
        found, allowed = self._access.get(key, now)
        if found:
            return bool(allowed)
        allowed = self.cluster.review_access(user, groups, verb, namespace)
        self._access.put(key, allowed, now + (self.limits.review_ttl_s if allowed else self.limits.denial_ttl_s))
        return allowed


class _BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before any of it reaches the
    app (and so before authentication): at once when its Content-Length says so, else (chunked) as
    soon as the bytes received pass the limit; the rest is never read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._too_large(send)
                return
            await self.app(scope, receive, send)  # the server delivers exactly Content-Length bytes
            return
        received: list[Message] = []
        size, more = 0, True
        while more:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._too_large(send)
                return

        async def replay() -> Message:
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"the body is larger than {self.max_bytes} bytes", "field": None}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _versions(nodes: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    meta = [n.get("metadata") or {} for n in nodes]
    return tuple(sorted((str(m.get("name")), str(m.get("resourceVersion"))) for m in meta))


_Written = tuple[str, str, str, str, Any]
"""A workload's kind, namespace, name, uid and generation: what changes when it is created again or its spec is
written (its replicas, its pods' template), and not when its status is."""


def _version(obj: Mapping[str, Any]) -> _Written:
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("kind")),
        str(meta.get("namespace")),
        str(meta.get("name")),
        str(meta.get("uid")),
        meta.get("generation"),
    )


def _held(placements: tuple[Placement, ...]) -> tuple[Allocation, ...]:
    """The GPUs `placements` take, as an answer records them."""
    return tuple(a for p in placements for a in held_by(p))


def _where(placements: tuple[Placement, ...]) -> list[str]:
    """`node[GPUs]` (or `node/MIG profile`) of each worker: where a log says an answer was placed."""
    return [f"{w.node}/{w.mig_profile}" if w.mig_profile else f"{w.node}{list(w.gpus)}" for p in placements
            for w in p.workers]  # fmt: skip


_Counted = tuple[str, str]
"""An endpoint as a capacity counts it: its uid and the answer annotated on it (`PROMISE_ANNOTATION`), which
the POST that created it may re-make (`_Admissions._confirmed`): counted again then, at its new answer."""


def _counted_as(obj: Mapping[str, Any]) -> _Counted:
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    answer = annotations.get(PROMISE_ANNOTATION) if isinstance(annotations, Mapping) else None
    return _uid(obj), str(answer or "")


def _uid(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("uid", "")) if isinstance(meta, Mapping) else ""


def _planned(placements: tuple[Placement, ...]) -> Counter[tuple[str, str]]:
    """(endpoint, node) -> the replicas (their workers) `placements` put on the node."""
    return Counter((f"{p.namespace}/{p.request}", w.node) for p in placements for w in p.workers)


# Kubernetes errors by type (Starlette picks the handler of the most specific class): whatever call they
# come from, the caller hears what it can do next, never a 500 with a traceback.
_KUBERNETES_ANSWERS: dict[type[Exception], tuple[int, str]] = {
    TemporaryError: (503, "the Kubernetes API did not answer"),
    KubernetesError: (503, "the Kubernetes API failed"),
    ForbiddenError: (503, "the API's own service account is refused"),
    PolicyRefusedError: (403, "a policy of the cluster refused the endpoint"),
    NotFoundError: (404, "the Kubernetes API found no such object"),
    InvalidError: (422, "the Kubernetes API refused the endpoint"),
}


class _Refused(Exception):
    def __init__(self, status: int, detail: str, field: str | None = None, retry_after_s: int = 10) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field, self.retry_after_s = status, detail, field, retry_after_s


def _existing(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    try:
        return cluster.endpoint(namespace, name)
    except NotFoundError as e:
        raise _Refused(404, f"no endpoint {namespace}/{name}") from e


class _Admissions:
    """Where new endpoints go: `autoscaler.admission` on a capacity built from the cluster (the decide
    step on everything listed). Every POST lists the nodes and EGS's workloads, and builds the capacity
    again at once when there is none, the nodes changed (a node joined: warm capacity for a 201), or the
    controller wrote a workload since that places a replica on a node where the capacity holds none of
    its endpoint's (a replacement, a scale-up the API never plans, an endpoint created with kubectl: a 201
    answered from the old capacity would be given that room). Other changes are picked up by a rebuild
    in the background once the capacity is `capacity_ttl_s` old, while answers go on from the old one (for
    at most another TTL: a capacity two TTLs old is built again at once); the endpoints admitted
    meanwhile are taken from the new one too. One POST at a time admits and
    creates, so two never count the same GPUs. A TTL of 0 builds the capacity for every POST.

    Other replicas of the API (the chart runs two) answer from capacities of their own: every POST lists
    the endpoints and admits those answered since its capacity's listing that it did not admit itself,
    each held to its answer, before it answers (`_adopted`), so that a GPU another replica answered is
    not answered again (churn `--api-replicas 2`: both answered 201 on the same H100 from capacities
    built at once); and after its create, to re-make an answer given between another replica's listing and
    its create (`_confirmed`)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.lock = threading.RLock()
        self.capacity: Capacity | None = None
        self.listed_at = 0.0
        """When the listing behind `capacity` began."""
        self.admitted: list[tuple[float, Mapping[str, Any]]] = []
        """(when, object) of the endpoints created since then."""
        self.counted: frozenset[_Counted] = frozenset()
        """The endpoints `capacity` counts (`_counted_as`): listed behind it, admitted or adopted since; and the
        answers before a re-made one whose GPUs it holds (uid, answer)."""
        self.rebuilding = False
        self.left: dict[tuple[str, str], str] = {}
        """(namespace, name) -> uid of the endpoints a POST of this replica created and failed to delete again
        (`undo`): the only objects without a status a POST takes as its own. One created by a POST in flight
        looks the same, here or at another replica of the API: a POST of its name meanwhile is refused 409."""
        self.nodes: tuple[tuple[str, str], ...] = ()
        """(name, resourceVersion) of the nodes behind `capacity`."""
        self.written: frozenset[_Written] = frozenset()
        """The EGS workloads behind `capacity`, as their specs were then (`_version`)."""
        self.planned: Counter[tuple[str, str]] = Counter()
        """(endpoint, node) -> the replicas `capacity` holds for the endpoint on the node (`_planned`)."""
        self.orders = OrderBook()
        """The node orders in flight (`autoscaler.orders`), read at every build and, while the server
        runs (`follow_orders`), every decide step between them as the controller reads them: an order
        placed for pods that went before the next POST is known to it, and promised."""
        self.said: frozenset[str] = frozenset()
        """The last build's notices (a node skipped, an annotation that cannot be read), logged once."""
        self.gpu_indexes: Mapping[str, Mapping[str, int]] | None = None
        """Per node, NVML's index of each GPU UUID as last read (`merged_indexes`; None: never tried). Read every
        decide step (`follow_orders`), not under the lock: a POST's build tries
        Prometheus only once, before any read was tried, so a slow or absent Prometheus holds no admission
        back."""

    def admit(self, obj: Mapping[str, Any]) -> tuple[EndpointDecision, dict[str, Any] | None, dict[str, Any]]:
        """The decision for `obj`, the object created when it can be served (`ConflictError` when
        its name exists, unless as what a failed POST of the same spec left; nothing is taken from
        the capacity then), and the status that answers it (written, or the POST failed: `answered`).
        The object is created with its promise annotated (`PROMISE_ANNOTATION`), so that whoever lists
        it before its status is written (the controller, this API's capacity rebuilt) holds it to the
        answer."""
        s = self.services
        with self.lock:
            now = s.clock()
            nodes, endpoints = s.cluster.nodes(), s.cluster.endpoints()
            # Answers go on from a capacity being rebuilt only while it is younger than two TTLs: older, no
            # POST came for a while (or the rebuild is stuck), and it may be as old as the last burst.
            stale = now - self.listed_at >= 2 * s.capacity_ttl_s
            usable = not stale and s.capacity_ttl_s > 0 and _versions(nodes) == self.nodes
            if self.capacity is not None and usable:
                # Another replica's answers first: the workloads written for them are no write outrunning it.
                self.capacity = self._adopted(self.capacity, endpoints, now)
            if self.capacity is None or not usable or self._outrun(s.cluster.owned(WORKLOAD_KINDS)):
                built, self.planned, self.written, self.counted = self._build(now, nodes, endpoints)
                self.listed_at, self.admitted = now, []
                # Listed again after the build (tens of ms): another replica's answers given meanwhile queue ahead of
                # this one, which `_confirmed`'s list holds to their GPUs only, not to their queue (churn seed 750's
                # 202s, docs/benchmark-notes.md).
                self.capacity, self.nodes = self._adopted(built, s.cluster.endpoints(), now), _versions(nodes)
            elif now - self.listed_at >= s.capacity_ttl_s and not self.rebuilding:
                self.rebuilding = True
                threading.Thread(target=self._rebuild, daemon=True, name="egs-api-capacity").start()
            current = replace(self.capacity, orders=self.orders)
            admitted = admit(current, obj, s.settings, s.registry, s.catalog, now)
            if admitted.decision.phase == "Failed":
                return admitted.decision, None, {}
            # A new object's generation is 1; a spec changed before the status is written voids the promise.
            status = answer_status(admitted.decision, 1, admitted.placed)
            meta = obj["metadata"]
            annotations = {**(meta.get("annotations") or {}), PROMISE_ANNOTATION: json.dumps(status["promise"])}
            promised = {**obj, "metadata": {**meta, "annotations": annotations}}
            created = self._create(promised)
            self.counted |= {_counted_as(created)}
            generation = int((created.get("metadata") or {}).get("generation") or 1)
            # With the generation the server gave it: admitted again (on a capacity rebuilt meanwhile, or with
            # another replica's answers), it is held to its answer (a promise for another generation is void); with
            # its uid, a rebuild counts it as this replica's, not another's to adopt again (`_counted_as`).
            promised = {
                **promised,
                "metadata": {**promised["metadata"], "generation": generation, "uid": _uid(created)},
            }
            try:
                admitted, promised, created = self._confirmed(current, promised, admitted, created, now)
            except KubernetesError:
                self.undo(meta["namespace"], meta["name"], _uid(created))
                raise
            if log.isEnabledFor(logging.DEBUG):
                eta = admitted.decision.eta
                # The median the same rule gives (its quantile at 0.5): how much of a 202's slack is the quantile's.
                even = replace(s.settings, eta=replace(s.settings.eta, quantile=0.5))
                median = waiting_eta(current, admitted.waiting, even, s.registry, s.catalog, now)
                # And the law a rule knowing the delays' own would promise from (the churn benchmark's bound).
                law = waiting_law(current, admitted.waiting, s.settings, s.registry, s.catalog, now)
                log.debug(
                    "POST %s: %s, ETA in %s s (at %s, its median at %s), from a capacity %.1f s old; free %s; "
                    "waiting %s; orders %s; law %s",
                    endpoint_key(obj), admitted.decision.phase, None if eta is None else round(eta - now),
                    None if eta is None else f"{eta:.3f}", None if median is None else f"{median:.3f}",
                    now - self.listed_at, _room(current.free),
                    dict(current.waiting), {c: [round(now - t) for t in ts] for c, ts in current.orders.orders.items()},
                    None if law is None else f"{now:.3f} + {[round(t - now, 3) for t in law]}",
                )  # fmt: skip
            self.capacity = admitted.capacity
            self.planned += _planned(admitted.placed)
            self.admitted.append((s.clock(), promised))
            return admitted.decision, created, answer_status(admitted.decision, generation, admitted.placed)

    def forget(self, deleted: tuple[str, str] | None = None) -> None:
        """An endpoint was deleted (`deleted`: through the API, with any leftover of that name): the next POST
        builds the capacity again (its GPUs are free)."""
        with self.lock:
            self.capacity = None
            if deleted is not None:
                self.left.pop(deleted, None)

    def undo(self, namespace: str, name: str, uid: str) -> None:
        """A POST failed after its create: delete the endpoint it created again (not another one posted
        since under its name) and give its GPUs back. When the delete fails too, the endpoint stays
        without a promise, and the POST retried completes it."""
        try:
            self.services.cluster.delete(ie.API_VERSION, ie.KIND, namespace, name, uid)
        except KubernetesError as e:
            log.warning("endpoint %s/%s left without a promise (a retried POST completes it): %s", namespace, name, e)
            with self.lock:
                self.left[(namespace, name)] = uid
        self.forget()

    def _create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create `obj`, or take the one a failed POST of this replica with the same spec left behind (no status
        yet): not one a POST in flight created, here or at another replica (churn `--api-replicas 2`)."""
        cluster = self.services.cluster
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        try:
            created = cluster.create(obj)
        except ConflictError:
            if key not in self.left:
                raise
            existing = cluster.endpoint(*key)
            if _uid(existing) != self.left[key] or (existing.get("status") or {}).get("phase"):
                del self.left[key]  # the leftover went, or the controller took it: nobody's leftover now
                raise
            if existing.get("spec") != obj["spec"]:
                raise
            del self.left[key]
            return existing
        self.left.pop(key, None)  # a create of its name succeeded: the leftover went
        return created

    def _confirmed(
        self, before: Capacity, obj: dict[str, Any], admitted: Admitted, created: dict[str, Any], now: float
    ) -> tuple[Admitted, dict[str, Any], dict[str, Any]]:
        """`admitted`, the answer to `obj` (created as `created`), or that answer re-made where the endpoints
        listed after the create hold an answer of another replica of the API on GPUs it takes; with the object
        and the created one as annotated then, before the client hears anything.

        Write before read, as etcd orders it: a list holds every create that finished before it. Of two POSTs
        answered at once on the same GPUs (each admitted before the other's create), the later create's list
        sees the earlier one, and that answer is re-made (admitted again on `before` with the other's adopted,
        held to its GPUs where they are still free) and its promise annotation patched. Both are re-made when
        both lists came after both creates: rare, and safe (each yields the GPUs the other was answered first).
        A re-made answer is a write too, so the endpoints are listed once more after it, until a list holds no
        answer not counted yet that takes this one's GPUs: each round takes more of them, which are finite."""
        s = self.services
        while True:
            seen = self.counted
            before = self._adopted(before, s.cluster.endpoints(), now)
            if self.counted == seen:
                return admitted, obj, created
            again = admit(before, obj, s.settings, s.registry, s.catalog, now)
            if _held(again.placed) == _held(admitted.placed):
                return replace(admitted, capacity=hold(again.capacity, obj, earlier(obj).answers)), obj, created
            meta = obj["metadata"]
            promise = json.dumps(answer_status(again.decision, meta["generation"], again.placed)["promise"])
            log.info(
                "POST %s: answer re-made, %s on %s -> %s on %s: another replica of the API answered its GPUs meanwhile",
                endpoint_key(obj), admitted.decision.phase, _where(admitted.placed), again.decision.phase,
                _where(again.placed),
            )  # fmt: skip
            # The answers before stay held, here and at every replica, while the controller may be placing it there.
            annotation = {
                PROMISE_ANNOTATION: promise,
                REMADE_ANNOTATION: remade(obj, meta["annotations"][PROMISE_ANNOTATION], now),
            }
            obj = {**obj, "metadata": {**meta, "annotations": {**meta["annotations"], **annotation}}}
            created = s.cluster.annotate(meta["namespace"], meta["name"], annotation, meta["uid"], FIELD_MANAGER)
            self.counted |= {_counted_as(created)}
            admitted = replace(again, capacity=hold(again.capacity, obj, earlier(obj).answers))

    def _outrun(self, listed: list[dict[str, Any]]) -> bool:
        """Whether the controller wrote, since the capacity's listing, a workload (a new one, or a new spec) that
        places a replica on a node where the capacity holds fewer of its endpoint's: counted over every workload
        (`listed`) of such an endpoint, as the workloads record their plan (the nodes being provisioned aside).
        Logged: a burst of POSTs that builds again at every answer is slow, and this says why."""
        written = {_version(o)[:3] for o in listed if _version(o) not in self.written}
        if not written:
            return False
        owned = read_owned(listed, self.services.catalog)
        changed = {w.key for w in owned if (w.kind, w.namespace, w.name) in written}
        there = Counter(
            (w.key, node)
            for w in owned
            if w.key in changed and w.shape is not None
            for replica in w.shape.planned
            for node, _ in replica
            if not node.startswith(PROVISIONING_PREFIX)
        )
        outrun = sorted({k for k, n in there.items() if n > self.planned[k]})
        if outrun:
            log.info(
                "capacity built again: the controller placed replicas it did not count (%s)",
                ", ".join(f"{key} on {node}" for key, node in outrun),
            )
        return bool(outrun)

    def _adopted(self, capacity: Capacity, listed: list[dict[str, Any]], now: float) -> Capacity:
        """`capacity` with the endpoints `listed` that another replica of the API answered since its listing
        admitted onto it, each taking the GPUs it was answered. One written otherwise (kubectl) holds no answer:
        the next rebuild places it as the controller does. An answer re-made (`_confirmed`) is taken again at its
        new answer, the GPUs of its answers before (`REMADE_ANNOTATION`) held as well where this view did not count
        them yet: the controller may have listed it at one of them and be placing it there (churn seed 751, three
        replicas: a build at once answered that room 201 again, and the controller bound the re-made endpoint on
        it). A build holds them too, for `REMADE_HOLD_LOOPS` intervals (`_build`)."""
        s = self.services
        for obj in listed:
            if _counted_as(obj) not in self.counted:
                self.counted |= {_counted_as(obj)}
                if promise_of(obj) is not None:
                    adopted = admit(capacity, obj, s.settings, s.registry, s.catalog, now)
                    capacity, self.planned = adopted.capacity, self.planned + _planned(adopted.placed)
                    self.admitted.append((now, obj))  # a rebuild that listed before it takes it too
                uid = _uid(obj)
                answers = [a for a in self._unexpired(obj, now) if (uid, a) not in self.counted]
                capacity, self.counted = hold(capacity, obj, answers), self.counted | {(uid, a) for a in answers}
        return capacity

    def _unexpired(self, obj: Mapping[str, Any], now: float) -> tuple[str, ...]:
        """The answers `obj`'s POST gave before its own (`REMADE_ANNOTATION`) while a controller loop that listed one
        may still be placing it there (`REMADE_HOLD_LOOPS` intervals). As long before: another replica's clock may be
        ahead, but one re-made years ahead (an annotation edited) held its GPUs from every other POST until then."""
        past = earlier(obj)
        return past.answers if abs(now - past.at) < REMADE_HOLD_LOOPS * self.services.settings.eta.step_s else ()

    def _build(
        self, now: float, nodes: list[dict[str, Any]], endpoints: list[dict[str, Any]] | None = None
    ) -> tuple[Capacity, Counter[tuple[str, str]], frozenset[_Written], frozenset[_Counted]]:
        """The capacity the decide step leaves on what the cluster holds now (the endpoints listed now unless
        given), less the GPUs of re-made answers' earlier answers while they are held (`hold`), with what
        `_outrun` checks it by and the endpoints it counts (`_adopted`: those answers among them)."""
        s, cluster = self.services, self.services.cluster
        pods = cluster.gpu_pods()
        book = self._read_orders(nodes, pods, now)
        endpoints, owned = cluster.endpoints() if endpoints is None else endpoints, cluster.owned()
        obs = Observation(
            nodes, endpoints, owned, signals={}, pods=pods, orders=book,
            gpu_indexes=self.gpu_indexes if self.gpu_indexes is not None else self._read_indexes(nodes, now),
        )  # fmt: skip
        # GPUs the plan gives a replacement for a pod stranded on a NotReady node stay held here, though its
        # workload makes no pod for it before the eviction: answered 201 on them, new endpoints were demoted
        # when the controller kept them for the replacement (churn seed 4); a 202 there is only early.
        decision = decide(obs, _no_moves(s.settings), s.registry, s.catalog, now)
        self.said = report(decision, self.said, log)
        workloads = [o for o in owned if o.get("kind") in WORKLOAD_KINDS]
        # A re-made answer's earlier GPUs stay held even once its workload shows up: until its pods are bound, the
        # decide step places it at its answer, not where the workload put it (churn seed 752: a build listed the
        # workload the controller wrote at a first answer before its pod was bound, and answered that room again).
        built, held = capacity(decision, s.catalog), set[_Counted]()
        for obj in endpoints:
            if answers := self._unexpired(obj, now):
                built, held = hold(built, obj, answers), held | {(_uid(obj), a) for a in answers}
                log.debug("capacity holds %s's answers before its re-made one", endpoint_key(obj))
        return (
            built,
            _planned(decision.placed.placements),
            frozenset(map(_version, workloads)),
            frozenset(map(_counted_as, endpoints)) | held,
        )

    def _read_indexes(self, nodes: list[dict[str, Any]], now: float) -> Mapping[str, Mapping[str, int]]:
        """The GPU index map after a read of Prometheus (the last one where it fails; at the first, the one the
        controller left on its Lease, so that an API started while Prometheus is down reads KAI's shares where
        the controller does, not at EGS's own numbering, off the GPUs the controller holds for them)."""
        read, last = self.services.gpu_indexes, self.gpu_indexes if self.gpu_indexes is not None else self._carried()
        self.gpu_indexes = last  # tried: a build under the lock does not wait on it again
        if read is not None:
            try:
                self.gpu_indexes = merged_indexes(last, read(now), nodes)
            except TemporaryError as e:
                log.warning("GPU indexes not read (the last ones are used meanwhile): %s", e)
        return self.gpu_indexes

    def _carried(self) -> dict[str, dict[str, int]]:
        """The index maps on the controller's Lease (`autoscaler.pods.GPU_INDEXES_NOTE`); {} where none is."""
        s = self.services
        try:
            lease = s.cluster.lease(s.settings.namespace, LEASE_NAME) or {}
        except KubernetesError as e:  # an older chart's account may not read it: numbered by EGS, as before
            log.info("GPU indexes not read from the controller's Lease: %s", e)
            return {}
        return read_carried(((lease.get("metadata") or {}).get("annotations") or {}).get(GPU_INDEXES_NOTE))

    def _read_orders(self, nodes: list[dict[str, Any]], pods: list[dict[str, Any]], at: float) -> OrderBook:
        """The order book after a read of the cluster made at `at`. A read older than the book's last is
        not applied: it would take back what a newer read saw, and date the orders it finds by its older
        time. Under the lock: a background rebuild holds none, and the order thread writes the book too."""
        with self.lock:
            if self.orders.read_at is None or at >= self.orders.read_at:
                s = self.services
                self.orders = track(self.orders, pods, nodes, s.catalog, s.settings, at)
            return self.orders

    def follow_orders(self, stop: threading.Event) -> None:
        """Read the node orders and the GPU index map every decide step until `stop` is set."""
        s = self.services
        while not stop.wait(s.settings.eta.step_s):
            try:
                nodes, pods = s.cluster.nodes(), s.cluster.gpu_pods()
            except (TemporaryError, KubernetesError) as e:
                log.warning("node orders not read (the last ones are used meanwhile): %s", e)
                continue
            self._read_orders(nodes, pods, s.clock())
            self._read_indexes(nodes, s.clock())

    def _rebuild(self) -> None:
        s = self.services
        started = s.clock()
        try:
            nodes = s.cluster.nodes()
            built, planned, written, listed = self._build(started, nodes)
        except TemporaryError as e:
            log.warning("capacity not rebuilt (the last one is used meanwhile): %s", e)
            with self.lock:
                self.rebuilding = False
            return
        with self.lock:
            since = [(t, obj) for t, obj in self.admitted if t >= started]
            for _, obj in since:
                if endpoint_key(obj) not in built.endpoints:
                    again = admit(built, obj, s.settings, s.registry, s.catalog, s.clock())
                    built = hold(again.capacity, obj, self._unexpired(obj, s.clock()))
                    planned += _planned(again.placed)
            if self.capacity is not None and started >= self.listed_at:  # not forgotten, nor built anew, meanwhile
                self.capacity, self.listed_at, self.admitted = built, started, since
                self.nodes, self.planned, self.written = _versions(nodes), planned, written
                self.counted = listed | {_counted_as(obj) for _, obj in since}
            self.rebuilding = False


def _room(free: Inventory) -> dict[str, list[str]]:
    """GPU class -> `node:whole GPUs idle[+MIB of shared room]/GPUs` of the schedulable nodes with room: what a
    debug log shows the answer came from."""
    room: dict[str, list[str]] = {}
    for node in free.schedulable():
        idle = sum(1 for g in node.gpus if g.holders == 0)
        shared = sum(node.available_mib(g) for g in node.gpus if g.holders)
        slots = sum(s.free for s in node.mig)
        if idle or shared or slots:
            extra = f"+{shared}MiB" if shared else f"+{slots}mig" if slots else ""
            room.setdefault(node.model.name, []).append(f"{node.node}:{idle}{extra}/{len(node.gpus)}")
    return room


_SHOWN: Mapping[str, TypeAdapter[Any]] = {
    k: TypeAdapter(f.rebuild_annotation())
    for k, f in EndpointView.model_fields.items()
    if k not in ("name", "namespace", "model", "conditions")
}
"""The status fields an `EndpointView` shows as they are, each with its type on the view (a field added there is
shown, and checked as it is declared)."""


def _view(obj: Mapping[str, Any]) -> EndpointView:
    """What can be read of `obj`: a part or a status field of another type (`spec` a string, `status.phase` a list,
    as one stored before the CRD's schema said so holds) is shown as absent, not a 500 for the whole list."""
    meta, spec, status = (
        part if isinstance(part := obj.get(k), Mapping) else {} for k in ("metadata", "spec", "status")
    )
    shown = {k: status[k] for k, adapter in _SHOWN.items() if k in status and _readable(adapter, status[k])}
    conditions = status.get("conditions")
    return EndpointView.model_validate({
        "name": as_text(meta.get("name")), "namespace": as_text(meta.get("namespace")),
        "model": as_text(spec.get("model")),
        **shown,
        "conditions": [{k: str(c.get(k, "")) for k in ("type", "status", "reason", "message")}
                       for c in as_list(conditions) if isinstance(c, Mapping)],
    })  # fmt: skip


def _readable(adapter: TypeAdapter[Any], value: Any) -> bool:
    """Whether `value` is of the field's type as JSON holds it (no coercion: `True` is no count, `1e30` no int)."""
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True
