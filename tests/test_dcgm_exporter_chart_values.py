"""docs/install.md's "Beside dcgm-exporter alone" path: the ServiceMonitor that its values file renders selects
the Service NVIDIA's own dcgm-exporter chart makes.

A values file merges into the chart's defaults key by key, so a selector it gives is added to the GPU
Operator's default (`app: nvidia-dcgm-exporter`) rather than replacing it; a label the Service lacks makes the
ServiceMonitor select nothing, and Prometheus scrapes no GPU.
"""

from __future__ import annotations

from tests.test_helm_chart import of_kind

DCGM_EXPORTER_CHART_SERVICE_LABELS = {
    "helm.sh/chart": "dcgm-exporter-4.0.0",
    "app.kubernetes.io/name": "dcgm-exporter",
    "app.kubernetes.io/instance": "dcgm-exporter",
    "app.kubernetes.io/version": "4.0.0",
    "app.kubernetes.io/managed-by": "Helm",
}
"""The labels of dcgm-exporter's own chart's Service (`dcgm-exporter.labels` in NVIDIA/dcgm-exporter's
deployment/templates/_helpers.tpl) for release `dcgm-exporter`, as docs/install.md installs it."""


def test_the_dcgm_exporter_values_select_the_service_of_dcgm_exporter_s_own_chart() -> None:
    (monitor,) = [
        m
        for m in of_kind("ci/dcgm-exporter-values.yaml", "ServiceMonitor")
        if m["metadata"]["labels"]["app.kubernetes.io/component"] == "dcgm-exporter"
    ]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert wanted, "an empty selector would scrape every Service of the namespace"
    assert wanted.items() <= DCGM_EXPORTER_CHART_SERVICE_LABELS.items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["dcgm-exporter"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
