"""Workloads: the scheduler's manifests as the controller holds them.

Owned by the endpoint (garbage-collected with it), with the per-node pin made a preference that a new
plan never changes (`preferring`), and with the replica count left to KEDA (a ScaledObject) or an HPA
where the endpoint asks for one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from autoscaler import endpoint as ie
from autoscaler.decide.decision import EndpointDecision
from autoscaler.decide.placement import renumbered
from autoscaler.decide.settings import Settings
from autoscaler.decide.state import (
    REQUEST_NAME,
    WORKLOAD_KINDS,
    WORKLOAD_LABEL,
    Owned,
    Shape,
    Taken,
    endpoint_key,
    recorded_shape,
    taken_annotation,
)
from autoscaler.decide.status import found_no_room
from autoscaler.decide.targets import QUEUE_HIGH, declared_throughput
from autoscaler.decide.waiting import PROVISIONING_PREFIX
from autoscaler.endpoint import Endpoint
from autoscaler.pods import WARM_POOL
from scheduler.catalog import Catalog
from scheduler.manifests import RECORDED, ManifestError, dns_label, manifests, numbered, workload_name
from scheduler.plan import Placement, Plan, Request
from scheduler.registry import Registry

MANAGED = {"app.kubernetes.io/managed-by": "egs"}
COMPONENT = "app.kubernetes.io/component"
TEMPLATE = "egs.io/template"
"""The annotation recording a workload's pod templates as EGS rendered them (`template_hash`)."""


def workload_objects(
    ep: Endpoint,
    request: Request,
    placements: Sequence[Placement],
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    taken: Sequence[Taken] = (),
    observed: Mapping[tuple[str, str, str, str], Mapping[str, Any]] | None = None,
    unbound: Collection[str] = (),
    replacing: Collection[str] = (),
    mine: Sequence[Owned] = (),
    respecified: bool = False,
    queued: bool = False,
) -> list[dict[str, Any]]:
    """The workloads, Service, PodDisruptionBudget and ScaledObjects of one endpoint's replicas (placed
    and waiting), the workloads recording the GPUs its replicas were found unable to bind to (`taken`)
    and keeping the node preference they were created with (`observed`: the owned objects by identity)
    for this incarnation of the endpoint, those of a GPU class in `unbound` asking for no new replica
    that waits for a node (`asked`), each named as the workload of `mine` (the endpoint's) of its shape, none
    as one a consolidation or a shape change is `replacing`, nor as one of another shape, nor, where its spec
    changed (`respecified`), as one whose pod template it changes (`named`); one that keeps its name keeps its
    pod templates as they are while its new template waits its turn (`queued`: `paced`); `ManifestError` when
    the plan cannot be rendered, which the caller reports on that endpoint alone."""
    plan = Plan(placements=tuple(renumbered(placements)))
    rendered = [owned_by(o, ep) for o in manifests(plan, registry, catalog, [request], validated=False)]
    for obj in rendered:
        if obj["kind"] in WORKLOAD_KINDS:
            obj["metadata"]["annotations"][TEMPLATE] = template_hash(obj)
    ours = _this_incarnation(ep, mine, observed or {})
    wanted = (
        {shape: obj["metadata"]["annotations"][TEMPLATE] for shape, obj in _by_shape(rendered)} if respecified else {}
    )
    staying, replaced = _staying(ours, replacing, observed or {}, wanted)
    named(rendered, staying, {*(w.name for w in ours), *replacing})
    befores = {
        identity(obj): _incarnation((observed or {}).get(identity(obj)), ep)
        for obj in rendered
        if obj["kind"] in WORKLOAD_KINDS
    }
    for obj in rendered:
        if obj["kind"] in WORKLOAD_KINDS:
            preferring(obj, befores[identity(obj)])
            obj["metadata"]["annotations"] |= taken_annotation(taken)
            if queued and (before := befores[identity(obj)]) is not None:
                _kept_templates(obj, before)
    predecessors = {
        obj["metadata"]["name"]: was
        for shape, obj in _by_shape(rendered)
        if shape in replaced and (was := (observed or {}).get(replaced[shape].identity)) is not None
    }
    scaled = scaled_objects(ep, rendered, settings, observed or {}, predecessors)
    for obj in rendered:  # after the autoscaler's count: a successor carries its predecessor's, capped alike
        shape = recorded_shape(obj["metadata"]["annotations"]) if obj["kind"] in WORKLOAD_KINDS else None
        if shape is not None and shape.gpu_class in unbound and "replicas" in obj["spec"]:
            obj["spec"]["replicas"] = asked(obj, shape, befores[identity(obj)])
    return [*rendered, owned_by(disruption_budget(ep), ep), *scaled]


