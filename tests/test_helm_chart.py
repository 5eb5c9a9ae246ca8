"""The Helm chart, rendered by the real helm binary for default and non-default values.

Aspects: `helm lint --strict` and `helm template` pass for each value set; every built-in object passes
`kubernetes-validate --strict`; every ServiceMonitor, PodMonitor and PrometheusRule validates against
the prometheus-operator's own openAPIV3Schema (vendored with its provenance in tests/data), with unknown
fields refused as the API server's strict field validation refuses them; the PrometheusRule is the
chosen source's rules; the dashboards ship as labelled ConfigMaps; RBAC has no wildcards; the exporter
runs with the least it needs; the controller gets its configuration, a Lease role in its namespace
only, and a cluster role naming every verb and resource, with the warm-pool backends' kinds only where
a GPU class uses them; the InferenceEndpoint CRD ships in `crds/`; bad values fail with the field named.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from alerts.config import RulesConfig, Source
from alerts.rules import rule_groups
from autoscaler.adapters.kubernetes import KINDS
from autoscaler.config import parse_config
from autoscaler.controller import owned_kinds
from benchmarks.exporter_scrape import TARGETS as SCRAPE_TARGETS
from common.errors import InputError
from dashboards.render import rendered
from tests.conftest import REPO

CHART = REPO / "helm" / "egs"
KUBERNETES_VERSION = "1.31"
OPERATOR_SCHEMAS = REPO / "tests" / "data" / "prometheus-operator"
OPERATOR_KINDS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors", "PrometheusRule": "prometheusrules"}
VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "beside-the-gpu-operator": ["--set", "exporter.enabled=false"],
    "kube-prometheus-stack-release": [
        "--set",
        "monitoring.release=kube-prometheus-stack",
        "--set",
        "dashboards.namespace=monitoring",
        "--set",
        "dashboards.annotations.grafana_folder=EGS",
    ],
    "sim-exporter-dcgm-rules": [
        "--set",
        "exporter.backend=sim",
        "--set",
        "rules.source=dcgm-exporter",
        "--set",
        "exporter.runtimeClassName=nvidia",
        "--set",
        "monitoring.vllmPodMonitor.enabled=false",
    ],
    "capacity-backends": [
        "--set",
        "controller.config.gpu_classes.H100-80GB.pool=capacitybuffer",
        "--set",
        "controller.config.gpu_classes.H100-80GB.gpus_per_node=8",
        "--set",
        "controller.config.gpu_classes.L4.gpus_per_node=4",
        "--set",
        "controller.config.gpu_classes.L4.pool=karpenter-static",
        "--set",
        "controller.config.gpu_classes.L4.nodepool=l4-static",
        "--set",
        "controller.prometheusUrl=http://thanos-query.monitoring:9090",
    ],
    "kind-e2e": ["--values", "e2e/kind-values.yaml"],
    "cert-manager": ["--api-versions", "cert-manager.io/v1", "--set", "monitoring.release=kps"],
    "cert-manager-issuer": [
        "--api-versions",
        "cert-manager.io/v1",
        "--set",
        "controller.api.tls.certManager.issuerRef.name=letsencrypt",
        "--set",
        "controller.api.tls.certManager.issuerRef.kind=ClusterIssuer",
    ],
    "api-behind-a-tls-proxy": ["--set", "controller.api.tls.insecureHTTP=true", "--set", "exporter.amd.enabled=false"],
    "prometheus-over-https": [
        "--set",
        "controller.prometheusUrl=https://thanos.monitoring:10902",
        "--set",
        "controller.prometheus.caBundle.configMap=thanos-ca",
        "--set",
        "controller.prometheus.timeout=4",
        "--set",
        "controller.leaderElection.leaseDuration=20",
        "--set",
        "controller.leaderElection.renewDeadline=15",
        "--set",
        "controller.leaderElection.retryPeriod=3",
    ],
    "no-monitoring-crds": [
        "--set",
        "monitoring.serviceMonitor.enabled=false",
        "--set",
        "monitoring.vllmPodMonitor.enabled=false",
        "--set",
        "rules.enabled=false",
    ],
    # the values files docs/install.md documents, one per install path
    **{f"ci/{p.name}": ["--values", str(p.relative_to(REPO))] for p in sorted((CHART / "ci").glob("*-values.yaml"))},
}
CERT_MANAGER_KINDS = {"Certificate", "Issuer"}
"""cert-manager's kinds: no schema is vendored for them; test_api_tls_* checks the fields the chart sets."""


