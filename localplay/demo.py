"""`egs demo`: the whole local stack on one machine with no GPU and no cluster, replaying recorded demand.

What runs (all on 127.0.0.1, inside a `LocalStack`, so that however it ends, by itself, by Ctrl-C,
SIGTERM, SIGHUP, a server dying or a bug, everything is stopped and the workdir removed, with one
line on stderr saying why):

- a simulated mixed fleet's exporters (`egs exporter --backend sim`, one process per node of the
  fleet file), and an exporter per GPU node the demo's node autoscaler adds (`localplay.demo_cluster`);
- a real Prometheus with the EGS recording rules and alerts (durations compressed as time is), and
  a real Alertmanager it sends alerts to;
- the real `egs controller` and `egs api` processes against a Kubernetes API stand-in
  (`localplay.kube_standin`, kmock), and a vLLM metrics stand-in (`localplay.vllm_standin`);
- a day of demand (`localplay.demo_replay`) replayed in `--minutes`: endpoints are requested through the
  API (202 with an ETA while nodes are provisioned, 201 when warm capacity serves at once), the
  controller scales them and holds a warm pool, the demo plays scheduler, kubelet and node
  autoscaler, and the capped endpoint's GPUs saturate at the daily peak, which pages.

A summary goes to stdout every `--every` seconds; at the end, or on Ctrl-C, the HTML report
(`localplay.demo_report`) is written and its path printed.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from alerts.config import RulesConfig
from alerts.rules import render
from exporter.fleet import load_fleet
from localplay.demo_cluster import (
    DEPLOYMENTS,
    REQUEST_NAME,
    SATURATING_LOAD,
    ClusterPlay,
    PlaySettings,
    registry_with_loads,
)
from localplay.demo_replay import Replay
from localplay.demo_report import Answer, Run, Sample, promises, write_report
from localplay.kube_standin import KubeCluster
from localplay.localstack import LocalStack, Prometheus, StackError, Stopped, egs_command, free_port
from localplay.vllm_standin import VllmStandIn
from scheduler.catalog import Catalog

log = logging.getLogger(__name__)

NAMESPACE = "demo"
TOKEN = "demo-token"
GPU_CLASS = "H100-80GB"
ENDPOINTS = "egs.dev/v1alpha1/inferenceendpoints"
THROUGHPUT_RPS = 5.0
"""Requests per second one replica serves, for every model of the demo (the controller is told so)."""
INTERVAL_S = 1
"""The controller's loop (`--interval`), and so the step its promises count in (`eta.step_s`)."""
LOAD_S = 2.0
"""Seconds the demo's kubelet takes to load a placed replica's model: the registry it gives the controller
says so (`load_seconds`), as an operator's registry says what their cluster's loads take."""


@dataclass(frozen=True)
class Options:
    replay: Replay
    fleet: Path
    every_s: float = 5.0
    node_delay_s: float = 8.0
    report: Path = Path("egs-demo-report.html")


def run(options: Options) -> int:
    """Run the demo; returns the exit code: 0 when done or Ctrl-C, 128+n for signal n, 1 on a failure."""
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the stand-in's every request
    if not log.isEnabledFor(logging.DEBUG):
        # The exporters of the nodes the demo's autoscaler adds run in this process: their start-up lines
        # would land between the live summaries on a terminal. Warnings and errors still show, on stderr.
        logging.getLogger("exporter").setLevel(logging.WARNING)
    record = Run()
    try:
        with LocalStack(prefix="egs-demo-") as stack:
            _Demo(stack, options, record).play()
        code = 0
    except KeyboardInterrupt:
        code = _stopped("stopped by Ctrl-C (SIGINT)", 0)
    except Stopped as e:
        code = _stopped(f"stopped by {e} (signal {e.signum})", 128 + e.signum)
    except StackError as e:
        return _stopped(f"stopped: {e}", 1)
    except Exception as e:
        log.debug("the demo failed", exc_info=True)
        return _stopped(f"stopped by an unexpected error: {type(e).__name__}: {e} (--log-level debug shows where)", 1)
    if record.samples:
        try:
            path = write_report(
                record, options.report, f"EGS demo: {options.replay.span} of demand on a simulated GPU fleet"
            )
        except KeyboardInterrupt:
            return code
        print(f"egs demo: report written to {path.resolve()}", flush=True)
    return code