def named(rendered: Sequence[dict[str, Any]], staying: Mapping[Shape, str], taken: Collection[str]) -> None:
    """Each rendered workload named as the endpoint's workload of its shape that stays (`staying`, shapes
    without their planned GPUs), else as rendered unless that name is `taken` (the endpoint's workloads of
    other shapes, those a consolidation or a shape change replaces): then the first `-2`, `-3`... that is not.
    A new shape is made before the old one breaks: under the old workload's name (a model changed, its variant
    of the same name on the same class) its pod template would be rewritten, and its rollout take the serving
    pod down first (maxSurge 0: a GPU pod cannot surge on a full node); so is a new pod template of one shape,
    which does not stay (`_staying`). So is a move within one shape (another node, of a node emptied): the new
    workload keeps its name once the old one went (the move is not undone by a rename, nor the name reused by
    the next move)."""
    workloads = [o for o in rendered if o["kind"] in WORKLOAD_KINDS]
    kept: dict[int, str] = {}
    for i, obj in enumerate(workloads):
        shape = recorded_shape(obj["metadata"]["annotations"])
        name = staying.get(replace(shape, planned=())) if shape is not None else None
        if name is not None and name not in kept.values():
            kept[i] = name
    used = set(kept.values())  # claimed first: a shape that stays keeps its name whatever the order
    for i, obj in enumerate(workloads):
        chosen = kept.get(i) or numbered(_unnumbered(obj), used | set(taken))
        used.add(chosen)
        if chosen != obj["metadata"]["name"]:
            _rename(obj, chosen)


def template_hash(obj: Mapping[str, Any]) -> str:
    """The workload's pod templates as EGS renders them, less what its name and its plan's nodes set (the
    workload label, the node pin and preference), hashed: what a spec change rewrites in place unless the
    workload takes a new name. Of the rendering, not of what the server returns (which adds its defaults).
    A new version whose hash of the same template differs renews every workload once (`drifted`, paced)."""
    templates = [_placement_free(template) for template in _templates(obj)]
    return hashlib.sha256(json.dumps(templates, sort_keys=True).encode()).hexdigest()[:16]


def _placement_free(template: Mapping[str, Any]) -> dict[str, Any]:
    """A pod template less what the workload's name and its plan's nodes write into it: the workload label
    (`_rename`), the hostname pin of the required terms (`scheduler.manifests._node_selector`) and the
    preference made of it (`preferring`). A per-node field added to the template is to be left out here too,
    or `template_hash` takes a move for a spec change. Copied only where changed: a loop hashes every workload."""
    meta, spec = template["metadata"], template["spec"]
    affinity = spec.get("affinity") or {}
    node = {k: v for k, v in (affinity.get("nodeAffinity") or {}).items() if k != PREFERRED}
    required = node.get(REQUIRED) or {}
    terms = [
        {**term, "matchExpressions": [e for e in term.get("matchExpressions", ()) if e["key"] != HOSTNAME]}
        for term in required.get("nodeSelectorTerms", ())
    ]
    node[REQUIRED] = {**required, "nodeSelectorTerms": terms}
    labels = {k: v for k, v in meta.get("labels", {}).items() if k != WORKLOAD_LABEL}
    spec = {**spec, "affinity": {**affinity, "nodeAffinity": node}}
    return {**template, "metadata": {**meta, "labels": labels}, "spec": spec}


def _by_shape(rendered: Sequence[dict[str, Any]]) -> list[tuple[Shape, dict[str, Any]]]:
    """The rendered workloads with their shapes (without the planned GPUs), those whose shape can be read."""
    return [
        (replace(shape, planned=()), obj)
        for obj in rendered
        if obj["kind"] in WORKLOAD_KINDS and (shape := recorded_shape(obj["metadata"]["annotations"])) is not None
    ]


def _unnumbered(obj: Mapping[str, Any]) -> str:
    """The name `scheduler.manifests` gives a rendered workload before its `-2`, `-3`, from what it recorded."""
    annotations = obj["metadata"]["annotations"]
    try:
        return workload_name(annotations[f"{RECORDED}request-name"], annotations[f"{RECORDED}variant"],
                             annotations[f"{RECORDED}gpu-class"])  # fmt: skip
    except KeyError:
        return str(obj["metadata"]["name"])