def helm_binary() -> str:
    found = shutil.which("helm", path=str(REPO / ".venv" / "bin")) or shutil.which("helm")
    if found is None:
        pytest.fail("helm not found: `make test` installs it into .venv/bin (tools/fetch_helm.py)")
    return found


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, cwd=REPO)


@cache
def template(values: str) -> tuple[dict[str, Any], ...]:
    result = helm("template", "egs", str(CHART), "--namespace", "egs-system", "--include-crds", *VALUE_SETS[values])
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(values: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in template(values) if o["kind"] == kind]


@cache
def operator_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = yaml.safe_load((OPERATOR_SCHEMAS / f"{OPERATOR_KINDS[kind]}.v1.openapi.yaml").read_text())
    closed: dict[str, Any] = _closed(schema)
    return closed


def _closed(schema: Any) -> Any:
    """Refuse fields the schema does not name, as the API server's strict field validation does; Go's
    `^(?i)x` patterns are written `(?i)^x` for Python's re."""
    if isinstance(schema, dict):
        schema = {k: _closed(v) for k, v in schema.items()}
        open_object = schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
        if "properties" in schema and not open_object:
            schema["additionalProperties"] = False
        if isinstance(schema.get("pattern"), str) and schema["pattern"].startswith("^(?i)"):
            schema["pattern"] = "(?i)^" + schema["pattern"].removeprefix("^(?i)")
        return schema
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def rbac_wildcards(objects: Any) -> list[str]:
    """Every `*` in the verbs, resources, API groups or names of a Role or ClusterRole."""
    found = []
    for obj in objects:
        if obj.get("kind") not in ("Role", "ClusterRole"):
            continue
        for i, rule in enumerate(obj.get("rules", [])):
            for key in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
                if any("*" in item for item in rule.get(key, [])):
                    found.append(f"{obj['kind']}/{obj['metadata']['name']} rules[{i}].{key}")
    return found


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint_strict_passes(values: str) -> None:
    flags = VALUE_SETS[values]
    if "--api-versions" in flags:  # lint takes no capabilities: it lints the other branch
        at = flags.index("--api-versions")
        flags = flags[:at] + flags[at + 2 :]
    result = helm("lint", "--strict", str(CHART), *flags)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_built_in_object_passes_kubernetes_validate_strict(values: str) -> None:
    built_in = [o for o in template(values) if o["kind"] not in {*OPERATOR_KINDS, *CERT_MANAGER_KINDS}]
    assert built_in
    for obj in built_in:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_operator_object_validates_against_the_operator_s_schema(values: str) -> None:
    for obj in (o for o in template(values) if o["kind"] in OPERATOR_KINDS):
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        jsonschema.validate(obj, operator_schema(obj["kind"]))


def test_the_operator_schema_check_refuses_an_unknown_field() -> None:
    monitor = json.loads(json.dumps(of_kind("default", "ServiceMonitor")[0]))
    monitor["spec"]["endpoints"][0]["honourLabels"] = True
    with pytest.raises(jsonschema.ValidationError, match="honourLabels"):
        jsonschema.validate(monitor, operator_schema("ServiceMonitor"))


@pytest.mark.parametrize(
    ("values", "source"),
    [("default", "egs"), ("beside-the-gpu-operator", "dcgm-exporter"), ("sim-exporter-dcgm-rules", "dcgm-exporter")],
)
def test_the_prometheus_rule_holds_the_rules_of_the_source_in_use(values: str, source: Source) -> None:
    (rule,) = of_kind(values, "PrometheusRule")
    assert rule["metadata"]["labels"]["egs.io/rules-source"] == source
    assert rule["spec"] == rule_groups(RulesConfig(source=source))


