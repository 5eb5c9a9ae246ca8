"""The controller's and the endpoint API's one door to Kubernetes, through the official client.

Everything EGS reads from or writes to a cluster goes through `Cluster`; the pure core sees plain
dicts (the JSON the API server sends) and never a `kubernetes` model or exception. What each method
promises:

- reads (`nodes`, `endpoints`, `owned`, `gpu_pods`) return every matching object, whole (with its
  `apiVersion` and `kind`), `[]` when there is none; an object gone between list and use is the
  caller's normal case, not an error;
- `apply(obj)` is server-side apply under one field manager (`FIELD_MANAGER`) with `force`, so it
  creates or updates and a second apply of the same object changes nothing; it returns the stored
  object. A 409 (a write raced another) is retried `conflict_retries` times, then raised;
- `apply_status` applies an InferenceEndpoint's `status` subresource the same way; with the uid of the
  endpoint it was decided for, a name that holds another endpoint now (deleted and posted again) is
  `NotFoundError`, at once;
- `delete` of an object already gone returns quietly (the goal, absence, is reached), and so does one
  given a uid whose name holds another object now;
- `watch(api_version, kind)` streams the kind's changes from now on (the owned kinds: only what EGS
  wrote), as (type, object); the stream ends when the server ends it (`timeout_s`), raises
  `KubernetesError` when it breaks (an `ERROR` event such as 410 Gone included), and `close()` ends
  it from another thread. `wrote(api_version, kind, obj)` says whether `obj` is the version this
  client's own last write of it returned, so that a watcher can pass over the echo of its own writes;
- `create_event`, `patch_event` write an events.k8s.io/v1 Event and its `series` (`autoscaler.events`);
- `lease`, `take_lease` read and write the leader Lease (coordination.k8s.io/v1); a write carries the
  resourceVersion it read, so of two replicas racing for it exactly one wins and the other gets
  `ConflictError`, is bounded as an apply is, and returns the Lease as written (its next write's version);
- `review_token` and `review_access` ask the API server who a bearer token is (TokenReview) and
  whether that user may do a verb on InferenceEndpoints in a namespace (SubjectAccessReview).

Errors, translated from `ApiException` and urllib3 at this edge, most specific first, each also
one of the project's kinds (`common.errors`), so the caller knows from the type what to do next:

    KubernetesError (EgsError)
    ├── NotFoundError                              404 (the object or its namespace is gone)
    ├── ConflictError (TemporaryError)             409 (retried by `apply`; a lost Lease race)
    ├── InvalidError (InputError)                  400 / 422 (the object is wrong: retrying will not help)
    ├── ForbiddenError (SetupError)                401 / 403 (the controller's RBAC or token)
    ├── PolicyRefusedError (InputError)            403 from admission: a ResourceQuota, a webhook, Pod Security
    └── TemporaryKubernetesError (TemporaryError)  5xx, 429, timeouts, refused connections
                                                   (`retry_after_s`: the server's `Retry-After`, else 0)
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from autoscaler.endpoint import CRD_NAME, GROUP, PLURAL, VERSION
from autoscaler.pods import asks_for_gpu
from common.errors import EgsError, InputError, SetupError, StaleVersionError, TemporaryError

FIELD_MANAGER = "egs-controller"
MANAGED_BY = "app.kubernetes.io/managed-by=egs"
"""The label selector of every object the controller writes."""
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
"""The pods not ended (Pending, Running and the rare Unknown), as one field selector. Only Pending and Running
ones are read as holding or waiting for GPUs (`autoscaler.pods.pod_allocations`, `state.incumbents`): an
Unknown pod is one whose node stopped reporting it."""
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


class KubernetesError(EgsError):
    """A Kubernetes API call failed; `status` is the HTTP status (0 when there was no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(KubernetesError):
    """The object (or its namespace, or its resource type) does not exist."""


class ConflictError(KubernetesError, StaleVersionError):
    """The object changed since it was read, or already exists."""


class InvalidError(KubernetesError, InputError):
    """The API server rejected the object; its message names the field."""


class ForbiddenError(KubernetesError, SetupError):
    """The credentials are wrong or lack the permission."""


class PolicyRefusedError(KubernetesError, InputError):
    """The API server's admission refused this object (a namespace's ResourceQuota, a validating webhook
    such as Gatekeeper's or Kyverno's, a ValidatingAdmissionPolicy, Pod Security): a 403 as RBAC's is, but
    about the object, not the caller's credentials, so no reason to stop the process."""


POLICY_REFUSALS = ("exceeded quota", "admission webhook", "denied request", "violates PodSecurity")
"""What the API server's admission plugins write in a 403's message (RBAC's says `cannot <verb> resource`)."""


class TemporaryKubernetesError(KubernetesError, TemporaryError):
    """The API server is unavailable, overloaded or slow; the same call may succeed later."""

    def __init__(self, message: str, status: int = 0, retry_after_s: float = 0.0) -> None:
        """`retry_after_s`: the wait the API server asked for (a 429's or 503's `Retry-After`), else 0:
        the caller's own backoff decides."""
        super().__init__(message, status)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Kind:
    """Where objects of one kind live in the API."""

    api_version: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        root = f"/apis/{self.api_version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        parts += [p for p in (name, sub) if p]
        return "/".join(parts)


KINDS: Mapping[tuple[str, str], Kind] = {
    ("v1", "Node"): Kind("v1", "nodes", namespaced=False),
    ("v1", "Pod"): Kind("v1", "pods"),
    ("v1", "Service"): Kind("v1", "services"),
    ("v1", "PodTemplate"): Kind("v1", "podtemplates"),
    ("policy/v1", "PodDisruptionBudget"): Kind("policy/v1", "poddisruptionbudgets"),
    ("apps/v1", "Deployment"): Kind("apps/v1", "deployments"),
    ("scheduling.k8s.io/v1", "PriorityClass"): Kind("scheduling.k8s.io/v1", "priorityclasses", namespaced=False),
    ("coordination.k8s.io/v1", "Lease"): Kind("coordination.k8s.io/v1", "leases"),
    ("events.k8s.io/v1", "Event"): Kind("events.k8s.io/v1", "events"),
    (f"{GROUP}/{VERSION}", "InferenceEndpoint"): Kind(f"{GROUP}/{VERSION}", PLURAL),
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): Kind("leaderworkerset.x-k8s.io/v1", "leaderworkersets"),
    ("keda.sh/v1alpha1", "ScaledObject"): Kind("keda.sh/v1alpha1", "scaledobjects"),
    ("autoscaling.x-k8s.io/v1alpha1", "CapacityBuffer"): Kind("autoscaling.x-k8s.io/v1alpha1", "capacitybuffers"),
    ("karpenter.sh/v1", "NodePool"): Kind("karpenter.sh/v1", "nodepools", namespaced=False),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): Kind(
        "apiextensions.k8s.io/v1", "customresourcedefinitions", namespaced=False
    ),
}
"""Every kind EGS reads or writes. The official client's generic `call_api` serves them all, so a
CRD that is not installed (LeaderWorkerSet, KEDA, CapacityBuffer, Karpenter) costs nothing until
the controller is configured to write it."""

