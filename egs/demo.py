"""`egs demo`: a simulated node's exporter scraped by a real Prometheus, and what Prometheus sees.

It runs inside a `LocalStack`, so however it ends (Ctrl-C, SIGTERM, SIGHUP, a server dying, a bug)
both servers are stopped, the working directory is removed, and one line on stderr says why.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from egs.localstack import LocalStack, Prometheus, StackError, Stopped

log = logging.getLogger(__name__)

QUERIES = {
    "util %": "DCGM_FI_DEV_GPU_UTIL",
    "VRAM %": "egs_gpu_vram_used_ratio * 100",
    "VRAM used MiB": "DCGM_FI_DEV_FB_USED",
    "VRAM free MiB": "DCGM_FI_DEV_FB_FREE",
    "power W": "DCGM_FI_DEV_POWER_USAGE",
    "temp C": "DCGM_FI_DEV_GPU_TEMP",
}


def table(prom: Prometheus) -> str:
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for column, promql in QUERIES.items():
        for series in prom.query(promql):
            m = series["metric"]
            key = (
                m.get("Hostname", "?"),
                m.get("gpu", "?") + (f"/{m['GPU_I_ID']}" if "GPU_I_ID" in m else ""),
            )
            row = rows.setdefault(key, {"model": m.get("modelName", "?")})
            row[column] = f"{float(series['value'][1]):.0f}"
    header = ["node", "gpu", "model", *QUERIES]
    lines = [header] + [[*key, row["model"], *(row.get(c, "-") for c in QUERIES)] for key, row in sorted(rows.items())]
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in lines)


def run(fleet_file: Path | None, node: str | None, rounds: int, every_s: float) -> int:
    """Run the demo; returns the exit code: 0 when done or Ctrl-C, 128+n for signal n, 1 on a failure."""
    try:
        with LocalStack(prefix="egs-demo-") as stack:
            _show(stack, fleet_file, node, rounds, every_s)
    except KeyboardInterrupt:
        return _stopped("stopped by Ctrl-C (SIGINT)", 0)
    except Stopped as e:
        return _stopped(f"stopped by {e} (signal {e.signum})", 128 + e.signum)
    except StackError as e:
        return _stopped(f"stopped: {e}", 1)
    except Exception as e:
        log.debug("the demo failed", exc_info=True)
        return _stopped(f"stopped by an unexpected error: {type(e).__name__}: {e} (--log-level debug shows where)", 1)
    return 0


def _show(stack: LocalStack, fleet_file: Path | None, node: str | None, rounds: int, every_s: float) -> None:
    print(f"egs demo: starting a simulated node's exporter (workdir {stack.workdir})", flush=True)
    options = ["--kubelet-socket", "none", "--collect-interval", "1"]
    options += ["--fleet", str(fleet_file)] if fleet_file else []
    options += ["--node", node] if node else []
    target = stack.exporter("exporter", *options)
    print(f"egs demo: simulated node exporter on http://{target}/metrics", flush=True)
    prom = stack.prometheus([target], interval="2s")
    print(f"egs demo: Prometheus on {prom.url} scraping it; waiting for the first scrape...", flush=True)
    if not prom.wait_for('up{job="egs-exporter"} == 1', timeout_s=30):
        stack.check()
        raise StackError("Prometheus did not scrape the exporter within 30s")
    done = 0
    while rounds == 0 or done < rounds:
        prom.wait_for("DCGM_FI_DEV_GPU_UTIL", timeout_s=30)
        stack.check()
        print(f"\n{time.strftime('%H:%M:%S')} what Prometheus sees (simulated GPUs):\n{table(prom)}", flush=True)
        done += 1
        if rounds == 0 or done < rounds:
            stack.wait(every_s)


def _stopped(why: str, code: int) -> int:
    print(f"egs demo: {why}; its processes are stopped and its workdir removed", file=sys.stderr, flush=True)
    return code
