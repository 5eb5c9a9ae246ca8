"""The GPU backend port: what the collector asks of NVML, amdsmi or the simulator.

Error tree (callers branch on the type, never on the message)::

    BackendError
    ├── DriverUnavailable   no driver / library on this machine: the exporter keeps serving its
    │                       self-metrics, fails /health and tries `open()` again next cycle
    └── GpuLost             one device stopped answering (fell off the bus, XID 79, a reset): it is
        │                   marked down and read again next cycle; the other devices carry on, and
        │                   the collector re-opens the backend with backoff to pick it up again
        └── DriverLost      the library lost its driver under a read (NVML uninitialised, a driver
                            reload or upgrade): every device is gone, the collector closes the
                            backend and re-opens it with backoff
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from exporter.gpu import GpuIdentity, Node, Reading


class BackendError(Exception):
    """Base of the errors a backend raises."""


class DriverUnavailable(BackendError):
    """The vendor library or kernel driver is missing or refuses to initialise."""


class GpuLost(BackendError):
    """A device that was enumerated no longer answers."""


class DriverLost(GpuLost):
    """The driver under the library went away (unloaded, reloaded, upgraded): no device answers."""


class GpuBackend(Protocol):
    """A source of GPU readings for one node.

    Implementations: `backends.nvml.NvmlBackend`, `backends.amdsmi.AmdSmiBackend`,
    `backends.sim.SimBackend`. The collector calls `open()`, then `read()` for every device once per
    cycle, possibly from several threads at once; after DriverUnavailable, DriverLost or a lost
    device it calls `close()` and `open()` again, backing off, until every device it has seen is back.
    """

    name: str
    """`nvml`, `amdsmi` or `sim`: exported in the exporter's info metric."""
    simulated: bool
    """True only for the simulator, so that nobody mistakes its numbers for a GPU's."""

    def open(self) -> Node:
        """Initialise the library and enumerate devices.

        Raises DriverUnavailable when there is no driver; the caller retries on a later cycle.
        """
        ...

    def read(self, gpu: GpuIdentity, fields: Collection[str]) -> Reading:
        """Read `fields` (names from `exporter.fields`) of one device.

        A field the device cannot give goes into `Reading.unsupported` (the caller retries it later,
        less often); one that errs otherwise into `Reading.failed`. Raises GpuLost when the device
        itself is gone, DriverLost when the library says its driver is gone (uninitialised, unloaded,
        version mismatch). Must be safe to call from several threads for different devices.
        """
        ...

    def close(self) -> None:
        """Release the library; `open()` may be called again afterwards."""
        ...
