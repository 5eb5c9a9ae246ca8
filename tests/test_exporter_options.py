"""`egs exporter`'s options as a hostile user writes them: timing values of every kind and addresses
it cannot serve on. Each is refused in one line, exit 2, before anything starts.

The parsers are property-tested over every float hypothesis draws (finite, nan, inf, negative,
subnormal); the bind failures run the real command in a child process.
"""

from __future__ import annotations

import argparse
import math
import socket
import subprocess
import sys

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from egs.exporter_cli import seconds
from exporter.server import ListenError, parse_listen
from exporter.settings import INTERVAL_BOUNDS_S, READ_TIMEOUT_BOUNDS_S, CollectorSettings
from localplay.localstack import wait_http

EGS = [sys.executable, "-m", "egs.cli"]
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([math.nan, math.inf, -math.inf, -0.0])


def _usable(value: float, bounds: tuple[float, float]) -> bool:
    return math.isfinite(value) and bounds[0] <= value <= bounds[1]


@pytest.mark.parametrize("bounds", [INTERVAL_BOUNDS_S, READ_TIMEOUT_BOUNDS_S])
@given(value=ANY_FLOAT)
def test_a_seconds_option_takes_finite_values_within_bounds_only(bounds: tuple[float, float], value: float) -> None:
    parse = seconds(bounds)
    for text in (repr(value), str(value), f"{value:.17e}" if math.isfinite(value) else str(value).upper()):
        if _usable(value, bounds):
            assert parse(text) == value
        else:
            with pytest.raises(argparse.ArgumentTypeError):
                parse(text)


@given(text=st.text(max_size=20))
def test_a_seconds_option_refuses_text_that_is_not_a_number_with_a_sentence(text: str) -> None:
    parse = seconds(INTERVAL_BOUNDS_S)
    try:
        value = float(text)
    except ValueError:
        with pytest.raises(argparse.ArgumentTypeError, match="must be a number of seconds"):
            parse(text)
        return
    if _usable(value, INTERVAL_BOUNDS_S):
        assert parse(text) == value


@given(interval=ANY_FLOAT, timeout=ANY_FLOAT)
def test_collector_settings_refuse_what_the_options_refuse(interval: float, timeout: float) -> None:
    if _usable(interval, INTERVAL_BOUNDS_S) and _usable(timeout, READ_TIMEOUT_BOUNDS_S):
        settings = CollectorSettings(interval_s=interval, read_timeout_s=timeout)
        assert math.isfinite(settings.stale_after_s) and settings.stale_after_s > interval
    else:
        with pytest.raises(ValueError, match="seconds"):
            CollectorSettings(interval_s=interval, read_timeout_s=timeout)


@pytest.mark.parametrize("option", ["--collect-interval", "--read-timeout"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "1e308", "soon"])
def test_a_bad_timing_option_is_one_line_and_exit_2(option: str, value: str) -> None:
    result = subprocess.run(
        [*EGS, "exporter", "--backend", "sim", f"{option}={value}"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"argument {option}: must be" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9400", ("127.0.0.1", 9400)),
        ("[::1]:9400", ("::1", 9400)),
        (":9400", ("0.0.0.0", 9400)),
        ("[::]:1", ("::", 1)),
        ("node-a.example:65535", ("node-a.example", 65535)),
    ],
)
def test_listen_addresses_parse(text: str, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["nowhere", "host:", "host:http", "::1:9400", "a:0", "a:99999", "a:-1"])
def test_listen_addresses_that_do_not_parse_are_refused(text: str) -> None:
    with pytest.raises(ListenError, match="--listen"):
        parse_listen(text)


def _in_use() -> socket.socket:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    return held


def _bind_failure(listen: str) -> subprocess.CompletedProcess[str]:
    cmd = [*EGS, "exporter", "--backend", "sim", "--kubelet-socket", "none", "--listen", listen]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("127.0.0.1:99999", "port must be 1-65535"),
        ("192.0.2.1:9400", "not one of this host's"),  # TEST-NET-1: on no host's interfaces
        ("no-such-host.invalid:9400", "cannot resolve host 'no-such-host.invalid'"),
        ("nowhere", "HOST:PORT"),
    ],
)
def test_an_address_the_exporter_cannot_serve_on_is_one_line_and_exit_2(listen: str, says: str) -> None:
    result = _bind_failure(listen)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("egs: error: ")
    assert says in result.stderr


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    with _in_use() as held:
        port = held.getsockname()[1]
        result = _bind_failure(f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stderr == f"egs: error: --listen: cannot serve on 127.0.0.1:{port}: Address already in use\n"


def _free_ipv6_port() -> int | None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            return int(s.getsockname()[1])
    except OSError:
        return None


def test_the_exporter_serves_on_an_ipv6_address() -> None:
    port = _free_ipv6_port()
    if port is None:
        pytest.skip("no IPv6 loopback on this host")
    cmd = [*EGS, "exporter", "--backend", "sim", "--kubelet-socket", "none", "--listen", f"[::1]:{port}"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://[::1]:{port}/health", 30, proc)
        metrics = requests.get(f"http://[::1]:{port}/metrics", timeout=10).text
        assert "DCGM_FI_DEV_FB_USED{" in metrics
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert f"serving on http://[::1]:{port}/metrics" in err.decode()
