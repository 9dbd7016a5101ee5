"""The ``espdfu`` command: the scriptable half of the product, for terminals, CI and production.

Exit codes: 0 success, 1 the operation failed, 2 the input is invalid (bad file, bad option,
ambiguous choice of boards), 130 interrupted. Foreseeable faults print a sentence and a hint on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import EspdfuError
from .common import Exit, print_error


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = make_parser(arguments[0] if arguments else None).parse_args(arguments)
    try:
        code: int = args.run(args)
        return code
    except EspdfuError as error:
        return print_error(error)
    except KeyboardInterrupt:
        print("espdfu: interrupted.", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`espdfu info ... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.FAILED


_MODULES = {
    "boards": ("list", "flash"),
    "watch": ("watch",),
    "station": ("station",),
    "monitor": ("monitor",),
    "files": ("info", "mkdfu"),
    "udev": ("udev-rule",),
    "trace": ("trace",),
    "report": ("report",),
}
"""Each module of this package that defines commands, with its commands, in --help's order."""


def make_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of ``command`` when it names one.

    Each module loads what its commands need; ``espdfu flash`` loads only its own, so that the
    DETACH goes out sooner (a few tenths of a second on a slow host).
    """
    parser = argparse.ArgumentParser(
        prog="espdfu",
        description="Inspect, make and flash ESP-IDF dfu.bin files over native USB DFU.",
    )
    parser.add_argument("--version", action="version", version=f"espdfu {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    owners = [name for name, owned in _MODULES.items() if command in owned] or list(_MODULES)
    for name in owners:
        importlib.import_module(f"{__name__}.{name}").add_commands(commands)
    return parser
