"""The exit codes of every `egs` command, in a module light enough for the exporter to import."""

from __future__ import annotations

from common.errors import InputError, SetupError, TemporaryError

UNPLACED_EXIT = 5
"""The exit code of `egs plan --fail-unplaced` when some replica could not be placed."""

EXIT_CODES = {
    0: "success",
    1: "a bug: an unexpected exception, with its traceback (please report it)",
    InputError.exit_code: "bad input: a file, field or option is wrong (the message names it); also usage errors",
    SetupError.exit_code: "the environment lacks something: a driver, a binary, a socket, a permission",
    TemporaryError.exit_code: "a temporary failure: running the same command again later may succeed",
    UNPLACED_EXIT: "egs plan --fail-unplaced: some replica could not be placed",
}