def _component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", ""))


def test_beside_the_gpu_operator_there_is_no_exporter_and_dcgm_exporter_is_scraped_with_honor_labels() -> None:
    objects = template("beside-the-gpu-operator")
    assert not [o for o in objects if _component(o) == "exporter"]
    assert "DaemonSet" not in {o["kind"] for o in objects}
    assert {"PrometheusRule", "PodMonitor", "ConfigMap", "Deployment"} <= {o["kind"] for o in objects}
    monitors = {_component(m): m for m in of_kind("beside-the-gpu-operator", "ServiceMonitor")}
    assert set(monitors) == {"dcgm-exporter", "controller", "api"}
    dcgm = monitors["dcgm-exporter"]["spec"]
    # the GPU Operator's Service, in its namespace, as its defaults make it: nothing to change there
    assert dcgm["namespaceSelector"] == {"matchNames": ["gpu-operator"]}
    assert dcgm["selector"] == {"matchLabels": {"app": "nvidia-dcgm-exporter"}}
    (endpoint,) = dcgm["endpoints"]
    assert endpoint["port"] == "gpu-metrics" and endpoint["honorLabels"] is True
    # one job name whatever the Service is called (the GPU Operator's, dcgm-exporter's own chart's), which
    # the dcgm-exporter rules select
    assert endpoint["relabelings"] == [{"action": "replace", "targetLabel": "job", "replacement": "dcgm-exporter"}]
    assert re.fullmatch(RulesConfig(source="dcgm-exporter").selector.split('"')[1], "dcgm-exporter")


@pytest.mark.parametrize("values", ["default", "beside-the-gpu-operator", "no-monitoring-crds"])
def test_the_controller_and_the_api_are_scraped_in_every_mode_with_honor_labels(values: str) -> None:
    monitors = {_component(m): m for m in of_kind(values, "ServiceMonitor")}
    if values == "no-monitoring-crds":
        assert monitors == {}
        return
    services = {_component(s): s for s in of_kind(values, "Service")}
    for component, job, port in (("controller", "egs-controller", "metrics"), ("api", "egs-api", "api")):
        (endpoint,) = monitors[component]["spec"]["endpoints"]
        assert endpoint["honorLabels"] is True and endpoint["port"] == port
        assert {"action": "replace", "targetLabel": "job", "replacement": job} in endpoint["relabelings"]
        selector = monitors[component]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= services[component]["spec"]["selector"].items()
        assert port in {p["name"] for p in services[component]["spec"]["ports"]}
    api = monitors["api"]["spec"]["endpoints"][0]
    assert api["scheme"] == "https" and api["tlsConfig"]["ca"]["secret"]["key"] == "ca.crt"
    assert api["tlsConfig"]["serverName"] == "egs-api.egs-system.svc"


def test_without_the_operator_s_crds_nothing_needs_them() -> None:
    assert not {o["kind"] for o in template("no-monitoring-crds")} & set(OPERATOR_KINDS)


