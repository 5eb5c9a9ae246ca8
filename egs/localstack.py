"""The local stack: real Prometheus (and later Alertmanager) processes on 127.0.0.1.

Used by `egs demo` and by the integration tests, so that both run the same servers the same way.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from common.errors import SetupError


class StackError(SetupError):
    """A local server is missing or did not come up; the message says which and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise StackError(f"{binary} not found: install Debian's {package} package (make test/demo do it)")
    return path


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise StackError(f"{url} not ready after {timeout_s:.0f}s")


@dataclass
class Prometheus:
    """A Prometheus server scraping `targets` (host:port strings) every `interval`."""

    workdir: Path
    targets: list[str]
    interval: str = "1s"
    rule_files: list[Path] = field(default_factory=list)
    alertmanagers: list[str] = field(default_factory=list)
    """host:port of Alertmanagers to send alerts to."""
    scrape_configs: list[dict[str, Any]] | None = None
    """Replaces the one `egs-exporter` job over `targets` when given."""
    extra_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        config = _write(self.workdir, "prometheus.yml", self._config())
        args = [
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            *self.extra_args,
        ]
        self._proc = launch("prometheus", "prometheus", args, self.workdir, f"{self.url}/-/ready")
        return self

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": self.scrape_configs
            or [{"job_name": "egs-exporter", "static_configs": [{"targets": self.targets}]}],
        }
        if self.alertmanagers:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]}
        return config

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the result vector (raises StackError on a PromQL error)."""
        data = self._get("/api/v1/query", {"query": promql})
        result: list[dict[str, Any]] = data["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self._get(f"/api/v1/label/{label}/values", {"match[]": match})
        return values

    def wait_for(self, promql: str, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Poll until the query returns series (the first scrape lands a few seconds after start)."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(promql)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.25)

    def rule_groups(self) -> list[dict[str, Any]]:
        """The rule groups as /api/v1/rules reports them, with each rule's last evaluation time."""
        groups: list[dict[str, Any]] = self._get("/api/v1/rules", {})["groups"]
        return groups

    def own_metrics(self) -> str:
        """Prometheus' own /metrics text (rule-group timings, TSDB head size ...)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as r:
            text: str = r.read().decode()
        return text

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise StackError(f"Prometheus {path} {params}: {body.get('error', body)}")
        return body["data"]

    def stop(self) -> None:
        _stop(self._proc)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class Alertmanager:
    """An Alertmanager with `config` (a dict of alertmanager.yml), clustering off."""

    workdir: Path
    config: dict[str, Any]
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        config = _write(self.workdir, "alertmanager.yml", self.config)
        args = [
            f"--config.file={config}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",
        ]
        ready = f"http://{self.address}/-/ready"
        self._proc = launch("prometheus-alertmanager", "prometheus-alertmanager", args, self.workdir, ready)
        return self

    def stop(self) -> None:
        _stop(self._proc)


def start_exporter(port: int, log: Path, *options: str) -> subprocess.Popen[bytes]:
    """The real `egs exporter --backend sim` command in a child process, once /health answers."""
    cmd = [sys.executable, "-m", "egs.cli", "exporter", "--backend", "sim", "--listen", f"127.0.0.1:{port}", *options]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/health", 30, proc)
    return proc


def _write(workdir: Path, name: str, config: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    path.write_text(yaml.safe_dump(config))
    return path


def launch(binary: str, package: str, args: list[str], workdir: Path, ready_url: str) -> subprocess.Popen[bytes]:
    """Start a Debian-packaged server with its log in `workdir`, and wait until it says it is ready."""
    log = workdir / f"{binary}.log"
    proc = subprocess.Popen([require(binary, package), *args], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_http(ready_url, 30, proc)
    except StackError as e:
        _stop(proc)
        raise StackError(f"{e}; see {log}") from e
    return proc


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
