"""The PromQL name extractor the metric-contract test relies on: each case it must get right."""

from __future__ import annotations

import pytest

from alerts.promql import NameRead, reads

CASES = [
    ('DCGM_FI_DEV_GPU_TEMP{instance=~"$instance", gpu=~"$gpu"}', {"DCGM_FI_DEV_GPU_TEMP"}),
    ('avg(DCGM_FI_DEV_GPU_TEMP{gpu=~"$gpu"}) * 1000000', {"DCGM_FI_DEV_GPU_TEMP"}),
    ("sum by (model_name) (rate(vllm:request_success_total[5m]))", {"vllm:request_success_total"}),
    ("a:b:c offset 1d", {"a:b:c"}),
    ("x > 1e3 and on (namespace, pod) y == 0", {"x", "y"}),
    ("x * on (namespace, pod) group_left (modelName) y", {"x", "y"}),
    ("time() - max(egs_t) > 300", {"egs_t"}),
    ('absent(up{job="egs-exporter"})', {"up"}),
    ('count by (Hostname) (m{GPU_I_ID=""} < 0.05) or (n * 0)', {"m", "n"}),
    ("max_over_time(q[1h:5m])", {"q"}),
    ('label_replace(v, "dst", "$1", "src", "(.*)")', {"v"}),
    ('{__name__="DCGM_FI_DEV_FB_USED", gpu="0"}', {"DCGM_FI_DEV_FB_USED"}),
    ('sum(rate({__name__="egs_exporter_read_errors_total"}[$__rate_interval]))', {"egs_exporter_read_errors_total"}),
    ('{job="egs-exporter"} or {job="x", __name__!="up"}', set()),
    ('{gpu="0" or __name__="inf_x"}', {"inf_x"}),
    ("nan_total > inf", {"nan_total"}),
]


@pytest.mark.parametrize(("expr", "names"), CASES)
def test_metric_names_are_exactly_the_selected_series(expr: str, names: set[str]) -> None:
    assert reads(expr) == {NameRead(name) for name in names}


def test_a_name_regex_is_read_as_a_pattern_that_must_match_whole_names() -> None:
    (read,) = reads('sum({__name__=~"DCGM_FI_DEV_FB_(USED|FREE)"})')
    assert read == NameRead("DCGM_FI_DEV_FB_(USED|FREE)", regex=True)
    assert read.matches("DCGM_FI_DEV_FB_FREE") and not read.matches("DCGM_FI_DEV_FB_FREE_X")


@pytest.mark.parametrize("expr", ["rate(x[5m)", "x +", "sum by (a) x y"])
def test_an_expression_that_is_not_promql_is_refused(expr: str) -> None:
    with pytest.raises(ValueError):
        reads(expr)