def _staying(
    ours: Sequence[Owned],
    replacing: Collection[str],
    observed: Mapping[tuple[str, str, str, str], Mapping[str, Any]],
    wanted: Mapping[Shape, str],
) -> tuple[dict[Shape, str], dict[Shape, Owned]]:
    """The endpoint's workloads of this incarnation (`ours`) that no consolidation replaces, by shape
    (without the planned GPUs), the one asking for the most replicas where two have one shape; and where a
    shape's pod template is `wanted` (its spec changed), the first of that shape whose `observed` object records
    that template (`TEMPLATE`) or none: a change back keeps the workload that still serves it. A shape none of
    whose workloads has it stays not: its first workload is replaced (second: by shape)."""
    found: dict[Shape, list[Owned]] = {}
    for w in ours:
        if w.shape is not None and w.name not in replacing:
            found.setdefault(replace(w.shape, planned=()), []).append(w)
    staying: dict[Shape, str] = {}
    replaced: dict[Shape, Owned] = {}
    for shape, candidates in found.items():
        candidates.sort(key=lambda w: (w.replicas, w.name), reverse=True)
        if shape in wanted:
            same = [w for w in candidates if _recorded_template(observed.get(w.identity)) in (None, wanted[shape])]
        else:
            same = candidates
        if same:
            staying[shape] = same[0].name
        else:
            replaced[shape] = candidates[0]
    return staying, replaced


def _recorded_template(observed: Mapping[str, Any] | None) -> str | None:
    """The pod template hash a workload records; None where it records none (written before EGS recorded it)."""
    annotations = ((observed or {}).get("metadata") or {}).get("annotations") or {}
    recorded = annotations.get(TEMPLATE)
    return str(recorded) if recorded else None


def drifted(
    endpoints: Sequence[Endpoint],
    placements: Mapping[str, Sequence[Placement]],
    mine: Mapping[str, Sequence[Owned]],
    observed: Mapping[tuple[str, str, str, str], Mapping[str, Any]],
    registry: Registry,
    catalog: Catalog,
) -> list[str]:
    """The endpoints (keys) whose incumbents (`placements`) EGS renders now in a pod template that no workload of
    their shape records (`TEMPLATE`): their spec unchanged, a registry entry (a model's source, its serving
    defaults) or EGS itself (an upgrade) changed it, or a change of the spec was held a loop for room. Rewritten
    under its name, the workload would roll its serving pods down first (maxSurge 0); it is to be made before it
    breaks, as a change of the spec is (`paced`). A workload recording no template is taken as the same (written
    before EGS recorded it); one that cannot be rendered is the main rendering's to report; an endpoint with no
    pod bound (no incumbent) serves nothing a rewrite would take down, and is rewritten in place as before."""
    found = []
    for ep in endpoints:
        if not (kept := placements.get(ep.key)):
            continue
        recorded: dict[Shape, set[str | None]] = {}
        for w in _this_incarnation(ep, mine.get(ep.key, ()), observed):
            if w.shape is not None:
                hashes = recorded.setdefault(replace(w.shape, planned=()), set())
                hashes.add(_recorded_template(observed.get(w.identity)))
        request = ep.request(1)
        for placement in kept:
            rendered = _rendered(request, placement, registry, catalog)
            theirs = recorded.get(rendered[0]) if rendered is not None else None
            if theirs and rendered is not None and not theirs & {None, rendered[1]}:
                found.append(ep.key)
                break
    return found


_RENDERED: dict[tuple[Request, Placement], tuple[Registry, Catalog, Shape, str]] = {}
"""`_rendered`'s answers by request and placement (and by placement less its nodes, `_nodeless`), with the registry
and catalogue they were rendered from; cleared past `_RENDERED_HELD` (every replica of a fleet of 2,000 GPU
nodes, at about 1 kB each)."""
_RENDERED_HELD = 16_384


