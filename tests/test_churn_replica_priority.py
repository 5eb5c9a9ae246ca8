"""The churn benchmark's handover: a new controller replica starts niced and leads at the play's niceness.

On seed 306's shape (150 endpoints at x20) the new replica's start-up (imports, first reads) ran on the same
two cores as the old leader and slowed its last loops: 202s whose pods were Ready before their promise were
shown Ready only after the handover, and first promises fell to 75-95% kept. In a cluster the new pod runs on
CPU of its own, so the play starts it at the lowest priority and gives it the play's niceness once it leads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.churnkit.run import STARTING_NICE, _start, may_renice, renice
from localplay.localstack import free_port, wait_http

REPO = Path(__file__).resolve().parent.parent


def niceness(pid: int) -> set[int]:
    """The niceness of each thread of `pid`."""
    return {os.getpriority(os.PRIO_PROCESS, int(task.name)) for task in Path(f"/proc/{pid}/task").iterdir()}


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
