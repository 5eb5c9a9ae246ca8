"""The project's error types: what went wrong, typed by what the caller does next.

Every component raises these for failures it expects (bad input, a missing driver, a server that
is not answering yet); the composition root (`egs/cli.py`) catches them and nothing else, prints one
line, and exits with the class's code. Any other exception is a bug and shows its traceback. Adapters
translate their library's exceptions into these at the edge, most specific first, chained with
`raise ... from e`, so that nothing above an adapter sees a `pynvml.NVMLError` or an `OSError`::

    EgsError               expected, reported in one line, never a bug
     +-- InputError        a file, field or option is wrong: fix it and run again       exit 2
     +-- SetupError        the environment lacks something (a driver, a binary, a       exit 3
     |                     socket, a permission, a free port): fix the host, not the input
     +-- TemporaryError    worth retrying unchanged (a server not ready, a conflict);    exit 4
          |                `retry_after_s` says when
          +-- StaleVersionError  a write of a version changed since: read it again first

Component errors subclass one of these (`exporter.fleet.FleetError` and the scheduler's
`CatalogError`, `RegistryError`, ... are InputErrors). Branch on the type, never on the message:
`InputError.source` names the file or option the input came from, set by whoever knows it
(`read_yaml` does, and `naming(source)` fills it in for the code inside).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar


class EgsError(Exception):
    """A failure EGS expects and reports in one line."""

    exit_code: ClassVar[int] = 2


class InputError(EgsError):
    """Bad input: the message names the field; `source` the file or option it came from."""

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, source: str | Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = None if source is None else str(source)

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class SetupError(EgsError):
    """The environment error: something the host must provide is missing or refused."""

    exit_code: ClassVar[int] = 3


class TemporaryError(EgsError):
    """Worth retrying unchanged after `retry_after_s` seconds."""

    exit_code: ClassVar[int] = 4

    def __init__(self, message: str, retry_after_s: float = 10.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StaleVersionError(TemporaryError):
    """A write refused because the object was written since the version it was based on (optimistic
    concurrency), or, for a create, because it exists already (the Kubernetes adapter's `ConflictError`:
    both are a 409): a core (`autoscaler.leader`) reads it again to know who wrote it, without knowing the
    adapter's types."""


@contextmanager
def naming(source: str | Path) -> Iterator[None]:
    """Fill in `source` on an InputError raised inside that does not name where it came from yet."""
    try:
        yield
    except InputError as e:
        if e.source is None:
            e.source = str(source)
        raise