def _rendered(request: Request, placement: Placement, registry: Registry, catalog: Catalog) -> tuple[Shape, str] | None:
    """The shape (without its planned GPUs) and the `template_hash` EGS renders a replica of `placement` in for
    `request`; None where it cannot be rendered. Remembered: a loop asks it of every incumbent, and loop after loop
    the same, with the registry and catalogue read, the same objects (`is`) until they are read again; and, for a
    replica not asked of before (a start renders every one), by its placement less its nodes, as one template
    serves every replica of a shape (`scheduler.manifests`), so that a start renders each shape once."""
    hit = _remembered(key := (request, placement), registry, catalog)
    if hit is None:
        hit = _remembered(shaped := (request, _nodeless(placement)), registry, catalog)
        if hit is None:
            try:
                rendered = manifests(Plan(placements=(placement,)), registry, catalog, [request], validated=False)
            except ManifestError:
                return None
            ((shape, obj),) = _by_shape(rendered)
            hit = (registry, catalog, shape, template_hash(obj))
            _remember(shaped, hit)
        _remember(key, hit)
    return hit[2], hit[3]


def _remembered(
    key: tuple[Request, Placement], registry: Registry, catalog: Catalog
) -> tuple[Registry, Catalog, Shape, str] | None:
    hit = _RENDERED.get(key)
    return hit if hit is not None and hit[0] is registry and hit[1] is catalog else None


def _remember(key: tuple[Request, Placement], value: tuple[Registry, Catalog, Shape, str]) -> None:
    """Stored, never read back here: the API's threads share the memory, and one may clear it meanwhile."""
    if len(_RENDERED) >= _RENDERED_HELD:
        _RENDERED.clear()
    _RENDERED[key] = value


def _nodeless(placement: Placement) -> Placement:
    """`placement` less what places it: its replica number, and its workers' nodes and GPU indices."""
    return replace(placement, replica=0, workers=tuple(replace(w, node="", gpus=()) for w in placement.workers))


def paced(
    drifting: Collection[str],
    statuses: Mapping[str, Mapping[str, Any]],
    changing: Collection[str],
    allowed: int,
    deferred: Collection[str] = (),
    turns: Collection[str] | None = None,
) -> tuple[frozenset[str], frozenset[str]]:
    """(those whose turn it is, those that wait) of the `drifting` endpoints: as many as `allowed` less the
    `changing` ones (a change of the spec or of the template under way: each asks for its replicas twice until
    its new ones serve), so that an upgrade that renders every template anew does not ask for twice the
    cluster at once. Those whose last try found no room (`SpecApplied` `False`, `Unschedulable` or
    `TemplateChangeWaitsForRoom`) go after the others: one that fits nowhere does not hold back the rest; then by
    name. The `deferred` ones (found this loop with replicas that fit nowhere: `decide` tries again without them)
    wait, and count in no change under way; where `turns` is given, no other endpoint than those takes one."""

    def held(key: str) -> bool:
        return found_no_room(statuses.get(key, {})) is not None

    order = sorted((k for k in drifting if k not in deferred), key=lambda key: (held(key), key))
    room = max(0, allowed - len([k for k in changing if k not in deferred]))
    rolled = frozenset(k for k in order[:room] if turns is None or k in turns)
    return rolled, frozenset(drifting) - rolled


def _kept_templates(obj: dict[str, Any], observed: Mapping[str, Any]) -> None:
    """The workload with the pod templates (and their `TEMPLATE`) of the one `observed` under its name, where
    they differ from what was rendered: its new template waits its turn (`paced`) and its pods stay as they run.
    A LeaderWorkerSet keeps its `leaderWorkerTemplate` whole, so that a new version that adds or drops a leader
    template does not roll it either. The server's copy holds its defaults too, which EGS then applies alike (no
    write while nothing else changes); null values are left out, as an apply gives none."""
    recorded = _recorded_template(observed)
    if recorded is None or recorded == obj["metadata"]["annotations"][TEMPLATE]:
        return
    spec, theirs = obj["spec"], observed.get("spec") or {}
    for key in ("template", "leaderWorkerTemplate"):
        if key in spec and key in theirs:
            spec[key] = _without_nulls(theirs[key])
            obj["metadata"]["annotations"][TEMPLATE] = recorded


