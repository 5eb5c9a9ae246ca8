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
from pathlib import Path

import pytest

from egs import demo
from egs.localstack import LocalStack, Stopped

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

STARTING = "starting a simulated node's exporter"
SCRAPING = "waiting for the first scrape"


class Demo:
    """`egs demo` under the wrapper, with its stdout read line by line in the background."""

    def __init__(self, tmp_path: Path) -> None:
        self.report = tmp_path / "report.json"
        cmd = [sys.executable, "-c", WRAPPER, str(self.report), sys.executable, "-m", "egs.cli", "demo"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str) -> str:
        while True:
            line = self.lines.get(timeout=60)
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
        _, err = self.proc.communicate(timeout=60)
        report = json.loads(self.report.read_text())
        return report["code"], err, report["left"]


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
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(prom: object) -> str:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(demo, "table", broken)
    assert demo.run(None, None, rounds=1, every_s=1.0) == 1
    out, err = capsys.readouterr()
    assert "stopped by an unexpected error: ZeroDivisionError: a bug" in err and "Traceback" not in err
    workdir = out.split("workdir ", 1)[1].split(")", 1)[0]
    exporter = out.split("exporter on http://", 1)[1].split("/", 1)[0]
    assert not Path(workdir).exists()
    assert _pids_mentioning(workdir) == [] and _pids_mentioning(exporter) == []
