"""The PromQL name extractor the metric-contract test relies on: each case it must get right."""

from __future__ import annotations

import pytest

from alerts.promql import metric_names

CASES = [
    ('DCGM_FI_DEV_GPU_TEMP{instance=~"$instance", gpu=~"$gpu"}', {"DCGM_FI_DEV_GPU_TEMP"}),
    ('avg(DCGM_FI_DEV_GPU_TEMP{gpu=~"$gpu"}) * 1000000', {"DCGM_FI_DEV_GPU_TEMP"}),
    ("sum by (model_name) (rate(vllm:request_success_total[5m]))", {"vllm:request_success_total"}),
    ("a:b:c offset 1d", {"a:b:c"}),
    ("x > 1e3 and on (namespace, pod) group_left (modelName) y == 0", {"x", "y"}),
    ("time() - max(egs_t) > 300", {"egs_t"}),
    ('absent(up{job="egs-exporter"})', {"up"}),
    ('count by (Hostname) (m{GPU_I_ID=""} < 0.05) or (n * 0)', {"m", "n"}),
    ("max_over_time(q[1h:5m])", {"q"}),
    ('label_replace(v, "dst", "$1", "src", "(.*)")', {"v"}),
]


@pytest.mark.parametrize(("expr", "names"), CASES)
def test_metric_names_are_exactly_the_selected_series(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
