"""`--backend auto` on a machine with no GPU driver: it keeps retrying NVML and says how to try EGS without a GPU."""

from __future__ import annotations

import logging

import pytest

from exporter.backend import DriverUnavailable
from exporter.backends import make_backend
from exporter.backends.amdsmi import AmdSmiBackend
from exporter.backends.nvml import NvmlBackend


def test_auto_without_a_driver_retries_nvml_and_names_the_simulated_backend(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_driver(self: object) -> None:
        raise DriverUnavailable("no library")

    monkeypatch.setattr(NvmlBackend, "open", no_driver)
    monkeypatch.setattr(AmdSmiBackend, "open", no_driver)
    with caplog.at_level(logging.WARNING, logger="exporter.backends"):
        backend = make_backend("auto", fleet=None, node=None)  # type: ignore[arg-type]  # auto never reads the fleet
    assert isinstance(backend, NvmlBackend)
    [warning] = caplog.messages
    assert "nvml: no library" in warning and "amdsmi: no library" in warning
    assert "--backend sim" in warning
