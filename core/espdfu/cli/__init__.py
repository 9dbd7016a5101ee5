"""The ``espdfu`` command: the scriptable half of the product, for terminals, CI and production.

Exit codes: 0 success, 1 the operation failed, 2 the input is invalid (bad file, bad option,
ambiguous choice of boards), 130 interrupted. Foreseeable faults print a sentence and a hint on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import DfuFormatError, EspdfuError, InputError
from . import boards, files, station, udev, watch
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, print_error


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = make_parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except (DfuFormatError, InputError) as error:
        print_error(error)
        return EXIT_INVALID
    except EspdfuError as error:
        print_error(error)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("espdfu: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`espdfu info ... | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="espdfu",
        description="Inspect, make and flash ESP-IDF dfu.bin files over native USB DFU.",
    )
    parser.add_argument("--version", action="version", version=f"espdfu {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    boards.add_commands(commands)
    watch.add_commands(commands)
    station.add_commands(commands)
    files.add_commands(commands)
    udev.add_commands(commands)
    return parser