OWNED_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
)
"""Kinds the controller lists back every loop to compare with what it intends; the optional CRDs'
kinds are added by `Cluster(owned_kinds=...)` when the configuration uses them."""

KIND_NAMES = {k: name for (_, name), k in KINDS.items()}
ENDPOINT = KINDS[(f"{GROUP}/{VERSION}", "InferenceEndpoint")]
LEASE = KINDS[("coordination.k8s.io/v1", "Lease")]
EVENT = KINDS[("events.k8s.io/v1", "Event")]


def kind_of(obj: Mapping[str, Any]) -> Kind:
    try:
        return KINDS[(obj["apiVersion"], obj["kind"])]
    except KeyError:
        raise InvalidError(f"EGS does not write {obj.get('apiVersion')} {obj.get('kind')}") from None


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn the client's exceptions into this module's, naming `what` was being done."""
    try:
        yield
    except ApiException as e:
        raise _error(what, e.status or 0, _message(e), _retry_after(e)) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise TemporaryKubernetesError(f"{what}: {e}") from e


def _error(what: str, status: int, message: str, retry_after_s: float = 0.0) -> KubernetesError:
    text = f"{what}: {status} {message}"
    if status == 404:
        return NotFoundError(text, status)
    if status == 409:
        return ConflictError(text, status)
    if status in (400, 422):
        return InvalidError(text, status)
    if status == 403 and any(marker in message for marker in POLICY_REFUSALS):
        return PolicyRefusedError(text, status)
    if status in (401, 403):
        return ForbiddenError(text, status)
    if status == 429 or status >= 500 or status == 0:
        return TemporaryKubernetesError(text, status, retry_after_s)
    return KubernetesError(text, status)


def _retry_after(e: ApiException) -> float:
    """The seconds of a `Retry-After` header (API Priority and Fairness sends one with its 429s); 0 when
    there is none or it is a date (the API server sends seconds)."""
    try:
        return max(0.0, float((e.headers or {}).get("Retry-After", 0)))
    except (TypeError, ValueError):
        return 0.0


def _message(e: ApiException) -> str:
    try:
        body = json.loads(e.body or "{}")
    except (TypeError, ValueError):
        return str(e.reason)
    # 256 characters: a Status message can carry a whole object; the log needs the first sentence.
    return str(body.get("message") or e.reason)[:256]


class Cluster:
    """A Kubernetes cluster, reached through one `kubernetes.client.ApiClient`."""

    def __init__(
        self,
        api: client.ApiClient,
        field_manager: str = FIELD_MANAGER,
        conflict_retries: int = 3,
        timeout_s: float = 10.0,
        owned_kinds: tuple[tuple[str, str], ...] = OWNED_KINDS,
        write_timeout_s: float | None = None,
    ) -> None:
        """`write_timeout_s` (default `timeout_s`) bounds each apply and delete: the controller gives it
        the Lease's margin (lease duration - renew deadline), so that a write begun by a leader ends
        before another replica may lead."""
        self.api = api
        self.field_manager = field_manager
        self.conflict_retries = conflict_retries
        self.timeout_s = timeout_s
        self.write_timeout_s = write_timeout_s or timeout_s
        self.owned_kinds = owned_kinds
        self.writes = 0
        """Write calls made (apply, status, delete, lease), for tests and the reconcile benchmark."""
        self._written: OrderedDict[str, str] = OrderedDict()
        """Object path -> the resourceVersion this client's last write of it returned (`wrote`)."""
        self._writing: set[str] = set()
        """Object paths being written now."""

    @classmethod
    def connect(cls, kubeconfig: Path | None = None, **options: Any) -> Cluster:
        """From `kubeconfig`, else in-cluster (a pod's service account), else ~/.kube/config."""
        configuration = client.Configuration()
        try:
            if kubeconfig is not None:
                config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                try:
                    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                except config.ConfigException:
                    config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError, ValueError, yaml.YAMLError) as e:  # ValueError: not UTF-8
            if kubeconfig is not None:
                raise InputError(f"not a usable kubeconfig: {e}", source=kubeconfig) from e
            raise SetupError(f"no cluster to talk to (not in a pod, no ~/.kube/config): give --kubeconfig ({e})") from e
        return cls(client.ApiClient(configuration), **options)

    # -- reads ---------------------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        return self._list(KINDS[("v1", "Node")])

    def endpoints(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self._list(ENDPOINT, namespace)

    def endpoint(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call("GET", ENDPOINT.path(namespace, name), f"read InferenceEndpoint {namespace}/{name}")

    def endpoint_crd(self) -> dict[str, Any]:
        """The InferenceEndpoint CRD as the API server serves it (`NotFoundError`: not installed)."""
        path = KINDS[("apiextensions.k8s.io/v1", "CustomResourceDefinition")].path(name=CRD_NAME)
        return self._call("GET", path, f"read CustomResourceDefinition {CRD_NAME}")

    def owned(self, kinds: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Every object the controller wrote (label `app.kubernetes.io/managed-by=egs`), all namespaces; of
        the owned kinds named in `kinds` only, when given (the API's check of the workloads: one list)."""
        objects: list[dict[str, Any]] = []
        for api_version, kind in self.owned_kinds:
            if kinds is not None and kind not in kinds:
                continue
            try:
                listed = self._list(KINDS[(api_version, kind)], labels=MANAGED_BY)
            except NotFoundError:
                continue  # the kind's CRD is not installed: nothing of it to own
            objects += listed
        return objects

    def gpu_pods(self) -> list[dict[str, Any]]:
        """Pods not ended, all namespaces, that ask for a GPU resource: what holds GPUs and what waits for
        them (`autoscaler.pods`). One list, filtered on the server, so that every pod is read as of one
        moment: with two (Pending, then Running) a pod that started its containers between them was read
        twice, its GPUs held twice, and one bound between them and still Pending was not read at all."""
        pods = self._list(KINDS[("v1", "Pod")], fields=LIVE_PODS)
        return [p for p in pods if asks_for_gpu(p)]

    # -- writes --------------------------------------------------------------------------------

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind = kind_of(obj)
        meta = obj["metadata"]
        path = kind.path(meta.get("namespace"), meta["name"])
        return self._apply(path, obj, f"apply {obj['kind']} {_name(obj)}")

    def apply_status(self, namespace: str, name: str, status: Mapping[str, Any], uid: str = "") -> dict[str, Any]:
        """`uid`, when given, is the endpoint the status was decided for: the API server refuses the write
        (409) when the name now holds another one, deleted and posted again meanwhile, whose own status (its
        promise) the write would otherwise replace; that endpoint is gone (`NotFoundError`), not busy."""
        meta = {"name": name, "namespace": namespace} | ({"uid": uid} if uid else {})
        body = {"apiVersion": ENDPOINT.api_version, "kind": "InferenceEndpoint", "metadata": meta}
        body["status"] = dict(status)
        # Forced, with no resourceVersion, a status apply conflicts only on its uid: retrying it cannot help.
        path, what = ENDPOINT.path(namespace, name, "status"), f"status of {namespace}/{name}"
        try:
            return self._apply(path, body, what, retries=0 if uid else None)
        except ConflictError as e:
            if uid and (self.endpoint(namespace, name).get("metadata") or {}).get("uid") != uid:
                raise NotFoundError(f"InferenceEndpoint {namespace}/{name} {uid}: posted again since", 409) from e
            raise

    def annotate(
        self, namespace: str, name: str, annotations: Mapping[str, str], uid: str, manager: str
    ) -> dict[str, Any]:
        """Set `annotations` on the endpoint `uid` (its others stay) as field manager `manager`; refused when the
        name holds another one now, deleted and posted again meanwhile."""
        meta = {"name": name, "namespace": namespace, "uid": uid, "annotations": dict(annotations)}
        body = {"apiVersion": ENDPOINT.api_version, "kind": "InferenceEndpoint", "metadata": meta}
        path, what = ENDPOINT.path(namespace, name), f"annotate {namespace}/{name}"
        return self._apply(path, body, what, retries=0, manager=manager)

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create `obj`; `ConflictError` when it already exists."""
        kind = kind_of(obj)
        self.writes += 1
        return self._call("POST", kind.path(obj["metadata"].get("namespace")), f"create {_name(obj)}", dict(obj))

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str, uid: str = "") -> None:
        """Delete the object, if there; with `uid`, only that one (a precondition: the name may hold another
        object now, deleted and created again, which is left alone)."""
        self.writes += 1
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}} if uid else None
        with suppress(NotFoundError):
            path = KINDS[(api_version, kind)].path(namespace, name)
            try:
                self._call("DELETE", path, f"delete {kind} {name}", body, timeout_s=self.write_timeout_s)
            except ConflictError:
                if not uid:
                    raise

    # -- watches -------------------------------------------------------------------------------

    def watch(self, api_version: str, kind: str, timeout_s: float = 300.0) -> WatchStream:
        """Changes to objects of the kind from now: a list for the current resourceVersion, then a
        watch from it, which the server ends after `timeout_s`."""
        resource = KINDS[(api_version, kind)]
        labels = [("labelSelector", MANAGED_BY)] if (api_version, kind) in self.owned_kinds else []
        what = f"watch {resource.plural}"
        listed = self._call("GET", resource.path(), f"list {resource.plural}", query=[("limit", "1"), *labels])
        version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        query = [("watch", "true"), ("timeoutSeconds", str(round(timeout_s))), *labels]
        query += [("resourceVersion", version)] if version else []
        headers = {"Accept": "application/json"}
        with translated(what):
            params = self.api.param_serialize(
                method="GET", resource_path=resource.path(), query_params=query, header_params=headers,
                auth_settings=["BearerToken"],
            )  # fmt: skip
            # The read timeout outlasts the server's own end of the stream, so a quiet watch is not an error.
            response = self.api.call_api(*params, _request_timeout=(self.timeout_s, timeout_s + 30))
            if not 200 <= response.status < 300:
                response.read()  # type: ignore[no-untyped-call]
                raise ApiException(http_resp=response, body=(response.data or b"").decode(errors="replace"))
        return WatchStream(response.response, what)

    def wrote(self, api_version: str, kind: str, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        path = KINDS[(api_version, kind)].path(meta.get("namespace"), meta.get("name"))
        # A watch may tell of a write before its answer reached this client: wait for the answer.
        deadline = time.monotonic() + self.timeout_s
        while path in self._writing and time.monotonic() < deadline:
            time.sleep(0.01)
        return bool(meta.get("resourceVersion")) and self._written.get(path) == meta.get("resourceVersion")

    # -- the leader Lease ----------------------------------------------------------------------

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", LEASE.path(namespace, name), f"read Lease {namespace}/{name}")
        except NotFoundError:
            return None

    def take_lease(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        read: Mapping[str, Any] | None,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Write the Lease's `spec` (and `annotations`, beside the ones it has): create it when `read` is None,
        else patch the version `read` came from; the Lease as the API server wrote it."""
        self.writes += 1
        what = f"take Lease {namespace}/{name}"
        noted = {"annotations": dict(annotations)} if annotations else {}
        if read is None:
            meta = {"name": name, **noted}
            body = {"apiVersion": LEASE.api_version, "kind": "Lease", "metadata": meta, "spec": dict(spec)}
            return self._call("POST", LEASE.path(namespace), what, body, timeout_s=self.write_timeout_s)
        version = read.get("metadata", {}).get("resourceVersion")
        patch = {"metadata": {"resourceVersion": version, **noted}, "spec": dict(spec)}
        path = LEASE.path(namespace, name)
        return self._call("PATCH", path, what, patch, content_type=MERGE, timeout_s=self.write_timeout_s)

    # -- Events (autoscaler.events.Recorder writes them) ----------------------------------------

    def create_event(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.writes += 1
        return self._call("POST", EVENT.path(namespace), f"create Event {namespace}", dict(body))

    def patch_event(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A merge patch of an Event (its `series` when it recurs)."""
        self.writes += 1
        what = f"update Event {namespace}/{name}"
        return self._call("PATCH", EVENT.path(namespace, name), what, dict(patch), content_type=MERGE)

    # -- authentication and authorisation, for the endpoint API --------------------------------

    def review_token(self, token: str, audiences: tuple[str, ...] = ()) -> tuple[str, tuple[str, ...]] | None:
        """(user, groups) of a bearer token, or None when the API server does not know it, or (with
        `audiences`) it was issued for none of them."""
        spec: dict[str, Any] = {"token": token}
        if audiences:
            spec["audiences"] = list(audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        answer = self._call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", "TokenReview", body)
        status = answer.get("status") or {}
        if not status.get("authenticated"):
            return None
        # The API server answers with the audiences the token is valid for among those asked; an
        # authenticator that ignores audiences answers none, which must not pass for a match.
        if audiences and not set(status.get("audiences") or ()) & set(audiences):
            return None
        user = status.get("user") or {}
        return str(user.get("username", "")), tuple(user.get("groups") or ())

    def review_access(self, user: str, groups: tuple[str, ...], verb: str, namespace: str) -> bool:
        """Whether `user` may `verb` InferenceEndpoints in `namespace` (SubjectAccessReview)."""
        attributes = {"group": GROUP, "resource": PLURAL, "verb": verb, "namespace": namespace}
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": list(groups), "resourceAttributes": attributes},
        }
        answer = self._call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", "SubjectAccessReview", body)
        return bool((answer.get("status") or {}).get("allowed"))

    # -- plumbing ------------------------------------------------------------------------------

    def _apply(
        self, path: str, body: Mapping[str, Any], what: str, retries: int | None = None, manager: str | None = None
    ) -> dict[str, Any]:
        """Server-side apply as `manager` (`field_manager` by default), a 409 retried `retries` times
        (`conflict_retries` by default)."""
        # Strict: the API server rejects an unknown or duplicate field instead of dropping it.
        query = [("fieldManager", manager or self.field_manager), ("force", "true"), ("fieldValidation", "Strict")]
        key = path.removesuffix("/status")
        self._writing.add(key)
        try:
            write = partial(self._write, "PATCH", path, what, dict(body), query, APPLY)
            stored = _retrying(write, self.conflict_retries if retries is None else retries)
            version = (stored.get("metadata") or {}).get("resourceVersion")
            if version:
                self._written[key] = str(version)
                self._written.move_to_end(key)
                while len(self._written) > WRITTEN_REMEMBERED:
                    self._written.popitem(last=False)
        finally:
            self._writing.discard(key)
        return stored

    def _write(
        self, method: str, path: str, what: str, body: dict[str, Any], query: list[tuple[str, str]], ctype: str
    ) -> dict[str, Any]:
        self.writes += 1
        return self._call(method, path, what, body, query=query, content_type=ctype, timeout_s=self.write_timeout_s)

    def _list(
        self, kind: Kind, namespace: str | None = None, labels: str = "", fields: str = ""
    ) -> list[dict[str, Any]]:
        query = [(k, v) for k, v in (("labelSelector", labels), ("fieldSelector", fields)) if v]
        listed = self._call("GET", kind.path(namespace), f"list {kind.plural}", query=query)
        # A list's items carry no apiVersion and kind (the list's own kind says them): put them back, so
        # that an item is a whole object, which an Event can name (`regarding`).
        name = KIND_NAMES[kind]
        return [{"apiVersion": kind.api_version, "kind": name, **item} for item in listed.get("items") or []]

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        with translated(what):
            params = self.api.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*params, _request_timeout=timeout_s or self.timeout_s)
            response.read()  # type: ignore[no-untyped-call]
            if not 200 <= response.status < 300:
                raise ApiException(http_resp=response, body=(response.data or b"").decode(errors="replace"))
        data = response.data
        decoded: dict[str, Any] = json.loads(data) if data else {}
        return decoded


WRITTEN_REMEMBERED = 100_000
"""Objects whose last written version `wrote` remembers: more than one cluster's EGS objects."""


class WatchStream:
    """One watch's changes, as (type, object); `close()` from another thread ends the iteration."""

    def __init__(self, raw: urllib3.BaseHTTPResponse, what: str) -> None:
        self.raw = raw
        self.what = what

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with translated(self.what):
            for line in self.raw:
                if not line.strip():
                    continue
                try:
                    change = json.loads(line)
                except ValueError as e:
                    raise TemporaryKubernetesError(f"{self.what}: not a watch event: {e}") from e
                obj = change.get("object") or {}
                if change.get("type") == "ERROR":  # e.g. 410 Gone: the version is too old, list again
                    raise _error(self.what, int(obj.get("code") or 0), str(obj.get("message", "")))
                yield str(change.get("type")), obj

    def close(self) -> None:
        # urllib3 refuses to shut down a stream that already ended (ValueError, RuntimeError): nothing to end
        with suppress(OSError, ValueError, RuntimeError, urllib3.exceptions.HTTPError):
            self.raw.shutdown()
        self.raw.release_conn()


def _retrying(write: Callable[[], dict[str, Any]], retries: int) -> dict[str, Any]:
    for attempt in range(retries + 1):
        try:
            return write()
        except ConflictError:
            if attempt == retries:
                raise
            time.sleep(0.05 * 2**attempt)  # a conflicting writer usually finishes within milliseconds
    raise AssertionError("unreachable")


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta.get("name"))
