"""`egs demo` end to end, compressed: a day of demand in 30 s through the whole local stack.

One run (the real command, as `make demo` runs it, with a shorter replay and node delay) serves every
test here: what its live summary says happened (a 202 with an ETA, a 201, a warm-pool object, a page
at Alertmanager), the HTML report it wrote, and that report opened by a headless Chromium, whose
screenshot must show the plots: coloured pixels where the page without its images has none.
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from autoscaler.config import parse_config
from autoscaler.decide import Observation, decide
from autoscaler.signals import ModelSignals
from common.errors import InputError
from localplay.demo import INTERVAL_S, LOAD_S, controller_config, demo_registry
from localplay.demo_replay import load_replay
from scheduler.catalog import Catalog
from scheduler.registry import Registry
from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PNG = re.compile(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'")


@dataclass
class DemoRun:
    code: int
    out: str
    err: str
    report: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    report = tmp_path_factory.mktemp("demo") / "report.html"
    args = ["demo", "--minutes", "0.5", "--node-delay", "4", "--every", "3", "--report", str(report)]
    done = subprocess.run([sys.executable, "-m", "egs.cli", *args], capture_output=True, text=True, timeout=180)
    return DemoRun(done.returncode, done.stdout, done.stderr, report)


def test_the_demo_requests_endpoints_scales_a_warm_pool_and_pages(demo: DemoRun) -> None:
    assert demo.code == 0, demo.err[-3000:]
    assert "Traceback" not in demo.err
    accepted = re.search(r"POST chat \(.*\) -> 202, estimatedReadyTime (\S+) \(in (\d+) s\)", demo.out)
    assert accepted, demo.out
    assert int(accepted.group(2)) > 0
    assert re.search(r"POST docs \(.*\) -> 201$", demo.out, re.MULTILINE), demo.out
    assert "chat is Ready" in demo.out and "docs is Ready" in demo.out
    pools = re.findall(r"Deployment egs-system/egs-warm-h100-80gb\S* replicas (\d+)", demo.out)
    assert pools and max(map(int, pools)) >= 1
    nodes = [int(n) for n in re.findall(r"GPU nodes (\d+) ready", demo.out)]
    assert nodes[0] == 0 and max(nodes) >= 2, "nodes join as the node autoscaler provisions them"
    kept = r"endpoint demo/chat: promised ready in \d+ s \(202\), ready after \d+ s: (kept, \d+ s early|late by \d+ s)"
    assert re.search(kept, demo.out), "the closing summary says whether the 202's promise was kept"
    alerts = re.search(r"alerts seen at Alertmanager: (.*)", demo.out)
    assert alerts and "GPUVRAMSaturated" in alerts.group(1), demo.out
    assert re.search(r"alerts  .*GPUVRAMSaturated gpu-h100-\d+/\d", demo.out), "the live summary shows the page"
    assert f"report written to {demo.report.resolve()}" in demo.out


def test_logs_go_to_stderr_and_none_below_warning_lands_between_the_summaries(demo: DemoRun) -> None:
    log_line = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ", re.MULTILINE)
    assert not log_line.search(demo.out), demo.out
    assert not re.search(r"^\S+ \S+ (DEBUG|INFO) ", demo.err, re.MULTILINE), demo.err


def test_the_report_is_one_file_with_every_plot_embedded(demo: DemoRun) -> None:
    page = demo.report.read_text()
    plots = PNG.findall(page)
    assert len(plots) == 6
    for data in plots:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        pixels = image.imread(io.BytesIO(png))
        assert pixels.shape[0] > 100 and float(pixels[..., :3].std()) > 0.05, "a plot, not a blank image"
    assert "GPUVRAMSaturated" in page and "<td>202</td>" in page and "<td>201</td>" in page
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page), "self-contained: nothing is fetched"


def _screenshot(page: Path, png: Path, profile: Path) -> np.ndarray:
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1200,2000", page.as_uri(),
        ],
        capture_output=True, timeout=90, check=True,
    )  # fmt: skip
    pixels: np.ndarray = image.imread(png)[..., :3]
    return pixels


def _coloured(pixels: np.ndarray) -> float:
    """Share of the pixels in colour (plot lines, legends, shading): text, tables and rules are grey."""
    return float(((pixels.max(axis=2) - pixels.min(axis=2)) > 0.15).mean())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: `make test` installs Debian's chromium "
                    "with apt-get, which could not be done here")  # fmt: skip
def test_headless_chromium_shows_the_reports_plots(demo: DemoRun, tmp_path: Path) -> None:
    shown = _screenshot(demo.report, tmp_path / "report.png", tmp_path / "profile")
    without = tmp_path / "without-images.html"
    without.write_text(PNG.sub("src=''", demo.report.read_text()))
    bare = _screenshot(without, tmp_path / "bare.png", tmp_path / "profile")
    assert shown.shape == bare.shape == (2000, 1200, 3)
    assert _coloured(bare) < 0.001, "the page without its images has no colour of its own"
    assert _coloured(shown) > 0.01, "the screenshot shows the plots' coloured lines"
    changed = np.abs(shown - bare).max(axis=2) > 0.1
    assert changed.mean() > 0.05, "the plots fill a good part of the page"


def test_the_replay_scales_to_the_busiest_peak_fills_gaps_and_wraps_round_the_day(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    rows = ["time_s,model,demand_rps", "0,a,10", "600,a,20", "1200,a,40", "1800,a,30"]
    rows += ["0,b,5", "1200,b,10", "1800,b,5"]  # no row for b at 600: a gap, which repeats 5
    trace.write_text("\n".join(rows) + "\n")
    replay = load_replay(trace, minutes=1, peak_rps=8, start_hour=0.5)  # starts at sample 3 (1800 s)
    assert replay.speed == 2400 / 60 and replay.duration_s == 60
    assert replay.demand_rps["a"].tolist() == [2, 4, 8, 6] and replay.demand_rps["b"].tolist() == [1, 1, 2, 1]
    assert replay.demand_at(0) == {"a": 6, "b": 1}
    assert replay.demand_at(7.5) == pytest.approx({"a": 4, "b": 1})  # halfway from sample 3 back round to 0
    assert replay.trace_time_s(60) == 1800  # a whole day later: the same hour


def test_a_trace_without_demand_is_refused_naming_the_file(tmp_path: Path) -> None:
    trace = tmp_path / "zero.csv"
    trace.write_text("time_s,model,demand_rps\n0,a,0\n600,a,0\n")
    with pytest.raises(InputError, match="no demand above 0") as refused:
        load_replay(trace, minutes=1, peak_rps=8)
    assert str(trace) in str(refused.value)


def test_the_demos_controller_scales_down_within_replayed_minutes_not_days() -> None:
    """HPA's 300 s window, uncompressed, is 40 replayed hours at the default 480x: no endpoint would
    shrink and no node would be given back in the night's trough."""
    replay = load_replay(REPO / "examples" / "demand-day.csv", minutes=3, peak_rps=40)
    settings, _ = parse_config(controller_config(replay, node_delay_s=8, models=REPO / "examples" / "models.yaml"))
    replayed_minutes = settings.scale_down_stabilization_s * replay.speed / 60
    assert replayed_minutes <= 20, f"a lower replica target waits {replayed_minutes:.0f} replayed minutes"
    assert settings.scale_down_stabilization_s >= 2, (
        "a one-loop dip (the controller loops every second) removes nothing"
    )