def test_scrapes_honour_the_exporter_s_pod_labels_and_name_the_job_the_rules_select() -> None:
    (monitor,) = [m for m in of_kind("default", "ServiceMonitor") if _component(m) == "exporter"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    assert {"action": "replace", "targetLabel": "job", "replacement": "egs-exporter"} in endpoint["relabelings"]
    assert RulesConfig().selector == 'job="egs-exporter"'
    (service,) = [s for s in of_kind("default", "Service") if _component(s) == "exporter"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (pods,) = of_kind("default", "PodMonitor")
    assert all(e["honorLabels"] for e in pods["spec"]["podMetricsEndpoints"])
    assert pods["spec"]["namespaceSelector"] == {"any": True}


def test_the_release_label_reaches_what_kube_prometheus_stack_selects() -> None:
    for kind in OPERATOR_KINDS:
        for obj in of_kind("kube-prometheus-stack-release", kind):
            assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack", kind
    for kind in OPERATOR_KINDS:
        for obj in of_kind("default", kind):
            assert "release" not in obj["metadata"]["labels"], kind


@pytest.mark.parametrize("values", ["default", "kube-prometheus-stack-release"])
def test_every_dashboard_ships_as_a_configmap_the_grafana_sidecar_loads(values: str) -> None:
    maps = {
        next(iter(m["data"])): m for m in of_kind(values, "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    }
    assert set(maps) == set(rendered())
    for name, text in rendered().items():
        assert json.loads(maps[name]["data"][name]) == json.loads(text)
        assert maps[name]["metadata"]["labels"]["grafana_dashboard"] == "1"
    if values == "kube-prometheus-stack-release":
        assert {m["metadata"]["namespace"] for m in maps.values()} == {"monitoring"}
        assert all(m["metadata"]["annotations"] == {"grafana_folder": "EGS"} for m in maps.values())


@pytest.mark.parametrize("values", VALUE_SETS)
def test_rbac_has_no_wildcards(values: str) -> None:
    assert rbac_wildcards(template(values)) == []


def test_the_wildcard_check_catches_one() -> None:
    role = {
        "kind": "ClusterRole",
        "metadata": {"name": "too-much"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]},
        ],
    }
    assert rbac_wildcards([role]) == ["ClusterRole/too-much rules[1].resources"]


def _daemonset(values: str, vendor: str) -> dict[str, Any]:
    (ds,) = [
        d for d in of_kind(values, "DaemonSet") if d["spec"]["selector"]["matchLabels"]["egs.io/gpu-vendor"] == vendor
    ]
    return ds


def test_the_nvidia_exporter_runs_with_only_what_it_needs() -> None:
    pod = _daemonset("default", "nvidia")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (volume,) = pod["volumes"]
    assert volume["hostPath"] == {"path": "/var/lib/kubelet/pod-resources", "type": "Directory"}
    (mount,) = container["volumeMounts"]
    assert mount["readOnly"] is True
    assert "resources" not in container or not any("nvidia.com" in k for k in container["resources"].get("limits", {}))
    assert {t["key"] for t in pod["tolerations"]} == {"nvidia.com/gpu", "amd.com/gpu"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert not [t for t in terms if "amd" in json.dumps(t)], "AMD nodes have a DaemonSet of their own"
    (account,) = [a for a in of_kind("default", "ServiceAccount") if _component(a) == "exporter"]
    assert account["automountServiceAccountToken"] is False
    bound = [s["name"] for o in template("default") if o["kind"].endswith("Binding") for s in o["subjects"]]
    assert account["metadata"]["name"] not in bound


def test_the_amd_exporter_reaches_the_devices_and_rocm_and_nothing_else() -> None:
    ds = _daemonset("default", "amd")
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--backend=amdsmi" in container["args"]
    assert container["securityContext"] == {"privileged": True, "readOnlyRootFilesystem": True}
    assert pod["automountServiceAccountToken"] is False and "runtimeClassName" not in pod
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]} == {
        "pod-resources": "/var/lib/kubelet/pod-resources",
        "rocm": "/opt/rocm",
    }
    assert all(m["readOnly"] for m in container["volumeMounts"])
    assert {"name": "ROCM_PATH", "value": "/opt/rocm"} in container["env"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {e["key"] for t in terms for e in t["matchExpressions"]} == {
        "amd.com/gpu.product-name",
        "feature.node.kubernetes.io/amd-gpu",
    }
    # one headless Service and one scrape job over both vendors' pods
    (service,) = [s for s in of_kind("default", "Service") if _component(s) == "exporter"]
    for vendor in ("nvidia", "amd"):
        labels = _daemonset("default", vendor)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
    assert [d["metadata"]["name"] for d in of_kind("api-behind-a-tls-proxy", "DaemonSet")] == ["egs-exporter"]
    assert [d["metadata"]["name"] for d in of_kind("sim-exporter-dcgm-rules", "DaemonSet")] == ["egs-exporter"]


def _mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_the_exporter_s_memory_request_and_limit_cover_its_measured_rss() -> None:
    ds = _daemonset("default", "nvidia")
    resources = ds["spec"]["template"]["spec"]["containers"][0]["resources"]
    # The RSS at 64 GPUs that benchmarks/exporter_scrape.py holds the exporter to (its measure: docs/benchmarks.md).
    rss_mib = SCRAPE_TARGETS["rss_mb_64"] * 1e6 / 2**20
    assert rss_mib <= _mib(resources["requests"]["memory"]) <= _mib(resources["limits"]["memory"])
    assert _mib(resources["limits"]["memory"]) >= 2 * rss_mib  # room for a fleet larger than 64 GPUs
    assert resources["requests"]["cpu"] and resources["limits"]["cpu"]


def test_the_exporter_command_line_follows_the_values() -> None:
    ds = _daemonset("sim-exporter-dcgm-rules", "nvidia")
    pod = ds["spec"]["template"]["spec"]
    assert "--backend=sim" in pod["containers"][0]["args"]
    assert pod["runtimeClassName"] == "nvidia"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--set", "exporter.backend=cuda"], "exporter.backend must be one of the following"),
        (["--set", "rules.source=prometheus"], "rules.source must be one of the following"),
        (["--set", "monitoring.serviceMonitor.interval=often"], "monitoring.serviceMonitor.interval"),
        (["--set", "exporter.colectInterval=5"], "colectInterval"),
        (["--set", "controller.config.gpu_classes.L4.pool=balloon"], "gpus_per_node is required"),
        (
            [
                "--set",
                "controller.config.gpu_classes.L4.gpus_per_node=4",
                "--set",
                "controller.config.gpu_classes.L4.pool=spot",
            ],
            "pool",
        ),
    ],
)
def test_bad_values_fail_naming_the_field(flags: list[str], message: str) -> None:
    result = helm("template", "egs", str(CHART), *flags)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("budget", ["10%", "100%", "100.0%", "0.5%", "99.9%", "3", "150%", "100.5%", "101%", "%", "-1"])
