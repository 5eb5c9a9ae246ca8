"""One collection cycle's outcome, as plain data: what the exposition renders and tests inspect."""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.attribution import PodRef
from exporter.gpu import GpuIdentity, P2PLink


@dataclass(frozen=True)
class GpuSample:
    """One device in one cycle. `up` is False for a lost, hung or failing device: it then has no values."""

    gpu: GpuIdentity
    up: bool
    values: dict[str, float]
    pods: tuple[PodRef, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    hostname: str
    backend: str
    simulated: bool
    driver_up: bool
    attribution_up: bool
    """False when the kubelet's pod-resources socket could not be read this cycle."""
    gpus: tuple[GpuSample, ...] = ()
    links: tuple[P2PLink, ...] = ()
    read_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    """Cumulative read errors by (gpu key, reason): unsupported, failed, lost, timeout."""
    collections: int = 0
    collect_seconds: float = 0.0