def _without_nulls(value: Any) -> Any:
    """A deep copy of `value` (JSON as read: dicts and lists) less the mapping entries that are null (an API server
    returns a template's `creationTimestamp: null`). Each queued endpoint's templates, each loop: a leaf is kept
    without a call (0.15 to 0.09 ms a template)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) if isinstance(v, (dict, list)) else v for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def changed_from(
    ep: Endpoint,
    mine: Sequence[Owned],
    observed: Mapping[tuple[str, str, str, str], Mapping[str, Any]],
    intended: Collection[str],
) -> tuple[str, ...]:
    """The endpoint's workloads (of this incarnation) that a change of its spec replaces: not `intended` (the
    names rendered now), with replicas Ready. They serve until the new shape's do, then go (`orphans`); one
    that serves nothing goes at once, and is not recorded."""
    return tuple(
        sorted(w.name for w in _this_incarnation(ep, mine, observed) if w.name not in intended and w.ready > 0)
    )


def _this_incarnation(
    ep: Endpoint, mine: Sequence[Owned], observed: Mapping[tuple[str, str, str, str], Mapping[str, Any]]
) -> list[Owned]:
    """The endpoint's workloads (`mine`) written for this incarnation of it (`_incarnation`)."""
    return [w for w in mine if _incarnation(observed.get(w.identity), ep) is not None]


def _rename(obj: dict[str, Any], name: str) -> None:
    """The workload, its selector and its pods' label under `name`."""
    obj["metadata"]["name"] = name
    selector = (obj["spec"].get("selector") or {}).get("matchLabels")
    if selector is not None:
        selector[WORKLOAD_LABEL] = name
    for template in _templates(obj):
        template["metadata"]["labels"][WORKLOAD_LABEL] = name


def asked(obj: Mapping[str, Any], shape: Shape, observed: Mapping[str, Any] | None) -> int:
    """The replicas a workload asks for while another endpoint's new replicas in its GPU class have no pod
    bound yet: those planned on nodes that are there, and those it has (their pods stay), never more than
    planned. kube-scheduler binds a pod that waits for a node to any room of its class that fits, and takes
    pods in no order the controller can set (the ReplicaSets make them concurrently): asked alongside a 201's
    pod, it can take the GPUs that 201 was answered on (churn seed 4, a reposted 202 on h100-1). It is asked
    once they are bound, a loop or two later."""
    there = sum(1 for replica in shape.planned if not replica[0][0].startswith(PROVISIONING_PREFIX))
    spec = (observed or {}).get("spec")
    had = spec.get("replicas") if isinstance(spec, Mapping) else None
    return min(int(obj["spec"]["replicas"]), max(there, had if isinstance(had, int) else 0))


def disruption_budget(ep: Endpoint) -> dict[str, Any]:
    """The endpoint's PodDisruptionBudget over its serving pods: a node drain (Cluster Autoscaler's,
    Karpenter's, an upgrade's) never takes it below `replicas.min` ready; with a minimum of 0, one
    server at a time. A budget of 1 for one replica would block every drain of its node, so the
    floor is the user's, not ours."""
    label = dns_label(ep.name)
    limit = {"minAvailable": ep.min_replicas} if ep.min_replicas > 0 else {"maxUnavailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": label,
            "namespace": ep.namespace,
            "labels": {**MANAGED, "egs.io/request": label},
            "annotations": {REQUEST_NAME: ep.name},
        },
        "spec": {
            **limit,
            "selector": {"matchLabels": {"egs.io/request": label, "app.kubernetes.io/component": "server"}},
        },
    }


