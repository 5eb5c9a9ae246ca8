"""The local stack: real Prometheus, Alertmanager and exporter processes on 127.0.0.1.

Used by `egs demo`, the integration tests and the benchmarks, so that all run the same servers the
same way. `LocalStack` owns what one run starts: every process is stopped and the working directory
removed however the run ends (it returns, raises, or gets SIGINT, SIGTERM or SIGHUP, which it turns
into `Stopped`), and `check()` / `wait()` raise StackError, naming the process and the end of its
log, when one of them has died.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TypeVar

import yaml

from common.errors import SetupError


class StackError(SetupError):
    """A local server is missing, did not come up, or died; the message says which and why."""


class Stopped(BaseException):
    """A signal asked the stack to stop. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Turned into `Stopped` inside a LocalStack; SIGINT stays Python's KeyboardInterrupt."""

_held: list[int] | None = None
"""Signals that landed while a child was being started, or None when none is being started."""


@contextlib.contextmanager
def holding_signals() -> Iterator[None]:
    """Hold a LocalStack's signals while a child is started and recorded, then raise the first one.

    A Ctrl-C that lands inside `Popen`, after the fork but before the caller has the process,
    would otherwise leave a child that nobody stops. Outside a LocalStack (whose handlers do the
    holding) or off the main thread it changes nothing.
    """
    global _held
    if _held is not None or not threading_is_main():
        yield
        return
    _held = []
    try:
        yield
    finally:
        held, _held = _held, None
        if held:
            raise _signal_exception(held[0])


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _held is not None:
        _held.append(signum)
        return
    raise _signal_exception(signum)


def _signal_exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise StackError(f"{binary} not found: install Debian's {package} package (make test/demo do it)")
    return path


