"""The chart as an operator runs it: what the pods are told, how they are probed and kept, and what
NOTES.txt says.

Aspects: every argument the chart gives `egs controller` and `egs api` is one their real parser accepts,
in every values set; controller.prometheusUrl defaults to kube-prometheus-stack's Prometheus Service as
that chart names it, and without one NOTES.txt says loudly that autoscaling is off; the controller's
probes use /healthz and /readyz on its metrics port, the API's /healthz over its scheme; each
Deployment with more than one replica has a PodDisruptionBudget; the API serves HTTPS from a Secret, a
cert-manager Certificate or a certificate Helm makes (a real TLS handshake checks that one names the
Service and chains to its CA), or plain HTTP only when asked; the controller's configuration passes the
documented keys through.
"""

from __future__ import annotations

import base64
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.config import parse_config, parse_config_prices
from egs.cli import _command, _parser
from tests.test_helm_chart import CHART, VALUE_SETS, helm, helm_binary, of_kind, template


def _component(obj: dict[str, Any]) -> str:
    return str(obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", ""))


def deployment(values: str, component: str) -> dict[str, Any]:
    (found,) = [d for d in of_kind(values, "Deployment") if _component(d) == component]
    return found


def container(values: str, component: str) -> dict[str, Any]:
    (found,) = deployment(values, component)["spec"]["template"]["spec"]["containers"]
    return dict(found)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_argument_the_chart_passes_is_one_the_real_cli_accepts(values: str) -> None:
    for component in ("controller", "api"):
        found = [d for d in of_kind(values, "Deployment") if _component(d) == component]
        for d in found:
            for c in d["spec"]["template"]["spec"]["containers"]:
                # as `egs` parses its argv: argparse exits (SystemExit) on an unknown flag or a bad value
                _parser(_command(c["args"])).parse_args(c["args"])


@pytest.mark.parametrize(
    ("flags", "url"),
    [
        (
            ["--set", "monitoring.release=kube-prometheus-stack"],
            "http://kube-prometheus-stack-prometheus.monitoring:9090",
        ),
        (["--set", "monitoring.release=prometheus"], "http://prometheus-kube-prometheus-prometheus.monitoring:9090"),
        (["--set", "monitoring.release=kps"], "http://kps-kube-prometheus-stack-prometheus.monitoring:9090"),
        (
            [
                "--set",
                "monitoring.release=kps",
                "--set",
                "monitoring.kubePrometheusStack.fullnameOverride=kps",
                "--set",
                "monitoring.kubePrometheusStack.namespace=observability",
            ],
            "http://kps-prometheus.observability:9090",
        ),
        (
            ["--set", "monitoring.release=kps", "--set", "controller.prometheusUrl=https://thanos.monitoring:10902"],
            "https://thanos.monitoring:10902",
        ),
        ([], None),
    ],
)
def test_the_controller_reads_kube_prometheus_stack_s_prometheus_by_default(flags: list[str], url: str | None) -> None:
    result = helm(
        "template", "egs", str(CHART), "-n", "egs-system", "--show-only", "templates/controller-deployment.yaml", *flags
    )
    assert result.returncode == 0, result.stderr
    (dep,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    given = [a.removeprefix("--prometheus=") for a in args if a.startswith("--prometheus=")]
    assert given == ([url] if url else [])


def notes(tmp_path: Path, *flags: str) -> str:
    """NOTES.txt as `helm install` prints it (helm template does not render it, and install needs a
    cluster): the chart copied with its NOTES.txt as a named template that a ConfigMap renders."""
    chart = tmp_path / "egs"
    shutil.copytree(CHART, chart)
    text = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes.tpl").write_text('{{- define "notes" -}}\n' + text + "{{- end -}}\n")
    (chart / "templates" / "notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ include "notes" . | toJson }}\n'
    )
    command = [helm_binary(), "template", "egs", str(chart), "-n", "egs-system", "--show-only", "templates/notes.yaml"]
    result = subprocess.run([*command, *flags], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


def test_notes_say_loudly_that_autoscaling_is_off_without_a_prometheus(tmp_path: Path) -> None:
    text = notes(tmp_path)
    assert "WARNING: AUTOSCALING IS OFF" in text and "monitoring.release is empty" in text
    assert "pod-security.kubernetes.io/enforce=privileged" in text
    configured = notes(tmp_path / "kps", "--set", "monitoring.release=kps")
    assert "AUTOSCALING IS OFF" not in configured and "monitoring.release is empty" not in configured
    assert "http://kps-kube-prometheus-stack-prometheus.monitoring:9090" in configured
    for check in ("kubectl get inferenceendpoints -A", "egs_autoscaler_prometheus_up", "up{job=~"):
        assert check in configured


def test_notes_name_the_dcgm_exporter_scrape_beside_the_gpu_operator(tmp_path: Path) -> None:
    text = notes(tmp_path, "--set", "exporter.enabled=false", "--set", "monitoring.release=kps")
    assert "ServiceMonitor egs-dcgm-exporter in gpu-operator" in text
    assert "pod-security" not in text  # no exporter: nothing needs the privileged level


def test_notes_mint_the_api_token_for_the_audience_the_api_accepts(tmp_path: Path) -> None:
    """With tokenAudiences set, a token minted without --audience is refused 401: the curl must ask for one."""
    text = notes(tmp_path, "--values", str(CHART / "ci" / "dcgm-exporter-values.yaml"))
    assert "kubectl create token default -n default --audience egs)" in text
    assert "403 means the API works" in text
    default = notes(tmp_path / "default", "--set", "monitoring.release=kps")
    assert "kubectl create token default -n default)" in default and "--audience" not in default


def test_the_controller_is_probed_on_its_health_endpoints() -> None:
    c = container("default", "controller")
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # liveness starts after a first loop may have run (interval 30 s)
    assert c["livenessProbe"]["initialDelaySeconds"] >= 30
    api = container("default", "api")
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "api", "scheme": "HTTPS"}
    plain = container("api-behind-a-tls-proxy", "api")
    assert plain["readinessProbe"]["httpGet"]["scheme"] == "HTTP" and "--insecure-http" in plain["args"]


@pytest.mark.parametrize("values", ["default", "kind-e2e"])
def test_each_deployment_with_replicas_to_spare_has_a_disruption_budget(values: str) -> None:
    budgets = {_component(b): b for b in of_kind(values, "PodDisruptionBudget")}
    for d in of_kind(values, "Deployment"):
        component = _component(d)
        if d["spec"]["replicas"] > 1:
            assert budgets[component]["spec"]["minAvailable"] == 1
            assert budgets[component]["spec"]["selector"] == d["spec"]["selector"]
        else:  # a budget of one replica would block every node drain
            assert component not in budgets


def test_the_prometheus_and_lease_flags_follow_the_values() -> None:
    c = container("prometheus-over-https", "controller")
    for flag in (
        "--prometheus=https://thanos.monitoring:10902",
        "--prometheus-timeout=4",
        "--prometheus-ca-file=/etc/egs/prometheus-ca/ca.crt",
        "--lease-duration=20",
        "--renew-deadline=15",
        "--retry-period=3",
    ):
        assert flag in c["args"]
    pod = deployment("prometheus-over-https", "controller")["spec"]["template"]["spec"]
    assert {"name": "prometheus-ca", "configMap": {"name": "thanos-ca"}} in pod["volumes"]
    defaults = container("default", "controller")["args"]
    assert not [a for a in defaults if a.startswith(("--lease", "--renew", "--retry", "--prometheus-"))]


def test_the_configuration_passes_the_documented_keys_through() -> None:
    result = helm(
        "template",
        "egs",
        str(CHART),
        "--show-only",
        "templates/controller-config.yaml",
        "--set-json",
        'controller.config.prices={"H100-80GB": 2.49}',
        "--set-json",
        'controller.config.consolidation={"enabled": true, "minSavingFraction": 0.2}',
        "--set",
        "controller.config.scaleDownStabilizationSeconds=120",
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(yaml.safe_load(result.stdout)["data"]["config.yaml"])
    assert parse_config_prices(config) == {"H100-80GB": 2.49}  # the controller's own reader
    assert config["consolidation"] == {
        "enabled": True,
        "minSavingFraction": 0.2,
        "interval": 600,
        "consolidateAfter": 3600,
    }
    assert config["scaleDownStabilizationSeconds"] == 120
    settings, _ = parse_config(config)  # the controller reads every key the chart writes
    assert settings.consolidation.enabled and settings.scale_down_stabilization_s == 120


@pytest.mark.parametrize(
    ("flags", "step_s"),
    [([], 30), (["--set", "controller.interval=20"], 20), (["--set", "controller.config.eta.step_s=45"], 45)],
)
def test_the_eta_step_is_the_controller_s_interval_unless_set(flags: list[str], step_s: float) -> None:
    result = helm("template", "egs", str(CHART), "--show-only", "templates/controller-config.yaml", *flags)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(yaml.safe_load(result.stdout)["data"]["config.yaml"])
    settings, _ = parse_config(config)
    assert settings.eta.step_s == step_s


def _api_tls_volume(values: str) -> str | None:
    pod = deployment(values, "api")["spec"]["template"]["spec"]
    names = [v["secret"]["secretName"] for v in pod["volumes"] if v["name"] == "tls"]
    return names[0] if names else None


def test_the_api_serves_https_from_the_secret_it_is_given() -> None:
    assert _api_tls_volume("ci/dcgm-exporter-values.yaml") == "egs-api-tls"
    assert not [s for s in of_kind("ci/dcgm-exporter-values.yaml", "Secret") if _component(s) == "api"]
    args = container("ci/dcgm-exporter-values.yaml", "api")["args"]
    assert {
        "--tls-cert-file=/etc/egs/tls/tls.crt",
        "--tls-key-file=/etc/egs/tls/tls.key",
        "--token-audience=egs",
    } <= set(args)
    assert _api_tls_volume("api-behind-a-tls-proxy") is None


@pytest.mark.parametrize(("values", "issuer"), [("cert-manager", "egs-api"), ("cert-manager-issuer", "letsencrypt")])
def test_with_cert_manager_a_certificate_names_the_service(values: str, issuer: str) -> None:
    (certificate,) = of_kind(values, "Certificate")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert certificate["spec"]["secretName"] == _api_tls_volume(values) == "egs-api-tls"
    assert "egs-api.egs-system.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == issuer
    issuers = of_kind(values, "Issuer")
    assert [i["spec"] for i in issuers] == ([{"selfSigned": {}}] if issuer == "egs-api" else [])
    assert not of_kind(values, "Secret")


def test_without_cert_manager_helm_makes_a_certificate_a_client_verifies_by_the_service_s_name(tmp_path: Path) -> None:
    (secret,) = [s for s in of_kind("default", "Secret") if _component(s) == "api"]
    assert secret["type"] == "kubernetes.io/tls" and _api_tls_volume("default") == secret["metadata"]["name"]
    files = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname="egs-api.egs-system.svc") as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(timeout=10)


def test_helm_lookup_keeps_an_installed_certificate() -> None:
    text = (CHART / "templates" / "api-tls.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $secret' in text


def test_every_values_file_docs_install_md_names_is_rendered_by_the_tests() -> None:
    from tests.conftest import REPO

    install = (REPO / "docs" / "install.md").read_text()
    files = {p.name for p in (CHART / "ci").glob("*-values.yaml")}
    assert files and all(f"helm/egs/ci/{name}" in install for name in files)
    assert {f"ci/{name}" for name in files} <= set(VALUE_SETS)
    assert all(template(f"ci/{name}") for name in files)
