"""One error type for whatever a user typed or pointed at, and the one way every
entry point of the suite reports it: a single line on stderr and exit code 2.

Every module raises a subclass that says which kind of input was wrong
(``ConfigError``, ``DataError``, ``CheckpointError``, ...); the message names the
flag, key or file. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import re
import sys
from typing import Callable

__all__ = ["UserError", "run_cli", "one_line"]


class UserError(Exception):
    """Bad input: a flag, a config key, a file or a dataset. The message names it."""


# A DataLoader worker re-raises with the worker's traceback in the message; its last
# line is "package.module.SomeError: the message".
_QUALIFIED = re.compile(r"^(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*: ")


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = text.splitlines()
    return _QUALIFIED.sub("", lines[-1]) if len(lines) > 1 else text


def run_cli(entry: Callable[[], object]) -> int:
    """Run ``entry()``; a ``UserError`` becomes ``error: <message>`` on stderr and
    exit code 2, success exit code 0."""
    try:
        entry()
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0
