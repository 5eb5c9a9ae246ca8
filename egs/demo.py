"""`egs demo`: a simulated node's exporter scraped by a real Prometheus, and what Prometheus sees."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from egs.localstack import Prometheus, StackError, free_port, start_exporter

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


def run(fleet_file: Path | None, node: str | None, rounds: int, every_s: float, workdir: Path) -> int:
    port = free_port()
    print(
        f"egs demo: simulated node exporter on http://127.0.0.1:{port}/metrics (workdir {workdir})",
        flush=True,
    )
    options = ["--kubelet-socket", "none", "--collect-interval", "1"]
    options += ["--fleet", str(fleet_file)] if fleet_file else []
    options += ["--node", node] if node else []
    exporter = start_exporter(port, workdir / "exporter.log", *options)
    prom = Prometheus(workdir / "prometheus", [f"127.0.0.1:{port}"], interval="2s")
    try:
        prom.start()
        print(f"egs demo: Prometheus on {prom.url} scraping it; waiting for the first scrape...", flush=True)
        if not prom.wait_for('up{job="egs-exporter"} == 1', timeout_s=30):
            raise StackError("Prometheus did not scrape the exporter within 30s")
        done = 0
        while rounds == 0 or done < rounds:
            prom.wait_for("DCGM_FI_DEV_GPU_UTIL", timeout_s=30)
            print(
                f"\n{time.strftime('%H:%M:%S')} what Prometheus sees (simulated GPUs):\n{table(prom)}",
                flush=True,
            )
            done += 1
            if rounds == 0 or done < rounds:
                time.sleep(every_s)
    except KeyboardInterrupt:
        pass
    except StackError as e:
        print(f"egs demo: {e}", file=sys.stderr)
        return 1
    finally:
        prom.stop()
        exporter.terminate()
        exporter.wait(10)
    return 0