def test_the_schema_takes_the_consolidation_budgets_the_controller_takes(budget: str) -> None:
    """`helm install` must refuse what would stop the controller at start (rev12: "150%" passed the chart)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["controller"]["properties"]["config"]["properties"]
    budget_schema = config["consolidation"]["properties"]["maxNodesPerInterval"]
    try:
        parse_config({"consolidation": {"enabled": True, "maxNodesPerInterval": budget}})
        controller_takes = True
    except InputError:
        controller_takes = False
    assert jsonschema.Draft7Validator(budget_schema).is_valid(budget) == controller_takes


def _rules(values: str, kind: str, component: str = "controller") -> list[dict[str, Any]]:
    (role,) = [r for r in of_kind(values, kind) if _component(r) == component]
    return list(role["rules"])


def _granted(
    values: str, component: str = "controller", kinds: tuple[str, ...] = ("ClusterRole",)
) -> dict[str, set[str]]:
    """apiGroup/resource -> verbs the component's roles of `kinds` grant."""
    granted: dict[str, set[str]] = {}
    for kind in kinds:
        for rule in _rules(values, kind, component):
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault(f"{group}/{resource}", set()).update(rule["verbs"])
    return granted


CLUSTER_CALLS: dict[str, set[tuple[str, str]]] = {
    # autoscaler.adapters.kubernetes.Cluster method -> the (apiGroup/resource, verb) it needs; "owned"
    # stands for every kind owned_kinds() names, "applied" for what the controller applies
    "nodes": {("/nodes", "list")},
    "gpu_pods": {("/pods", "list")},
    "endpoints": {("egs.dev/inferenceendpoints", "list")},
    "endpoint": {("egs.dev/inferenceendpoints", "get")},
    "endpoint_crd": {("apiextensions.k8s.io/customresourcedefinitions", "get")},
    "create": {("egs.dev/inferenceendpoints", "create")},
    "apply_status": {("egs.dev/inferenceendpoints/status", "patch")},
    "annotate": {("egs.dev/inferenceendpoints", "patch")},
    "owned": {("owned", "list")},
    "apply": {("owned", "create"), ("owned", "patch")},
    "review_token": {("authentication.k8s.io/tokenreviews", "create")},
    "review_access": {("authorization.k8s.io/subjectaccessreviews", "create")},
    "lease": {("coordination.k8s.io/leases", "get")},
    "take_lease": {("coordination.k8s.io/leases", "create"), ("coordination.k8s.io/leases", "patch")},
    "create_event": {("events.k8s.io/events", "create")},
    "patch_event": {("events.k8s.io/events", "patch")},
    # autoscaler.watches: a change of a Node, an endpoint or an owned object starts a loop
    "watch": {("/nodes", "watch"), ("egs.dev/inferenceendpoints", "watch"), ("owned", "watch")},
}
"""What each call of the Kubernetes adapter needs; `delete` is per call site (DELETE_CALLS)."""
CALLERS = {
    "controller": ("autoscaler/controller.py", "autoscaler/leader.py", "autoscaler/events.py", "autoscaler/watches.py"),
    "api": ("autoscaler/adapters/api.py",),
}
"""Where each account's calls are made: on `cluster` (the adapter), `store` (the Lease's), `sink` (Events')
or `source` (the watches')."""
LOCAL = {"writes", "wrote", "owned_kinds", "field_manager"}
"""The adapter's own bookkeeping (a write count, its last writes' versions, the kinds it lists, its field manager): no
API call."""
DELETE_CALLS = {"controller": {("owned", "delete")}, "api": {("egs.dev/inferenceendpoints", "delete")}}


