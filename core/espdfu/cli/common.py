"""What every ``espdfu`` command shares: exit codes and how errors are printed."""

from __future__ import annotations

import sys

from ..errors import EspdfuError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def print_error(error: EspdfuError) -> None:
    """A sentence, and on the next line what to do about it."""
    print(f"espdfu: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"  {error.hint}", file=sys.stderr)


def note(text: str) -> None:
    print(f"espdfu: {text}", file=sys.stderr)
