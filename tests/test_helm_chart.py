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
from dashboards.render import rendered
from tests.conftest import REPO

CHART = REPO / "helm" / "egs"
KUBERNETES_VERSION = "1.31"
OPERATOR_SCHEMAS = REPO / "tests" / "data" / "prometheus-operator"
OPERATOR_KINDS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors", "PrometheusRule": "prometheusrules"}
MEASURED_RSS_MB = 56
"""The exporter's RSS at 64 GPUs with the kubelet client loaded (README, benchmarks/exporter_scrape.py)."""
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
    "no-monitoring-crds": [
        "--set",
        "monitoring.serviceMonitor.enabled=false",
        "--set",
        "monitoring.vllmPodMonitor.enabled=false",
        "--set",
        "rules.enabled=false",
    ],
}


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
    result = helm("lint", "--strict", str(CHART), *VALUE_SETS[values])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_built_in_object_passes_kubernetes_validate_strict(values: str) -> None:
    built_in = [o for o in template(values) if o["kind"] not in OPERATOR_KINDS]
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


def test_beside_the_gpu_operator_there_is_no_exporter_and_the_rules_read_dcgm_exporter() -> None:
    objects = template("beside-the-gpu-operator")
    assert not [o for o in objects if _component(o) == "exporter"]
    assert not {o["kind"] for o in objects} & {"DaemonSet", "ServiceMonitor"}
    assert {"PrometheusRule", "PodMonitor", "ConfigMap", "Deployment"} <= {o["kind"] for o in objects}


def test_without_the_operator_s_crds_nothing_needs_them() -> None:
    assert not {o["kind"] for o in template("no-monitoring-crds")} & set(OPERATOR_KINDS)


def test_scrapes_honour_the_exporter_s_pod_labels_and_name_the_job_the_rules_select() -> None:
    (monitor,) = of_kind("default", "ServiceMonitor")
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


def test_the_exporter_runs_with_only_what_it_needs() -> None:
    (ds,) = of_kind("default", "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
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
    (account,) = [a for a in of_kind("default", "ServiceAccount") if _component(a) == "exporter"]
    assert account["automountServiceAccountToken"] is False
    bound = [s["name"] for o in template("default") if o["kind"].endswith("Binding") for s in o["subjects"]]
    assert account["metadata"]["name"] not in bound


def _mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_the_exporter_s_memory_request_and_limit_cover_its_measured_rss() -> None:
    (ds,) = of_kind("default", "DaemonSet")
    resources = ds["spec"]["template"]["spec"]["containers"][0]["resources"]
    rss_mib = MEASURED_RSS_MB * 1e6 / 2**20
    assert rss_mib <= _mib(resources["requests"]["memory"]) <= _mib(resources["limits"]["memory"])
    assert _mib(resources["limits"]["memory"]) >= 2 * rss_mib  # room for a fleet larger than 64 GPUs
    assert resources["requests"]["cpu"] and resources["limits"]["cpu"]


def test_the_exporter_command_line_follows_the_values() -> None:
    (ds,) = of_kind("sim-exporter-dcgm-rules", "DaemonSet")
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


def _rules(values: str, kind: str) -> list[dict[str, Any]]:
    (role,) = of_kind(values, kind)
    return list(role["rules"])


def _granted(values: str) -> dict[str, set[str]]:
    """apiGroup/resource -> verbs the controller's ClusterRole grants."""
    granted: dict[str, set[str]] = {}
    for rule in _rules(values, "ClusterRole"):
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault(f"{group}/{resource}", set()).update(rule["verbs"])
    return granted


def test_the_controller_may_touch_only_what_it_reads_and_writes() -> None:
    granted = _granted("default")
    assert granted["/nodes"] == {"list", "watch"} and granted["/pods"] == {"list"}
    assert "watch" in granted["egs.dev/inferenceendpoints"]  # a change starts a loop (autoscaler.watches)
    assert granted["egs.dev/inferenceendpoints/status"] == {"patch"}
    assert granted["authentication.k8s.io/tokenreviews"] == {"create"}
    assert granted["events.k8s.io/events"] == {"create", "patch"}  # autoscaler.events.Recorder
    assert granted["authorization.k8s.io/subjectaccessreviews"] == {"create"}
    assert "/secrets" not in granted and "/configmaps" not in granted
    assert not any(k.startswith(("autoscaling.x-k8s.io/", "karpenter.sh/")) for k in granted)
    assert "scheduling.k8s.io/priorityclasses" in granted  # balloon pools, the default backend
    (lease,) = _rules("default", "Role")
    assert lease == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]}
    (role,) = of_kind("default", "Role")
    assert role["metadata"]["namespace"] == "egs-system"


@pytest.mark.parametrize("values", ["default", "capacity-backends"])
def test_every_kind_the_controller_lists_back_and_watches_is_granted(values: str) -> None:
    (config,) = [m for m in of_kind(values, "ConfigMap") if _component(m) == "controller"]
    settings, _ = parse_config(yaml.safe_load(config["data"]["config.yaml"]))
    granted = _granted(values)
    for api_version, kind in owned_kinds(settings):
        resource = KINDS[(api_version, kind)]
        assert {"list", "watch"} <= granted.get(f"{resource.group}/{resource.plural}", set()), kind


def test_a_capacity_backend_s_kind_is_granted_only_when_a_class_uses_it() -> None:
    granted = _granted("capacity-backends")
    assert "autoscaling.x-k8s.io/capacitybuffers" in granted
    assert granted["karpenter.sh/nodepools"] == {"get", "list", "watch", "patch"}
    assert "scheduling.k8s.io/priorityclasses" not in granted


def test_the_controller_reads_its_configuration_and_the_registry_the_chart_ships() -> None:
    (config,) = [m for m in of_kind("capacity-backends", "ConfigMap") if _component(m) == "controller"]
    settings, models = parse_config(yaml.safe_load(config["data"]["config.yaml"]))
    assert settings.namespace == "egs-system"
    assert {c: s.pool for c, s in settings.classes.items()} == {"H100-80GB": "capacitybuffer", "L4": "karpenter-static"}
    assert models == Path("models.yaml")
    assert yaml.safe_load(config["data"]["models.yaml"]) == yaml.safe_load(
        (REPO / "examples" / "models.yaml").read_text()
    )
    (deployment,) = of_kind("capacity-backends", "Deployment")
    controller = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--prometheus=http://thanos-query.monitoring:9090" in controller["args"]
    assert {c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]} == {"controller", "api"}
    assert deployment["spec"]["replicas"] == 2  # the Lease elects the one that writes


def test_the_inference_endpoint_crd_ships_as_the_controller_defines_it() -> None:
    (crd,) = of_kind("default", "CustomResourceDefinition")
    assert crd == yaml.safe_load((REPO / "autoscaler" / "data" / "inferenceendpoint-crd.yaml").read_text())
    assert crd["spec"]["group"] == "egs.dev" and crd["spec"]["names"]["plural"] == "inferenceendpoints"