class _Demo:
    def __init__(self, stack: LocalStack, options: Options, record: Run) -> None:
        self.stack, self.options, self.record = stack, options, record
        self.replay = options.replay
        self.started = time.monotonic()
        self.requested: dict[str, Answer] = {}

    def play(self) -> None:
        stack, options = self.stack, self.options
        print(f"egs demo: starting the local stack (workdir {stack.workdir})", flush=True)
        nodes = [n.name for n in load_fleet(options.fleet).nodes]
        opts = ["--fleet", str(options.fleet), "--kubelet-socket", "none", "--collect-interval", "1"]
        fleet = stack.exporters({node: [*opts, "--node", node] for node in nodes})
        print(f"egs demo: {len(fleet)} simulated fleet exporters ({', '.join(nodes)})", flush=True)
        kube = KubeCluster().start()
        vllm = VllmStandIn([])
        play: ClusterPlay | None = None
        try:
            kube.emulator.tokens[TOKEN] = ("demo-user", ("demo-team",))
            for verb in ("create", "get", "list", "delete"):
                kube.emulator.grants.add(("demo-user", verb, NAMESPACE))
            targets = stack.workdir / "gpu-nodes.yaml"
            targets.write_text("[]\n")
            settings = PlaySettings(
                node_delay_s=options.node_delay_s,
                load_s=LOAD_S,
                idle_release_s=2 * options.node_delay_s,
                throughput_rps=dict.fromkeys(self.replay.models, THROUGHPUT_RPS),
            )
            play = ClusterPlay(kube, vllm, settings, targets)
            self._run(kube, vllm, play, list(fleet.values()), targets)
        finally:
            if play is not None:
                play.close()
            vllm.close()
            kube.stop()

    def _run(self, kube: KubeCluster, vllm: VllmStandIn, play: ClusterPlay, fleet: list[str], targets: Path) -> None:
        stack, workdir = self.stack, self.stack.workdir
        am = stack.alertmanager(
            {
                "route": {"receiver": "pager", "group_by": ["alertname", "Hostname", "gpu"], "group_wait": "1s",
                          "group_interval": "1s", "repeat_interval": "1h"},
                "receivers": [{"name": "pager"}],
            }
        )  # fmt: skip
        rules = workdir / "egs.rules.yaml"
        rules.write_text(render(self._rules_config()))
        config = self._controller_config(workdir)
        kubeconfig = str(kube.kubeconfig(workdir / "kubeconfig"))
        metrics_port, api_port = free_port(), free_port()
        jobs = [
            {
                "job_name": "egs-exporter",
                "static_configs": [{"targets": fleet}],
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
            },
            {"job_name": "vllm", "honor_labels": True, "static_configs": [{"targets": [vllm.address]}]},
            {"job_name": "egs-controller", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]},
        ]
        prom = stack.prometheus(
            [], interval="1s", rule_files=[rules], alertmanagers=[am.address], scrape_configs=jobs,
            extra_args=["--rules.alert.resend-delay=1s"],
        )  # fmt: skip
        print(f"egs demo: Prometheus on {prom.url} (EGS rules), Alertmanager on http://{am.address}", flush=True)
        shared = ["--kubeconfig", kubeconfig, "--config", str(config)]
        api = f"http://127.0.0.1:{api_port}"
        stack.command("api", egs_command("api", *shared, "--listen", f"127.0.0.1:{api_port}"), f"{api}/openapi.json")
        controller = egs_command(
            "controller", *shared, "--prometheus", prom.url, "--interval", str(INTERVAL_S), "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
        )  # fmt: skip
        stack.command("controller", controller, f"http://127.0.0.1:{metrics_port}/metrics")
        print(
            f"egs demo: egs api on {api}, egs controller every {INTERVAL_S} s, a Kubernetes API stand-in on {kube.url}"
        )
        minutes = self.replay.duration_s / 60
        span, speed = self.replay.span, self.replay.speed
        print(f"egs demo: replaying {span} of demand in {minutes:.1f} min ({speed:.0f}x); Ctrl-C stops")
        self._loop(kube, play, prom, am.address, api)

    def _rules_config(self) -> RulesConfig:
        """The rules with their durations compressed as the replay compresses time (2 s at least)."""

        def scaled(seconds: float, least: float = 2.0) -> str:
            return f"{compressed(seconds, self.replay.speed, least):.0f}s"

        return RulesConfig(
            demand_window=scaled(300, least=10),
            vram_saturated_for=scaled(300),
            vram_saturated_keep_firing_for=scaled(900),
            bandwidth_saturated_for=scaled(900),
            warm_pool_exhausted_for=scaled(300),
            queue_backlog_for=scaled(600),
        )

    def _controller_config(self, workdir: Path) -> Path:
        path = workdir / "egs.yaml"
        models = demo_registry(workdir / "models.yaml")
        path.write_text(yaml.safe_dump(controller_config(self.replay, self.options.node_delay_s, models)))
        return path

    # -- the replay -------------------------------------------------------------------------------

    def _loop(self, kube: KubeCluster, play: ClusterPlay, prom: Prometheus, am: str, api: str) -> None:
        self.started = time.monotonic()
        next_print = 0.0
        while True:
            elapsed = time.monotonic() - self.started
            demand = self.replay.demand_at(elapsed)
            self._request(api, play, elapsed)
            play.step(time.monotonic(), demand)
            self._track_ready(kube, elapsed)
            self.record.samples.append(self._sample(kube, play, prom, am, elapsed, demand))
            if elapsed >= next_print:
                print(self._summary(self.record.samples[-1]), flush=True)
                next_print += self.options.every_s
            if elapsed >= self.replay.duration_s:
                break
            self.stack.wait(1.0)
        self.record.summary = self._totals(play)
        print("egs demo: replay done\n" + "\n".join(f"  {line}" for line in self.record.summary), flush=True)

    def _request(self, api: str, play: ClusterPlay, elapsed: float) -> None:
        """The endpoints the demo asks for: the busiest model's first (no node yet: 202 with an ETA),
        capped at the replicas its median demand saturates, so that its GPUs saturate in the busier half
        of the day; the other once a warm node is idle (201), uncapped."""
        models = sorted(self.replay.models, key=lambda m: -float(self.replay.demand_rps[m].max()))
        if "chat" not in self.requested:
            median = float(np.median(self.replay.demand_rps[models[0]]))
            cap = max(2, math.floor(median / (THROUGHPUT_RPS * SATURATING_LOAD)))
            self._post(api, play, "chat", models[0], cap, elapsed)
        elif len(models) > 1 and "docs" not in self.requested and _idle_node(play):
            self._post(api, play, "docs", models[1], 16, elapsed)

    def _post(self, api: str, play: ClusterPlay, name: str, model: str, cap: int, elapsed: float) -> None:
        body = {"name": name, "model": model, "qualityFloor": 0.99, "replicas": {"min": 1, "max": cap}}
        request = urllib.request.Request(
            f"{api}/v1/namespaces/{NAMESPACE}/endpoints",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                status, answer = r.status, json.load(r)
        except urllib.error.HTTPError as e:
            raise StackError(f"the API refused POST {name}: {e.code} {e.read().decode(errors='replace')}") from e
        except OSError as e:
            self.stack.check()
            raise StackError(f"the API did not answer POST {name}: {e}") from e
        eta = answer.get("estimatedReadyTime")
        eta_s = _unix(eta) - time.time() if eta else None
        self.requested[name] = Answer(elapsed, f"{NAMESPACE}/{name}", model, status, eta_s)
        self.record.answers.append(self.requested[name])
        play.models[f"{NAMESPACE}/{name}"] = model
        promise = f", estimatedReadyTime {eta} (in {eta_s:.0f} s)" if eta_s is not None else ""
        print(f"egs demo: POST {name} ({model}, up to {cap} replicas) -> {status}{promise}", flush=True)

    def _track_ready(self, kube: KubeCluster, elapsed: float) -> None:
        for name, answer in self.requested.items():
            if answer.ready_after_s is None:
                status = (kube.get(ENDPOINTS, NAMESPACE, name) or {}).get("status") or {}
                if status.get("phase") == "Ready":
                    answer.ready_after_s = elapsed - answer.at
                    print(f"egs demo: {name} is Ready ({status.get('url', '')}) {answer.ready_after_s:.0f} s after "
                          "its request", flush=True)  # fmt: skip

    def _sample(
        self, kube: KubeCluster, play: ClusterPlay, prom: Prometheus, am: str, elapsed: float, demand: dict[str, float]
    ) -> Sample:
        measured = _by(prom.query("model:requests:rate5m"), "model_name")
        vram = _by(prom.query("max by (Hostname) (gpu:vram_used:ratio)"), "Hostname")
        target = _by(prom.query("egs_warm_pool_target_nodes"), "gpu_class").get(GPU_CLASS, 0.0)
        idle = _by(prom.query("egs_warm_pool_idle_nodes"), "gpu_class").get(GPU_CLASS, 0.0)
        etas = _by(prom.query("egs_endpoint_estimated_ready_timestamp_seconds - time()"), "endpoint")
        endpoint_ready = _by(prom.query("egs_endpoint_ready"), "endpoint")
        forecast = _by(prom.query(f'egs_warm_pool_forecast_gpus{{gpu_class="{GPU_CLASS}"}}'), "bound")
        now = time.monotonic()
        serving = play.serving(now)
        replicas: dict[str, tuple[int, int]] = {}
        pools: dict[str, int] = {}
        for d in kube.all(DEPLOYMENTS):
            meta = d["metadata"]
            request = (meta.get("annotations") or {}).get(REQUEST_NAME)
            if (meta.get("annotations") or {}).get("egs.io/warm-pool"):
                pools[f"{meta['namespace']}/{meta['name']}"] = int(d["spec"].get("replicas", 0))
            if request:
                wanted, ready = int(d["spec"].get("replicas", 0)), int((d.get("status") or {}).get("readyReplicas", 0))
                before = replicas.get(request, (0, 0))
                replicas[request] = (before[0] + wanted, before[1] + ready)
        return Sample(
            t=elapsed,
            trace_hour=self.replay.trace_time_s(elapsed) / 3600,
            replayed_rps=demand,
            measured_rps=measured,
            capacity_rps={m: len(pods) * THROUGHPUT_RPS for m, pods in serving.items()},
            replicas=replicas,
            pool_target=int(target),
            pool_idle=int(idle),
            pool_objects=pools,
            nodes_ready=sum(1 for n in play.nodes.values() if n.ready_at <= now),
            nodes_coming=sum(1 for n in play.nodes.values() if n.ready_at > now),
            vram_max=vram,
            firing=self._alerts(am, elapsed),
            eta_left_s=etas,
            endpoint_ready={e: v == 1 for e, v in endpoint_ready.items()},
            gpus_held=sum(p.gpus for p in play.pods.values() if p.node and not p.placeholder),
            forecast_gpus=forecast,
        )

    def _alerts(self, am: str, elapsed: float) -> list[str]:
        """The alerts active at Alertmanager now, each remembered with when it was seen."""
        try:
            with urllib.request.urlopen(f"http://{am}/api/v2/alerts?active=true", timeout=10) as r:
                alerts: list[dict[str, Any]] = json.load(r)
        except OSError as e:
            self.stack.check()
            raise StackError(f"Alertmanager did not answer: {e}") from e
        self.record.saw(alerts, elapsed)
        firing = []
        for alert in alerts:
            labels = alert["labels"]
            where = f" {labels['Hostname']}/{labels['gpu']}" if "gpu" in labels and "Hostname" in labels else ""
            firing.append(f"{labels.get('alertname', '?')}{where}")
        return sorted(firing)

    def _summary(self, s: Sample) -> str:
        hour = s.trace_hour
        lines = [f"\n[{s.t:4.0f} s | trace {int(hour):02d}:{int(hour % 1 * 60):02d}]"]
        for model in sorted(s.replayed_rps):
            lines.append(
                f"  demand  {model}: {s.replayed_rps[model]:6.1f} req/s replayed, "
                f"{s.measured_rps.get(model, 0.0):6.1f} measured, capacity {s.capacity_rps.get(model, 0.0):5.1f}"
            )
        objects = ", ".join(f"Deployment {name} replicas {n}" for name, n in sorted(s.pool_objects.items()))
        lines.append(
            f"  pool    {GPU_CLASS}: target {s.pool_target} idle {s.pool_idle} ({objects or 'no pool object yet'}) | "
            f"GPU nodes {s.nodes_ready} ready, {s.nodes_coming} provisioning"
        )
        for name, answer in sorted(self.requested.items()):
            wanted, ready = s.replicas.get(name, (0, 0))
            eta = f" ETA {answer.eta_s:.0f} s" if answer.eta_s is not None else ""
            lines.append(f"  placed  {answer.endpoint} ({answer.model}): {answer.status}{eta}, {ready}/{wanted} ready")
        top = sorted(s.vram_max.items(), key=lambda kv: -kv[1])[:3]
        highest = ", ".join(f"{node} {ratio:.0%}" for node, ratio in top) or "no reading yet"
        lines.append("  VRAM    highest: " + highest)
        lines.append("  alerts  " + (", ".join(s.firing) if s.firing else "none firing"))
        return "\n".join(lines)

    def _totals(self, play: ClusterPlay) -> list[str]:
        samples = self.record.samples
        targets = sorted({s.pool_target for s in samples})
        ready = [s.nodes_ready for s in samples]
        names = sorted({a["labels"].get("alertname", "?") for a in self.record.alerts.values()})
        return [
            f"replayed {self.replay.span} of demand ({', '.join(self.replay.models)}) in {samples[-1].t:.0f} s",
            *(f"endpoint {line}" for line in promises(self.record.answers)),
            f"GPU nodes: {play.ordered} ordered, {min(ready)}-{max(ready)} ready over the run; warm-pool target "
            f"{'/'.join(map(str, targets))}",
            f"alerts seen at Alertmanager: {', '.join(names) if names else 'none'}",
        ]


def compressed(seconds: float, speed: float, least: float = 2.0) -> float:
    """A duration of the recorded day in real seconds at the replay's speed: at least `least`, two of the
    controller's 1 s loops, so that a one-loop blip still counts for nothing."""
    return max(least, seconds / speed)


def controller_config(replay: Replay, node_delay_s: float, models: Path) -> dict[str, Any]:
    """The demo's controller configuration, as an operator writes one for their cluster. Its scale-down
    window is compressed as the rules' durations are: 300 real seconds would be 40 replayed hours at the
    default 480x, and nothing would scale down. Its promises count the demo's own loop, node delay and load
    (`models`: `demo_registry`): with the defaults' 60 s step and a vLLM's 37 s load, `make demo`'s 202
    promised 157 s for a replica Ready in 11 s."""
    return {
        "models": str(models),
        "throughput_rps": dict.fromkeys(replay.models, THROUGHPUT_RPS),
        "stale_after_s": 30,
        "scaleDownStabilizationSeconds": compressed(300, replay.speed),
        "gpu_classes": {GPU_CLASS: {"gpus_per_node": 8, "pool": "balloon", "policy": "static", "static_nodes": 1}},
        "eta": {"prior_delay_s": [node_delay_s, 2 * node_delay_s], "step_s": INTERVAL_S},
    }


def demo_registry(path: Path) -> Path:
    """examples/models.yaml, written to `path` with every variant's load time the demo's kubelet's (`LOAD_S`)."""
    return registry_with_loads(path, lambda _: LOAD_S, Catalog.load())


def _idle_node(play: ClusterPlay) -> bool:
    """A node in the cluster that no replica holds (only a warm-pool placeholder, or nothing)."""
    held = {p.node for p in play.pods.values() if not p.placeholder}
    return any(n.exporter is not None and name not in held for name, n in play.nodes.items())


def _by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in result}


def _unix(stamp: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _stopped(why: str, code: int) -> int:
    print(f"egs demo: {why}; its processes are stopped and its workdir removed", file=sys.stderr, flush=True)
    return code