def needed(component: str, values: str) -> set[tuple[str, str]]:
    """(apiGroup/resource, verb) for every Kubernetes call the component's code makes, read from its
    source: a call the table does not know fails, so a new call cannot go ungranted."""
    sources = [(REPO / path).read_text() for path in CALLERS[component]]
    pattern = r"\b(?:cluster|store|sink|source)\.([a-z]\w*)\b(?!\s*=)"
    calls = {m for text in sources for m in re.findall(pattern, text)} - LOCAL
    unknown = calls - set(CLUSTER_CALLS) - {"delete"}
    assert not unknown, f"{component} calls {unknown}: say in CLUSTER_CALLS what each needs"
    (config,) = [m for m in of_kind(values, "ConfigMap") if _component(m) == "controller"]
    settings, _ = parse_config(yaml.safe_load(config["data"]["config.yaml"]))
    owned = {f"{KINDS[k].group}/{KINDS[k].plural}" for k in owned_kinds(settings)}
    wanted = {need for call in calls - {"delete"} for need in CLUSTER_CALLS[call]}
    wanted |= DELETE_CALLS[component] if "delete" in calls else set()
    return {(r, verb) for resource, verb in wanted for r in (owned if resource == "owned" else {resource})}


def granted_pairs(values: str, component: str) -> set[tuple[str, str]]:
    granted = _granted(values, component, ("ClusterRole", "Role"))
    return {(resource, verb) for resource, verbs in granted.items() for verb in verbs}


@pytest.mark.parametrize("values", ["default", "capacity-backends"])
@pytest.mark.parametrize("component", ["controller", "api"])
def test_each_account_is_granted_exactly_what_its_code_calls(values: str, component: str) -> None:
    granted, wanted = granted_pairs(values, component), needed(component, values)
    # a karpenter NodePool is named in the configuration, never created or deleted: get it, patch it
    karpenter = {("karpenter.sh/nodepools", v) for v in ("create", "delete")}
    assert wanted - karpenter <= granted, f"missing: {sorted(wanted - karpenter - granted)}"
    extra = granted - wanted - {("karpenter.sh/nodepools", "get")}
    assert not extra, f"granted but never used: {sorted(extra)}"