def test_the_demos_202_promises_its_own_node_delay_and_load_with_the_quantiles_slack(tmp_path: Path) -> None:
    """Configured as a cluster is (its loop for the step, its kubelet's load in the registry), the demo's
    controller promises a replica on a node ordered now what its play takes, plus the prior's quantile:
    with the defaults' 60 s step and a vLLM's 37 s load, `make demo` promised 157 s and was Ready in 11 s."""
    replay = load_replay(REPO / "examples" / "demand-day.csv", minutes=3, peak_rps=40)
    node_delay_s, now = 8.0, 1_800_000_000.0
    settings, models = parse_config(controller_config(replay, node_delay_s, demo_registry(tmp_path / "models.yaml")))
    assert models is not None
    catalog = Catalog.load()
    model = replay.models[0]
    endpoint = {
        "apiVersion": "egs.dev/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": "chat", "namespace": "demo", "uid": "uid-chat", "generation": 1},
        "spec": {"model": model, "qualityFloor": 0.99, "replicas": {"min": 1, "max": 1}},
    }
    demand = {model: ModelSignals(model, 1.0, sampled_at=now)}
    decision = decide(
        Observation([], [endpoint], signals=demand), settings, Registry.load(models, catalog), catalog, now
    )
    (chat,) = decision.endpoints
    assert chat.phase == "Provisioning" and chat.eta is not None
    takes = node_delay_s + LOAD_S  # the play's node, then its kubelet
    low, high = settings.eta.prior_delay_s
    assert low == node_delay_s and settings.eta.step_s == INTERVAL_S
    # The slack is the prior's quantile above its shortest delay, and a step for each round-up (order, delay).
    assert 0 <= chat.eta - now - takes <= settings.eta.quantile * (high - low) + 2 * settings.eta.step_s


@pytest.mark.parametrize(("samples", "span"), [(144, "a day"), (6, "1.0 h"), (2016, "14.0 days")])
def test_the_demo_says_how_much_recorded_time_its_trace_covers(tmp_path: Path, samples: int, span: str) -> None:
    """`egs demo --trace` replays any trace: its lines and report must not call a fortnight "a day"."""
    trace = tmp_path / "trace.csv"
    trace.write_text("time_s,model,demand_rps\n" + "".join(f"{600 * i},a,{1 + i % 7}\n" for i in range(samples)))
    assert load_replay(trace, minutes=1, peak_rps=8).span == span
