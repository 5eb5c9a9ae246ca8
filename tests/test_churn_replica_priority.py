"""The churn benchmark's handover: a new controller replica starts niced and leads at the play's niceness.

On seed 306's shape (150 endpoints at x20) the new replica's start-up (imports, first reads) ran on the same
two cores as the old leader and slowed its last loops: 202s whose pods were Ready before their promise were
shown Ready only after the handover, and first promises fell to 75-95% kept. In a cluster the new pod runs on
CPU of its own, so the play starts it at the lowest priority and gives it the play's niceness once it leads.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.churnkit.run import STARTING_NICE, _start, may_renice, renice
from localplay.localstack import free_port, wait_http

REPO = Path(__file__).resolve().parent.parent


def niceness(pid: int) -> set[int]:
    """The niceness of each thread of `pid` (a thread that ended since it was listed has none)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            found.add(os.getpriority(os.PRIO_PROCESS, int(task.name)))
    return found


OWN = os.getpriority(os.PRIO_PROCESS, 0)


@pytest.mark.skipif(not may_renice(OWN), reason="giving a niced process its niceness back needs root or RLIMIT_NICE")
def test_a_replica_started_niced_runs_every_thread_niced_until_given_the_plays_niceness_back(tmp_path: Path) -> None:
    port = free_port()
    command = ["exporter", "--backend", "sim", "--listen", f"127.0.0.1:{port}", "--node", "sim-h100-0",
               "--fleet", str(REPO / "examples" / "fleet-mixed.yaml"), "--kubelet-socket", "none"]  # fmt: skip
    child = _start(command, tmp_path / "exporter.log", nice=STARTING_NICE)
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", 30, proc=child)  # its server's threads started
        assert len(list(Path(f"/proc/{child.pid}/task").iterdir())) > 1
        assert niceness(child.pid) == {STARTING_NICE}
        renice(child.pid, OWN)
        assert niceness(child.pid) == {OWN}
    finally:
        child.terminate()
        child.wait(10)


STARTING_THREADS = """
import os, sys, threading, time
def start():
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
def starter():
    me, niced = threading.get_native_id(), int(sys.argv[1])
    for _ in range(20000):  # until it is reniced itself
        if os.getpriority(os.PRIO_PROCESS, me) != niced:
            break
        start()
for _ in range(3000):
    start()
started = threading.Thread(target=starter)
started.start()
print("started", flush=True)
started.join()
print("done", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not may_renice(OWN), reason="giving a niced process its niceness back needs root or RLIMIT_NICE")
def test_renice_reaches_the_threads_a_thread_starts_while_it_runs() -> None:
    """A thread starts at its starter's niceness: a replica reniced as it leads, while a thread not yet
    reniced starts another (the exporter's collector may start its device readers while the test above
    renices it: it failed once under load), must not keep that one niced. Three thousand threads, then one
    that starts more until it is reniced itself, while `renice` passes over them."""
    for _ in range(3):
        child = subprocess.Popen(["nice", "-n", str(STARTING_NICE), sys.executable, "-c", STARTING_THREADS,
                                  str(STARTING_NICE)],
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline() == "started\n"
            renice(child.pid, OWN)
            assert child.stdout.readline() == "done\n"
            assert niceness(child.pid) == {OWN}
        finally:
            child.kill()
            child.wait(10)