def test_the_api_s_account_writes_only_inference_endpoints() -> None:
    writes = {(r, v) for r, v in granted_pairs("capacity-backends", "api") if v not in ("get", "list")}
    assert writes == {
        ("egs.dev/inferenceendpoints", "create"),
        ("egs.dev/inferenceendpoints", "patch"),
        ("egs.dev/inferenceendpoints", "delete"),
        ("egs.dev/inferenceendpoints/status", "patch"),
        ("authentication.k8s.io/tokenreviews", "create"),
        ("authorization.k8s.io/subjectaccessreviews", "create"),
    }
    (deployment,) = [d for d in of_kind("default", "Deployment") if _component(d) == "api"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "egs-api"


def test_the_table_of_calls_catches_a_call_it_does_not_know(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "evict.py").write_text("def evict(self, pod):\n    self.cluster.evict(pod)\n")
    monkeypatch.setitem(CALLERS, "api", ("autoscaler/adapters/api.py", str(tmp_path / "evict.py")))
    with pytest.raises(AssertionError, match="say in CLUSTER_CALLS"):
        needed("api", "default")


def test_the_controller_writes_the_lease_and_capacity_buffers_in_its_namespace_only() -> None:
    (lease,) = _rules("default", "Role")
    assert lease == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]}
    (role,) = [r for r in of_kind("default", "Role") if _component(r) == "controller"]
    assert role["metadata"]["namespace"] == "egs-system"
    cluster = _granted("capacity-backends")
    assert cluster["autoscaling.x-k8s.io/capacitybuffers"] == cluster["/podtemplates"] == {"list", "watch"}
    local = _granted("capacity-backends", kinds=("Role",))
    assert local["autoscaling.x-k8s.io/capacitybuffers"] == {"create", "patch", "delete"}
    assert "/secrets" not in _granted("default") and "/configmaps" not in _granted("default")


def test_the_api_reads_the_controller_s_lease_only_in_its_namespace() -> None:
    (role,) = [r for r in of_kind("default", "Role") if _component(r) == "api"]
    assert role["metadata"]["namespace"] == "egs-system"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["egs-controller"],
            "verbs": ["get"],
        }
    ]


def test_a_capacity_backend_s_kind_is_granted_only_when_a_class_uses_it() -> None:
    granted = _granted("capacity-backends")
    assert "autoscaling.x-k8s.io/capacitybuffers" in granted
    assert granted["karpenter.sh/nodepools"] == {"get", "list", "watch", "patch"}
    assert "scheduling.k8s.io/priorityclasses" not in granted
    default = _granted("default")  # no GPU class: no warm pool
    assert not any(k.startswith(("autoscaling.x-k8s.io/", "karpenter.sh/", "scheduling.k8s.io/")) for k in default)
    assert "scheduling.k8s.io/priorityclasses" in _granted("kind-e2e")  # a balloon pool, the default backend


def test_the_controller_reads_its_configuration_and_the_registry_the_chart_ships() -> None:
    (config,) = [m for m in of_kind("capacity-backends", "ConfigMap") if _component(m) == "controller"]
    settings, models = parse_config(yaml.safe_load(config["data"]["config.yaml"]))
    assert settings.namespace == "egs-system"
    assert {c: s.pool for c, s in settings.classes.items()} == {"H100-80GB": "capacitybuffer", "L4": "karpenter-static"}
    assert models == Path("models.yaml")
    assert yaml.safe_load(config["data"]["models.yaml"]) == yaml.safe_load(
        (REPO / "examples" / "models.yaml").read_text()
    )
    deployments = {_component(d): d for d in of_kind("capacity-backends", "Deployment")}
    (controller,) = deployments["controller"]["spec"]["template"]["spec"]["containers"]
    assert "--prometheus=http://thanos-query.monitoring:9090" in controller["args"]
    assert deployments["controller"]["spec"]["replicas"] == 2  # the Lease elects the one that writes
    (api,) = deployments["api"]["spec"]["template"]["spec"]["containers"]
    assert "--config=/etc/egs/config.yaml" in api["args"]


def test_the_inference_endpoint_crd_ships_as_the_controller_defines_it() -> None:
    (crd,) = of_kind("default", "CustomResourceDefinition")
    assert crd == yaml.safe_load((REPO / "autoscaler" / "data" / "inferenceendpoint-crd.yaml").read_text())
    assert crd["spec"]["group"] == "egs.dev" and crd["spec"]["names"]["plural"] == "inferenceendpoints"
