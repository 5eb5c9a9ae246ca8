"""Write `egs plan --manifests DIR` all at once: the new plan's files, and nothing of the previous one.

The files are written into a fresh directory beside DIR, then swapped in by renames, so that DIR
holds either the previous plan or the new one, whole, never a mix or a part: a write that fails
(a full disk, a name the filesystem refuses) leaves DIR as it was and no temporary directory behind.
Files of an earlier plan that the new one no longer has are gone with it.

DIR is replaced only when it is new, empty, or was written by `egs plan` (it holds MARKER), so that
pointing `--manifests` at a directory of other files cannot delete them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from common.errors import InputError, SetupError

MARKER = ".egs-plan"
"""A file in DIR saying `egs plan` wrote it and may replace it."""


def replace_directory(target: Path, files: Mapping[str, str]) -> int:
    """Make `target` hold exactly `files` (name -> text) and MARKER; returns how many files of the
    previous contents are gone."""
    previous = _replaceable(target)
    staging: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
        for name, text in files.items():
            (staging / name).write_text(text)
        (staging / MARKER).write_text("Written by `egs plan --manifests`; the next plan replaces this directory.\n")
        _swap(staging, target)
    except OSError as e:
        raise SetupError(f"--manifests {target}: nothing written: {e.strerror or e} ({e.filename})") from e
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return len(previous - set(files))


def _replaceable(target: Path) -> set[str]:
    """The file names `target` holds now; refuses a target that is not a directory EGS may replace."""
    if not target.exists():
        return set()
    if not target.is_dir():
        raise InputError(f"{target} exists and is not a directory", source="--manifests")
    names = {p.name for p in target.iterdir()}
    if names and MARKER not in names:
        raise InputError(
            f"{target} holds files egs plan did not write ({MARKER} is missing): give a new or empty directory",
            source="--manifests",
        )
    return names - {MARKER}


def _swap(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; a previous `target` is renamed aside first and removed after."""
    if not target.exists():
        os.rename(staging, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, aside / target.name)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(aside / target.name, target)  # put the previous plan back
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