def owned_by(obj: dict[str, Any], ep: Endpoint) -> dict[str, Any]:
    """`obj` garbage-collected with the endpoint (when the endpoint's uid is known)."""
    if ep.uid:
        obj["metadata"]["ownerReferences"] = [
            {
                "apiVersion": ie.API_VERSION,
                "kind": ie.KIND,
                "name": ep.name,
                "uid": ep.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return obj


def scaled_objects(
    ep: Endpoint,
    rendered: list[dict[str, Any]],
    settings: Settings,
    observed: Mapping[tuple[str, str, str, str], Mapping[str, Any]],
    predecessors: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """With `scaling: keda` or `hpa` someone else sets the replica count: a workload created new is written with
    the replicas planned, or those of the workload of its shape it replaces (`predecessors`, by name: a new pod
    template), one that exists keeps the count it has while EGS's apply alone owns it and leaves it
    out (so server-side apply leaves it to them) once it is theirs (`held_replicas`), and for keda a ScaledObject
    per workload scales on the recording rules as the controller would: ceil(demand x (1 + headroom) /
    throughput), or queue / 5."""
    if ep.scaling == "egs":
        return []
    scaled = []
    for obj in rendered:
        if obj["kind"] not in ("Deployment", "LeaderWorkerSet"):
            continue
        before = _incarnation(observed.get(identity(obj)), ep)
        if before is not None:  # one created new keeps its planned replicas: left out, the API server writes 1
            held = held_replicas(before)
            if held is None:
                obj["spec"].pop("replicas", None)
            else:
                obj["spec"]["replicas"] = held
        elif (had := _replicas((predecessors or {}).get(obj["metadata"]["name"]))) is not None:
            obj["spec"]["replicas"] = had  # what the autoscaler scaled the workload it replaces to
        if ep.scaling != "keda":
            continue
        selector = f'{{model_name="{ep.model}"}}'
        per_replica = declared_throughput(ep, settings) / (1 + settings.headroom)
        triggers = [
            ("sum(model:requests:rate5m" + selector + ")", f"{per_replica:.3f}"),
            ("sum(model:requests_waiting:sum" + selector + ")", f"{QUEUE_HIGH:g}"),
        ]
        meta = obj["metadata"]
        target = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"]}
        scaled.append(
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "ownerReferences") if k in meta},
                "spec": {
                    "scaleTargetRef": target,
                    "minReplicaCount": ep.min_replicas,
                    "maxReplicaCount": ep.max_replicas,
                    "triggers": [
                        {"type": "prometheus", "metadata": {"serverAddress": settings.prometheus_url,
                                                            "query": query, "threshold": threshold}}
                        for query, threshold in triggers
                    ],
                },
            }
        )  # fmt: skip
    return scaled


def _replicas(observed: Mapping[str, Any] | None) -> int | None:
    """An observed workload's `spec.replicas`, None where it has none."""
    replicas = ((observed or {}).get("spec") or {}).get("replicas")
    return replicas if isinstance(replicas, int) else None


def held_replicas(observed: Mapping[str, Any] | None) -> int | None:
    """The replica count the workload has while EGS's apply still owns it alone; None once it is not EGS's to
    keep (another manager owns it, or no apply does: one the API server defaulted), or when there is none.

    Switched to an HPA or KEDA, a workload whose `spec.replicas` EGS's apply alone owns would lose the field
    at the next apply that leaves it out, and the API server would default it to 1 until the autoscaler
    scaled it back (Kubernetes: "Migrating Deployments and StatefulSets to horizontal autoscaling"). So
    EGS applies the count the workload has (never its own plan: no tug of war) until `metadata.managedFields`
    shows another manager owns it (the HPA's scale write, an Update: EGS only applies), then leaves it out.
    The field's owners, not the HPA's status: an HPA that acted but found the count right writes nothing
    and owns nothing, and KEDA's HPA is another object than the one EGS writes."""
    if observed is None or (replicas := _replicas(observed)) is None:
        return None
    owners = [
        entry.get("operation")
        for entry in (observed.get("metadata") or {}).get("managedFields") or ()
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    ]
    return replicas if owners and all(op == "Apply" for op in owners) else None


HOSTNAME = "kubernetes.io/hostname"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def preferring(obj: dict[str, Any], observed: Mapping[str, Any] | None) -> dict[str, Any]:
    """The workload with its `kubernetes.io/hostname` pin made a preference (the GPU product selector
    stays required): kube-scheduler puts its pods on the planned nodes where they fit, so that a pod
    does not take GPUs planned (or answered 201) for another endpoint, and elsewhere in the class where
    they do not (a node waited for does not exist yet). A workload that exists keeps the preference it
    was created with (none, if written before there was one): a changed preference is a changed pod
    template, and a new template restarts every pod."""
    before = _templates(observed) if observed is not None else None
    for i, template in enumerate(_templates(obj)):
        affinity = template["spec"]["affinity"]["nodeAffinity"]
        pinned = []
        for term in affinity[REQUIRED]["nodeSelectorTerms"]:
            pinned += [e for e in term["matchExpressions"] if e["key"] == HOSTNAME]
            term["matchExpressions"] = [e for e in term["matchExpressions"] if e["key"] != HOSTNAME]
        if before is not None:
            kept = _preference(before[i]) if i < len(before) else None
            if kept is not None:
                affinity[PREFERRED] = kept
        elif pinned:
            affinity[PREFERRED] = [{"weight": 100, "preference": {"matchExpressions": pinned[:1]}}]
    return obj


