"""The local stack stops everything it started, whatever ends the command.

`egs demo` runs under a small wrapper that makes itself the child subreaper (Linux
`PR_SET_CHILD_SUBREAPER`): a process the demo leaves behind is re-parented to the wrapper instead
of PID 1, and the wrapper reports it. Each case signals the demo (or kills one of its servers) at
a point it has announced on stdout, then checks the exit code, the one-line reason on stderr, that
no traceback is printed, that no process is left and that the working directory is gone.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from localplay import demo
from localplay.demo_replay import load_replay
from localplay.localstack import LocalStack, Stopped
from tests.conftest import REPO

WRAPPER = r"""
import ctypes, json, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come to us, not PID 1
report = sys.argv[1]
demo = subprocess.Popen(sys.argv[2:])
with open(report + ".pid", "w") as f:
    f.write(str(demo.pid))
code = demo.wait()
left = []
for task in os.listdir("/proc/self/task"):
    for pid in open(f"/proc/self/task/{task}/children").read().split():
        left.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode())
        os.kill(int(pid), 9)
json.dump({"code": code, "left": left}, open(report, "w"))
"""

STARTING = "starting the local stack"
SCRAPING = "Prometheus on"
REPLAYING = "  demand  "
"""A line of the live summary: the replay is under way, the controller and the API are running."""
ONE_NODE = "nodes:\n  - name: sim-one\n    gpus: [{model: NVIDIA L4, vendor: nvidia, count: 1, memory_mib: 23034}]\n"
"""A one-node fleet beside the demo's cluster, so that the stack comes up fast."""


class Demo:
    """`egs demo` under the wrapper, with its stdout read line by line in the background."""

    def __init__(self, tmp_path: Path) -> None:
        self.report = tmp_path / "report.json"
        self.html = tmp_path / "report.html"
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text(ONE_NODE)
        cmd = [sys.executable, "-c", WRAPPER, str(self.report), sys.executable, "-m", "egs.cli", "demo"]
        cmd += ["--fleet", str(fleet), "--report", str(self.html), "--every", "1"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._errors: list[str] = []
        # One reader per pipe, each to its end: stderr is drained as it comes, so the demo never blocks
        # on a full pipe, and nothing else reads stdout while its reader does.
        self._readers = [
            threading.Thread(target=_read, args=(self.proc.stdout, self.lines.put), daemon=True),
            threading.Thread(target=_read, args=(self.proc.stderr, self._errors.append), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def wait_for(self, text: str) -> str:
        while True:
            line = self.lines.get(timeout=90)
            self.seen.append(line)
            if text in line:
                return line

    @property
    def pid(self) -> int:
        return int(Path(f"{self.report}.pid").read_text())

    @property
    def workdir(self) -> Path:
        first = next(line for line in self.seen if "workdir" in line)
        return Path(first.split("workdir ", 1)[1].rstrip(")\n"))

    def finish(self) -> tuple[int, str, list[str]]:
        """(exit code, stderr, processes left); every line of stdout is in `seen` afterwards."""
        self.proc.wait(timeout=60)
        for reader in self._readers:
            reader.join(10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        report = json.loads(self.report.read_text())
        return report["code"], "".join(self._errors), report["left"]


def _read(stream: IO[str] | None, sink: Callable[[str], object]) -> None:
    assert stream is not None
    with stream:
        for line in stream:
            sink(line)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.parametrize(
    ("signum", "when", "code", "says"),
    [
        (signal.SIGINT, STARTING, 0, "stopped by Ctrl-C (SIGINT)"),
        (signal.SIGINT, REPLAYING, 0, "stopped by Ctrl-C (SIGINT)"),
        (signal.SIGTERM, SCRAPING, 143, "stopped by SIGTERM (signal 15)"),
        (signal.SIGHUP, SCRAPING, 129, "stopped by SIGHUP (signal 1)"),
    ],
)
def test_a_signal_stops_every_process_and_removes_the_workdir(
    tmp_path: Path, signum: int, when: str, code: int, says: str
) -> None:
    demo = Demo(tmp_path)
    demo.wait_for(when)
    os.kill(demo.pid, signum)
    exit_code, err, left = demo.finish()
    assert (exit_code, left) == (code, [])
    assert says in err and "Traceback" not in err
    assert not demo.workdir.exists()
    # the report is written, and its path printed, once the replay has sampled something
    assert demo.html.exists() == (when == REPLAYING)
    assert (f"report written to {demo.html.resolve()}" in "".join(demo.seen)) == (when == REPLAYING)


def test_a_server_that_dies_ends_the_demo_with_its_name_and_no_traceback(tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    demo.wait_for(SCRAPING)
    prometheus = _pids_mentioning(str(demo.workdir / "prometheus"))
    assert len(prometheus) == 1
    os.kill(prometheus[0], signal.SIGKILL)
    exit_code, err, left = demo.finish()
    assert (exit_code, left) == (1, [])
    assert "stopped: prometheus exited with code -9" in err and "Traceback" not in err
    assert not demo.workdir.exists()


def test_an_exception_inside_the_stack_stops_its_processes_and_removes_its_workdir() -> None:
    with pytest.raises(RuntimeError, match="a bug"), LocalStack() as stack:
        stack.exporter("exporter", "--kubelet-socket", "none")
        exporter = stack.process("exporter")
        workdir = stack.workdir
        raise RuntimeError("a bug")
    assert exporter.poll() is not None
    assert not workdir.exists()


def test_sigterm_inside_the_stack_raises_stopped_and_is_given_back_afterwards() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as stopped, LocalStack() as stack:
        workdir = stack.workdir
        os.kill(os.getpid(), signal.SIGTERM)
        stack.wait(5)
    assert stopped.value.signum == signal.SIGTERM
    assert not workdir.exists()
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_unexpected_error_in_the_demo_stops_everything_and_says_why_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def broken(*args: object) -> str:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(demo._Demo, "_summary", broken)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(ONE_NODE)
    replay = load_replay(REPO / "examples" / "demand-day.csv", minutes=0.5, peak_rps=10)
    assert demo.run(demo.Options(replay, fleet, report=tmp_path / "report.html")) == 1
    out, err = capsys.readouterr()
    assert "stopped by an unexpected error: ZeroDivisionError: a bug" in err and "Traceback" not in err
    workdir = out.split("workdir ", 1)[1].split(")", 1)[0]
    assert not Path(workdir).exists()
    assert _pids_mentioning(workdir) == [] and _pids_mentioning(str(fleet)) == []
