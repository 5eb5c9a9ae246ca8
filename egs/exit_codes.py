"""The exit codes of every `egs` command, in a module light enough for the exporter to import."""

from __future__ import annotations

import signal

from common.errors import InputError, SetupError, TemporaryError

CHECK_FAILED_EXIT = 5
"""A check the user asked for failed (a replica unplaced under `egs plan --fail-unplaced`, a stale file under
`egs render --check`): not 1, which says the command itself has a bug."""

STDOUT_CLOSED_EXIT = 128 + int(signal.SIGPIPE)
"""Whoever read stdout closed it first (`egs plan | head`): 128 + SIGPIPE, as a shell reports a command that
signal ended; not 1, which says the command has a bug."""

EXIT_CODES = {
    0: "success",
    1: "a bug: an unexpected exception, with its traceback (please report it)",
    InputError.exit_code: "bad input: a file, field or option is wrong (the message names it); also usage errors",
    SetupError.exit_code: "the environment lacks something: a driver, a binary, a socket, a permission",
    TemporaryError.exit_code: "a temporary failure: running the same command again later may succeed",
    CHECK_FAILED_EXIT: "a check failed: egs plan --fail-unplaced left a replica unplaced, or egs render --check "
    "found a file out of date",
    STDOUT_CLOSED_EXIT: "stdout was closed before the command had written it all (egs plan | head)",
}