def _incarnation(observed: Mapping[str, Any] | None, ep: Endpoint) -> Mapping[str, Any] | None:
    """`observed` unless it was written for another uid: an endpoint deleted and posted again under
    its name finds its old workload until garbage collection (asynchronous) takes it, and the preference
    written for the old answer is not the new one's (its pods would bind where the old plan put them)."""
    if observed is None or not ep.uid:
        return observed
    owner = owning_endpoint(observed)
    return None if owner is not None and owner[1] != ep.uid else observed


def owning_endpoint(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the InferenceEndpoint that owns `obj` (`owned_by`), None when none does: the one
    reader of `ownerReferences`, for the incarnation a workload was written for and whom an Event is on."""
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(owner, Mapping) and (owner.get("apiVersion"), owner.get("kind")) == (ie.API_VERSION, ie.KIND):
            return str(owner.get("name", "")), str(owner.get("uid", ""))
    return None


def _templates(obj: Mapping[str, Any]) -> list[Any]:
    """The pod templates of a Deployment or LeaderWorkerSet (leader, then workers)."""
    spec = obj.get("spec") or {}
    found = [spec["template"]] if "template" in spec else []
    lws = spec.get("leaderWorkerTemplate") or {}
    return found + [lws[role] for role in ("leaderTemplate", "workerTemplate") if role in lws]


def _preference(template: Any) -> Any:
    """The node preference of an observed pod template, None when it has none."""
    spec = template.get("spec") if isinstance(template, Mapping) else None
    affinity = (spec or {}).get("affinity") if isinstance(spec, Mapping) else None
    node = (affinity or {}).get("nodeAffinity") if isinstance(affinity, Mapping) else None
    return node.get(PREFERRED) if isinstance(node, Mapping) else None


def orphans(
    raw: Sequence[Mapping[str, Any]],
    owned: Sequence[Owned],
    intended: Sequence[Mapping[str, Any]],
    decisions: Sequence[EndpointDecision],
    endpoints: Sequence[Mapping[str, Any]],
    kept: Sequence[str],
) -> tuple[tuple[str, str, str, str], ...]:
    """What the controller owns and no longer intends, to delete now; make-before-break: an endpoint's
    replaced workload goes once its intended workloads serve every replica it wants, or at once when
    it serves nothing itself; everything of an endpoint that is gone goes. The `kept` endpoints (their
    spec cannot be read, their new shape cannot be rendered, or their changed spec fits nowhere while the
    old shape serves) keep what they have, and so do
    warm-pool objects the user owns the rest of (a Karpenter NodePool) and the shared PriorityClass."""
    keep = {identity(o) for o in intended}
    # What the intended workloads serve, not the status's count (which counts a move's replaced ones).
    serving = Counter[str]()
    for w in owned:
        if w.identity in keep:
            serving[w.key] += w.ready
    listed = {endpoint_key(o) for o in endpoints}
    by_key = {d.key: d for d in decisions}
    held = set(kept)
    gone: list[tuple[str, str, str, str]] = []
    for w in owned:
        if w.identity in keep:
            continue
        d = by_key.get(w.key)
        if w.key not in listed or (
            d is not None and w.key not in held and (serving[w.key] >= d.replicas or not w.ready)
        ):
            gone.append(w.identity)
    # A ScaledObject EGS no longer writes goes, unless it scales a workload of a held endpoint.
    workloads = {w.workload: w.key for w in owned}
    for obj in raw:
        named = identity(obj)
        meta = obj.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        if named in keep or named in gone:
            continue
        if obj.get("kind") in ("Service", "PodDisruptionBudget") and REQUEST_NAME in annotations:
            if f"{named[2]}/{annotations[REQUEST_NAME]}" not in listed:
                gone.append(named)
        elif obj.get("kind") == "ScaledObject":
            target = str(((obj.get("spec") or {}).get("scaleTargetRef") or {}).get("name"))
            if workloads.get((named[2], target), "") not in held:
                gone.append(named)
        elif annotations.get(WARM_POOL) and obj.get("kind") in ("Deployment", "PodTemplate", "CapacityBuffer"):
            gone.append(named)
    return tuple(gone)


def by_identity(objects: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str, str], Mapping[str, Any]]:
    """Objects by (apiVersion, kind, namespace, name)."""
    return {identity(o): o for o in objects}


def identity(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): what names an object to the API server."""
    meta = obj.get("metadata") or {}
    return (str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name")))
