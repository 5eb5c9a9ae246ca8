"""Rule-evaluation cost of the rules of each GPU source at 1,000 and 10,000 simulated GPUs.

For each source and scale: a fleet server renders one 8-GPU node per target (6 of 8 GPUs held by a
pod, as in a busy LLM cluster) as that source writes it (EGS's exporter, or the dcgm-exporter stand-in:
DCGM fields of the GPU Operator's counters file only), a real Prometheus scrapes every node and
evaluates that source's rules every 15 s, and the same Prometheus also evaluates the straightforward
formulation (a per-GPU three-way join of the FB series and a per-series max with memory-copy
utilisation) in a group of its own. Each group's time is the median of
`prometheus_rule_group_last_duration_seconds` over several evaluations after the first (which creates
the output series), two for a group evaluated every minute; `total_seconds` is the
rule-evaluation work of one 15 s interval (a group evaluated every minute counts a quarter). Progress
goes to stderr; the last line of stdout is one JSON object, one run per source and scale, each with its
`source`.

    python benchmarks/rules_scale.py [--sources egs,dcgm-exporter] [--scales 1000,10000] [--evaluations 6]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from alerts.config import SOURCES, RulesConfig, Source
from alerts.rules import render
from exporter.attribution import PodRef
from exporter.exposition import render as render_egs
from localplay.dcgm_standin import render_dcgm
from localplay.fleet_server import FleetServer, uniform_fleet
from localplay.localstack import Prometheus, free_port

INTERVAL = "15s"
NAIVE_GROUP = "naive-saturation.rules"
NAIVE = {
    "name": NAIVE_GROUP,
    "rules": [
        {
            "record": "naive:vram_used:ratio",
            "expr": "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE + DCGM_FI_DEV_FB_RESERVED)",
        },
        {
            "record": "naive:saturation:ratio",
            "expr": "(naive:vram_used:ratio >= DCGM_FI_DEV_MEM_COPY_UTIL / 100) or DCGM_FI_DEV_MEM_COPY_UTIL / 100",
        },
    ],
}
SATURATION_GROUPS = ("egs-gpu.rules", "egs-gpu-saturation.rules")
"""The groups that record the two per-GPU series the naive group records (`gpu:vram_used:ratio`,
`gpu:saturation:ratio`), one group each; the dcgm-exporter source also has the 1m VRAM total."""
TARGETS = {"max_group_s_10000": 0.25, "egs_ratio_vs_naive_10000": 0.5}
"""Every group of either source within 0.25 s at 10,000 GPUs; the egs source's saturation rules at most
half the cost of the straightforward join."""
EXPOSITIONS = {"egs": render_egs, "dcgm-exporter": render_dcgm}
JOBS = {"egs": "egs-exporter", "dcgm-exporter": "nvidia-dcgm-exporter"}
SLOWEST = 5
_DURATION = re.compile(r'^prometheus_rule_group_last_duration_seconds\{rule_group="[^"]*;([^"]+)"\} (\S+)$', re.M)
_EVALUATED = re.compile(
    r'^prometheus_rule_group_last_evaluation_timestamp_seconds\{rule_group="[^"]*;([^"]+)"\} (\S+)$', re.M
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pods_for(node: str, gpu: int) -> tuple[PodRef, ...]:
    return (PodRef("serving", f"{node}-vllm-{gpu}", "vllm"),) if gpu < 6 else ()


def measure(source: Source, gpus: int, evaluations: int, work: Path) -> dict[str, Any]:
    fleet = uniform_fleet(gpus)
    tag = f"{source}, {gpus} GPUs"
    log(f"{tag}: rendering {len(fleet.nodes)} nodes")
    server = FleetServer(("127.0.0.1", free_port()), fleet, pods=pods_for, exposition=EXPOSITIONS[source])
    server.serve_in_thread()
    rules = work / f"rules-{source}-{gpus}.yaml"
    groups = yaml.safe_load(render(RulesConfig(source=source)))
    # A group on a longer interval (1m) costs its time once per 4 intervals of 15 s.
    every_interval = {
        g["name"]: _seconds(INTERVAL) / _seconds(g["interval"]) for g in groups["groups"] if "interval" in g
    }
    groups["groups"].append(NAIVE)
    rules.write_text(yaml.safe_dump(groups, sort_keys=False))
    prom = Prometheus(
        work / f"prometheus-{source}-{gpus}",
        [],
        interval=INTERVAL,
        rule_files=[rules],
        scrape_configs=server.scrape_configs(JOBS[source], INTERVAL),
    )
    try:
        prom.start()
        log(f"{tag}: waiting for Prometheus to scrape every node")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            seen = prom.query("count(DCGM_FI_DEV_GPU_UTIL)")
            if seen and int(float(seen[0]["value"][1])) >= gpus:
                break
            time.sleep(2)
        else:
            raise RuntimeError(f"Prometheus did not see {gpus} GPUs within 180 s")
        durations: dict[str, list[float]] = {}
        last_seen: dict[str, float] = {}
        log(f"{tag}: sampling {evaluations} evaluations of every group (2 of those every minute)")
        names = [g["name"] for g in groups["groups"]]
        wanted = {g: (2 if g in every_interval else evaluations) for g in names}
        deadline = time.monotonic() + evaluations * 15 + 240
        while time.monotonic() < deadline:
            text = prom.own_metrics()
            stamps = {g: float(v) for g, v in _EVALUATED.findall(text)}
            for group, value in _DURATION.findall(text):
                if stamps.get(group, 0) > 0 and group not in last_seen:
                    last_seen[group] = stamps[group]  # the first evaluation creates the output series: warm-up
                elif stamps.get(group, 0) > last_seen.get(group, 0):
                    last_seen[group] = stamps[group]
                    durations.setdefault(group, []).append(float(value))
            if all(len(durations.get(g, [])) >= n for g, n in wanted.items()):
                break
            time.sleep(1)
        series = int(re.search(r"^prometheus_tsdb_head_series (\S+)$", prom.own_metrics(), re.M).group(1))  # type: ignore[union-attr]
        slowest = slowest_rules(prom.rule_groups())
    finally:
        prom.stop()
        server.close()
    medians = {g: round(statistics.median(v), 4) for g, v in sorted(durations.items())}
    measured = all(g in medians for g in SATURATION_GROUPS)  # the egs source's groups
    saturation = sum(medians[g] for g in SATURATION_GROUPS) if measured else None
    ratio = saturation / medians[NAIVE_GROUP] if saturation is not None and medians.get(NAIVE_GROUP) else None
    egs_groups = {g: v for g, v in medians.items() if g != NAIVE_GROUP}
    result = {
        "source": source,
        "gpus": gpus,
        "nodes": len(fleet.nodes),
        "series": series,
        "evaluations": {g: len(v) for g, v in sorted(durations.items())},
        "group_seconds": egs_groups,
        "max_group_seconds": max(egs_groups.values()),
        "total_seconds": round(sum(v * every_interval.get(g, 1.0) for g, v in egs_groups.items()), 4),
        "slowest_rules_last_evaluation": slowest,
        "saturation_seconds": None if saturation is None else round(saturation, 4),
        "naive_seconds": medians.get(NAIVE_GROUP),
        "ratio_vs_naive": None if ratio is None else round(ratio, 4),
    }
    log(f"{tag}: {json.dumps(result)}")
    return result


def _seconds(duration: str) -> float:
    return float(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def slowest_rules(groups: list[dict[str, Any]]) -> dict[str, float]:
    """The SLOWEST rules of the EGS groups in their last evaluation: where the time goes."""
    times = [
        (float(r["evaluationTime"]), f"{g['name']}/{r['name']}")
        for g in groups
        if g["name"] != NAIVE_GROUP
        for r in g["rules"]
    ]
    return {name: round(t, 4) for t, name in sorted(times, reverse=True)[:SLOWEST]}


def meets_targets(runs: list[dict[str, Any]]) -> dict[str, bool]:
    at_10k = [r for r in runs if r["gpus"] == 10000]
    verdict = {
        f"{r['source']}_max_group_s_10000": r["max_group_seconds"] <= TARGETS["max_group_s_10000"] for r in at_10k
    }
    for run in at_10k:
        if run["source"] == "egs":
            verdict["egs_ratio_vs_naive_10000"] = run["ratio_vs_naive"] <= TARGETS["egs_ratio_vs_naive_10000"]
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sources", default=",".join(SOURCES), help="rules sources, comma-separated (default %(default)s)"
    )
    parser.add_argument("--scales", default="1000,10000", help="GPU counts, comma-separated (default %(default)s)")
    parser.add_argument(
        "--evaluations", type=int, default=6, help="evaluations to take the median of (default %(default)s)"
    )
    args = parser.parse_args()
    sources = args.sources.split(",")
    unknown = set(sources) - set(SOURCES)
    if unknown:
        parser.error(f"--sources: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SOURCES)}")
    work = Path(tempfile.mkdtemp(prefix="egs-rules-scale-"))
    runs = [
        measure(source, int(scale), args.evaluations, work) for source in sources for scale in args.scales.split(",")
    ]
    print(json.dumps({"interval": INTERVAL, "runs": runs, "targets": TARGETS, "meets_targets": meets_targets(runs)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
