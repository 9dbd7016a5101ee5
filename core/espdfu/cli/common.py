"""What every ``espdfu`` command shares: exit codes, the options several commands take, how
errors are printed, stop signals."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from types import FrameType

from ..errors import EspdfuError
from ..flasher import FlashOptions
from ..stopping import STOP_SIGNALS, signal_exit_code, stopped_line
from ..transport import SIM_ENV

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


# --- the options several commands take: one definition, one help text each -------------------


STOP_HELP = (
    "Stop with Ctrl-C (or SIGTERM, SIGHUP): running flashes are aborted, the boards left "
    "ready, and it exits with 128 + the signal (130 for Ctrl-C)."
)
"""The last words of the long-running commands' --help."""


def add_sim(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sim",
        metavar="SPEC",
        help=f"use virtual boards instead of USB, e.g. 'esp32s2*3,esp32s3' (or ${SIM_ENV})",
    )


def add_paths(parser: argparse.ArgumentParser, which: str) -> None:
    """``-p/--path PORT``, repeatable, into ``args.path``; ``which``: the boards it names."""
    parser.add_argument(
        "-p", "--path", action="append", default=[], metavar="PORT",
        help=f"{which} at this USB port path (see `espdfu list`); repeatable",
    )  # fmt: skip


def add_flash_options(parser: argparse.ArgumentParser) -> None:
    """``--force`` and ``--detach-wait``, which :func:`flash_options` reads."""
    parser.add_argument("--force", action="store_true", help="flash even when the chip differs")
    parser.add_argument(
        "--detach-wait", type=float, default=FlashOptions.detach_wait_s, metavar="SECONDS",
        help="how long a board may take to come back in DFU mode (default %(default)g)",
    )  # fmt: skip


def flash_options(args: argparse.Namespace) -> FlashOptions:
    """The options of ``--force`` and ``--detach-wait``."""
    return FlashOptions(force=args.force, detach_wait_s=args.detach_wait)


# --- messages and stop signals ----------------------------------------------------------------


def say_stopped(signum: int, parts: list[str]) -> int:
    """Say what a stop signal ended, in one line (see :mod:`espdfu.stopping`); its exit code."""
    note(stopped_line(signum, parts))
    return signal_exit_code(signum)


def print_error(error: EspdfuError) -> None:
    """A sentence, and on the next line what to do about it."""
    print(f"espdfu: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"  {error.hint}", file=sys.stderr)


def note(text: str) -> None:
    print(f"espdfu: {text}", file=sys.stderr)


class StopSignals:
    """For a ``with`` block: the stop signals call ``on_stop`` instead of killing the process.

    Only the first signal counts: a second Ctrl-C while running work is being stopped cleanly
    must not break that stop off (it is bounded). The previous handlers come back on exit.
    """

    def __init__(self, on_stop: Callable[[], None]) -> None:
        self.on_stop = on_stop
        self.signum: int | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]  # what signal() returned

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            self.on_stop()
