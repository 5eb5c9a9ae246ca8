"""GPU backends behind the `exporter.backend.GpuBackend` port, and the `--backend` choice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from exporter.backend import DriverUnavailable, GpuBackend

if TYPE_CHECKING:  # the fleet's loader (YAML, JSON Schema) is not needed to name the backends
    from exporter.fleet import Fleet

log = logging.getLogger(__name__)

BACKENDS = ("auto", "nvml", "amdsmi", "sim")


def make_backend(name: str, fleet: Fleet, node: str | None) -> GpuBackend:
    """Build the backend `name`; `auto` opens NVML, then amdsmi, and says which it took."""

    def nvml() -> GpuBackend:
        from exporter.backends.nvml import NvmlBackend

        return NvmlBackend()

    def amd() -> GpuBackend:
        from exporter.backends.amdsmi import AmdSmiBackend

        return AmdSmiBackend()

    def sim() -> GpuBackend:
        from exporter.backends.sim import SimBackend

        return SimBackend(fleet.node(node))

    factories: dict[str, Callable[[], GpuBackend]] = {"nvml": nvml, "amdsmi": amd, "sim": sim}
    if name != "auto":
        return factories[name]()
    reasons = []
    for candidate in ("nvml", "amdsmi"):
        backend = factories[candidate]()
        try:
            backend.open()
        except DriverUnavailable as e:
            reasons.append(f"{candidate}: {e}")
            continue
        backend.close()
        log.info("backend auto: using %s", candidate)
        return backend
    log.warning(
        "backend auto: no GPU driver found (%s); using nvml and retrying (on a machine with no GPU, "
        "--backend sim serves a simulated node)",
        "; ".join(reasons),
    )
    return factories["nvml"]()