def answers(url: str) -> bool:
    """Whether `url` answers 200 now (a readiness probe)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"process for {url} exited with {proc.returncode}")
        if answers(url):
            return
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
    proc: subprocess.Popen[bytes] | None = None

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
        launch("prometheus", "prometheus", args, self.workdir, f"{self.url}/-/ready", self._started)
        return self

    def backfill(self, lines: Iterable[str]) -> Prometheus:
        """Write OpenMetrics `lines` (with their `# TYPE` lines and timestamps, no `# EOF`) as TSDB blocks
        into the data directory, before `start`: history a fresh server would not have (promtool's backfill)."""
        source = self.workdir / "backfill.om"
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        with source.open("w") as out:
            out.writelines(f"{line}\n" for line in lines)
            out.write("# EOF\n")
        run = [require("promtool", "prometheus"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)]
        subprocess.run(run, check=True, capture_output=True)
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
            _check_alive("prometheus", self.proc, self.workdir / "prometheus.log")
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
        except OSError as e:
            # a connection reset can arrive before the dying process is gone: give it a second
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.proc is not None:
                    self.proc.wait(1)
            _check_alive("prometheus", self.proc, self.workdir / "prometheus.log")
            raise StackError(f"Prometheus at {self.url} did not answer {path}: {e}") from e
        if body.get("status") != "success":
            raise StackError(f"Prometheus {path} {params}: {body.get('error', body)}")
        return body["data"]

    def stop(self) -> None:
        _stop(self.proc)

    def _started(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

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
    proc: subprocess.Popen[bytes] | None = None

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
        launch("prometheus-alertmanager", "prometheus-alertmanager", args, self.workdir, ready, self._started)
        return self

    def stop(self) -> None:
        _stop(self.proc)

    def _started(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc


def egs_command(*args: str) -> list[str]:
    """The real `egs ARGS` command, run by this Python."""
    return [sys.executable, "-m", "egs.cli", *args]


def exporter_command(port: int, *options: str) -> list[str]:
    """The real `egs exporter --backend sim` command, serving on 127.0.0.1:`port`."""
    return egs_command("exporter", "--backend", "sim", "--listen", f"127.0.0.1:{port}", *options)


_Server = TypeVar("_Server", Prometheus, Alertmanager)


class LocalStack:
    """The processes and working directory of one run; all stopped and removed however it ends.

    Use as a context manager. Inside it (in the main thread) SIGTERM and SIGHUP raise `Stopped`;
    on the way out, whatever the way, every process it started is terminated (killed after 10 s),
    the signals it took are given back, and the working directory is removed. The stopping itself is
    not interrupted: further stop signals are ignored until it is done.
    """

    def __init__(self, prefix: str = "egs-") -> None:
        self._prefix = prefix
        self.workdir = Path()
        self._procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._servers: list[Prometheus | Alertmanager] = []
        self._taken: dict[int, Any] = {}

    def __enter__(self) -> LocalStack:
        self.workdir = Path(tempfile.mkdtemp(prefix=self._prefix))
        if threading_is_main():
            for signum in (*STOP_SIGNALS, signal.SIGINT):
                self._taken[signum] = signal.signal(signum, _on_signal)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        for signum in self._taken:
            signal.signal(signum, signal.SIG_IGN)
        try:
            for server in reversed(self._servers):
                server.stop()
            for _, proc, _ in reversed(self._procs):
                _stop(proc)
            shutil.rmtree(self.workdir, ignore_errors=True)
        finally:
            for signum, handler in self._taken.items():
                signal.signal(signum, handler)

    def exporter(self, name: str, *options: str) -> str:
        """Start `egs exporter --backend sim OPTIONS` and wait for /health; returns its host:port."""
        return self.exporters({name: options})[name]

    def exporters(self, options: Mapping[str, Sequence[str]]) -> dict[str, str]:
        """Start one `egs exporter --backend sim` per name with its options, all before waiting for any
        (they import in parallel); returns each one's host:port once all answer /health."""
        ports = {name: free_port() for name in options}
        procs = {name: self.command(name, exporter_command(ports[name], *opts)) for name, opts in options.items()}
        for name, proc in procs.items():
            wait_http(f"http://127.0.0.1:{ports[name]}/health", 30, proc)
        return {name: f"127.0.0.1:{port}" for name, port in ports.items()}

    def command(self, name: str, command: list[str], ready_url: str = "") -> subprocess.Popen[bytes]:
        """Start `command` (its output in `<name>.log` in the workdir), stopped with the stack; with
        `ready_url`, wait until that answers 200 (StackError, with the log's end, if it does not)."""
        log = self.workdir / f"{name}.log"
        with holding_signals(), log.open("wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
            self._procs.append((name, proc, log))  # before the wait, so that an interrupted wait stops it too
        if ready_url:
            try:
                wait_http(ready_url, 30, proc)
            except StackError as e:
                raise StackError(f"{name}: {e}{_tail(log)}") from e
        return proc

    def process(self, name: str) -> subprocess.Popen[bytes]:
        """The process started as `name` (an exporter's, or a launched binary's)."""
        return next(proc for n, proc, _ in self._procs if n == name)

    def prometheus(self, targets: list[str], **options: Any) -> Prometheus:
        """Start a Prometheus (fields as `Prometheus`) in its own directory of the workdir."""
        return self._start(Prometheus(self.workdir / "prometheus", targets, **options))

    def alertmanager(self, config: dict[str, Any]) -> Alertmanager:
        return self._start(Alertmanager(self.workdir / "alertmanager", config))

    def launch(self, binary: str, package: str, args: list[str], ready_url: str) -> subprocess.Popen[bytes]:
        """Start a Debian-packaged server (see `launch`), stopped with the stack."""
        log = self.workdir / f"{binary}.log"
        return launch(binary, package, args, self.workdir, ready_url, lambda p: self._procs.append((binary, p, log)))

    def check(self) -> None:
        """Raise StackError, naming the process and the end of its log, if one has exited."""
        for name, proc, log in self._procs:
            _check_alive(name, proc, log)
        for server in self._servers:
            binary = "prometheus" if isinstance(server, Prometheus) else "prometheus-alertmanager"
            _check_alive(binary, server.proc, server.workdir / f"{binary}.log")

    def wait(self, seconds: float) -> None:
        """Sleep, checking every 0.2 s that every process is still running."""
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.2, left))

    def _start(self, server: _Server) -> _Server:
        self._servers.append(server)
        server.start()
        return server


def threading_is_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _check_alive(name: str, proc: subprocess.Popen[bytes] | None, log: Path) -> None:
    if proc is None or proc.poll() is None:
        return
    raise StackError(f"{name} exited with code {proc.returncode}{_tail(log)}")


def _tail(log: Path, lines: int = 3) -> str:
    """The last lines of a log, for a message: the log itself goes with the workdir."""
    try:
        last = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return "; its log ends: " + " | ".join(line.strip() for line in last) if last else ""


def _write(workdir: Path, name: str, config: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    path.write_text(yaml.safe_dump(config))
    return path


def launch(
    binary: str,
    package: str,
    args: list[str],
    workdir: Path,
    ready_url: str,
    started: Callable[[subprocess.Popen[bytes]], None] = lambda proc: None,
) -> subprocess.Popen[bytes]:
    """Start a Debian-packaged server with its log in `workdir`, and wait until it says it is ready.

    `started` records the process as soon as it exists (with signals held, see `holding_signals`).
    If it does not come up, or the wait is interrupted (Ctrl-C, `Stopped`), it is stopped again."""
    log = workdir / f"{binary}.log"
    command = [require(binary, package), *args]
    with holding_signals(), log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        started(proc)
    try:
        wait_http(ready_url, 30, proc)
    except StackError as e:
        _stop(proc)
        raise StackError(f"{e}{_tail(log)}") from e
    except BaseException:
        _stop(proc)
        raise
    return proc


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
