"""What every ``espdfu`` command shares: exit codes, the options several commands take, how
errors are printed, stop signals."""

from __future__ import annotations

import argparse
import enum
import math
import queue
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeAlias

from ..errors import DfuFormatError, EspdfuError, InputError, printable
from ..files.dfufile import DfuImage
from ..files.staleness import Stale, stale_dfu
from ..flashing.flasher import FlashOptions
from ..flashing.stopping import STOP_SIGNALS, signal_exit_code, stopped_line
from ..units import parse_size
from ..worlds import SIM_ENV

if TYPE_CHECKING:  # read only by the commands that need it
    from ..config import Settings


class Exit(enum.IntEnum):
    """The exit codes of every command (and 128 + a signal's number when one stopped it)."""

    OK = 0
    FAILED = 1
    """The operation failed (a flash, a board lost)."""
    INVALID = 2
    """The input is invalid: a bad file, a bad option, an ambiguous choice of boards."""
    NOT_VERIFIED = 3
    """Flashed, but the board was not seen running the build flashed (``flash --verify``)."""
    INTERRUPTED = 130


# --- the kinds of values options take: checked as the command line is read --------------------
# Each refuses a value with the same words wherever it is taken, as argparse prints them:
# "espdfu flash: error: argument --wait: must be a number of seconds, 0 or more (got -5)".


def _got(text: str) -> str:
    return f"(got {text!r})" if not text.strip() or text != text.strip() else f"(got {text})"


def _seconds_at_least(text: str, zero_ok: bool) -> float:
    words = "0 or more" if zero_ok else "more than 0"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, {words} {_got(text)}")
    return value


def seconds(text: str) -> float:
    """A number of seconds, more than 0 (a time something is given)."""
    return _seconds_at_least(text, zero_ok=False)


def seconds_or_zero(text: str) -> float:
    """A number of seconds, 0 or more (0: do not wait)."""
    return _seconds_at_least(text, zero_ok=True)


def _whole(text: str) -> int:
    """A whole number written in digits; 0 for anything else (no kind below takes 0)."""
    return int(text) if text.strip().isdecimal() else 0


def port_number(text: str) -> int:
    """A TCP port to serve on."""
    value = _whole(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535 {_got(text)}")
    return value


def baud(text: str) -> int:
    """A serial port's speed."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"must be a speed in bits per second, a whole number such as 115200 {_got(text)}"
        )
    return value


def size(text: str) -> int:
    """A number of bytes, more than 0, with or without a unit (:func:`espdfu.units.parse_size`)."""
    value = parse_size(text)
    if not value:
        raise argparse.ArgumentTypeError(
            f"must be a size in bytes, more than 0, such as 4096, 0x1000, 64K or 4MB {_got(text)}"
        )
    return value


def board_name(text: str) -> str:
    """A board: its USB port path, or its label."""
    if not text.strip() or not text.isprintable():
        raise argparse.ArgumentTypeError(
            f"must be a USB port path (see `espdfu list`) or a board's label {_got(text)}"
        )
    return text.strip()


# --- the options several commands take: one definition, one help text each -------------------


STOP_HELP = (
    "Stop with Ctrl-C (or SIGTERM, SIGHUP): {stops}it exits with 128 + the signal (130 for Ctrl-C)."
)
"""The last words of the long-running commands' --help."""
STOP_FLASHES = "running flashes are aborted, the boards left ready, and "
"""What a stop does to a long-running command that flashes."""


Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""Where a module of this package adds its commands."""


def add_command(
    commands: Commands,
    name: str,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    description: str,
    *,
    runs_until_stopped: bool = False,
    flashes: bool = True,
    **more: Any,
) -> argparse.ArgumentParser:
    """The command ``name``, which ``run`` runs: ``summary`` in ``espdfu --help``,
    ``description`` in its own, with how to stop it when it ``runs_until_stopped`` and what
    that does to the flashes it runs, unless it runs none (``more``: argparse's other
    settings, an epilog)."""
    if runs_until_stopped:
        description += " " + STOP_HELP.format(stops=STOP_FLASHES if flashes else "")
    command = commands.add_parser(name, help=summary, description=description, **more)
    command.set_defaults(run=run)
    return command


def add_flag(parser: argparse._ActionsContainer, *names: str, help: str) -> None:
    """An option that is on when given (``args.<name>`` is True)."""
    parser.add_argument(*names, action="store_true", help=help)


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json``: print ``what`` instead of text."""
    add_flag(parser, "--json", help=f"print {what} instead of text")


def add_sim(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sim",
        metavar="SPEC",
        help=f"use virtual boards instead of USB, e.g. 'esp32s2*3,esp32s3' (or ${SIM_ENV})",
    )


def add_paths(parser: argparse._ActionsContainer, which: str) -> None:
    """``-p/--path PORT``, repeatable, into ``args.path``; ``which``: the boards it names."""
    parser.add_argument(
        "-p", "--path", action="append", default=[], metavar="PORT", type=board_name,
        help=f"{which} at this USB port path, or with this label (see `espdfu list`); "
        "repeatable",
    )  # fmt: skip


def configured() -> Settings:
    """The settings the configuration files around here give (the project found from here)."""
    from ..bench.build import find_project
    from ..config import load_settings

    return load_settings(find_project(Path.cwd()))


def configured_labels() -> Mapping[str, str]:
    """The boards' labels (port path → label) the configuration around here gives."""
    return configured().labels


def port_paths(names: list[str], labels: Mapping[str, str] | None = None) -> list[str]:
    """The USB port paths of the boards ``names`` names by port path or by label (``labels``:
    port path → label; None: those the configuration gives, read only when a name needs them,
    so that `espdfu flash -p 1-1.2` reads no file before its DETACH)."""
    from ..config import is_port_path

    if all(is_port_path(name) for name in names):
        return names
    if labels is None:
        labels = configured_labels()
    paths = []
    for name in names:
        labelled = [path for path, label in labels.items() if label == name]
        if is_port_path(name) or len(labelled) == 1:
            paths.append(name if is_port_path(name) else labelled[0])
            continue
        shown = printable(name)
        if labelled:
            raise InputError(
                f"{len(labelled)} boards are labelled '{shown}': {', '.join(sorted(labelled))}.",
                "Name the one you mean by its USB port path, or give each its own label.",
            )
        known = ", ".join(f"'{label}'" for label in sorted(set(labels.values())))
        raise InputError(
            f"'{shown}' is neither a USB port path (such as 1-1.2) nor a board's label"
            + (f" ({known})." if known else " (no board has a label)."),
            "`espdfu list` shows each board's port path and label.",
        )
    return paths


def add_selection(parser: argparse.ArgumentParser, which: str, every: str) -> None:
    """``-p/--path PORT`` (see :func:`add_paths`) or ``--all`` (``every``: what it takes), not
    both: argparse refuses the two together."""
    group = parser.add_mutually_exclusive_group()
    add_paths(group, which)
    add_flag(group, "--all", help=every)


def add_flash_options(
    parser: argparse.ArgumentParser,
    force: str = "flash even when the chip differs or the board would not boot it",
) -> None:
    """``--force`` (``force``: what it lets through) and ``--detach-wait``, which
    :func:`flash_options` reads."""
    add_flag(parser, "--force", help=force)
    parser.add_argument(
        "--detach-wait", type=seconds, default=FlashOptions.detach_wait_s, metavar="SECONDS",
        help="how long a board may take to come back in DFU mode (default %(default)g)",
    )  # fmt: skip


def flash_options(args: argparse.Namespace) -> FlashOptions:
    """The options of ``--force`` and ``--detach-wait``."""
    return FlashOptions(force=args.force, detach_wait_s=args.detach_wait)


# --- messages and stop signals ----------------------------------------------------------------


def say_stopped(signum: int, parts: list[str]) -> int:
    """Say what a stop signal ended in one line (:mod:`espdfu.flashing.stopping`); its exit code."""
    note(stopped_line(signum, parts))
    return signal_exit_code(signum)


def print_error(error: EspdfuError, program: str = "espdfu") -> int:
    """A sentence, and on the next line what to do about it; the exit code it calls for: 2 for
    input the user can correct (a file, an option), 1 for the rest (no libusb, a lost board)."""
    print(f"{program}: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"  {error.hint}", file=sys.stderr)
    return Exit.INVALID if isinstance(error, (DfuFormatError, InputError)) else Exit.FAILED


def note(text: str) -> None:
    print(f"espdfu: {text}", file=sys.stderr)


def stale_beside(path: Path, image: DfuImage) -> Stale | None:
    """How the dfu.bin ``image``, read from ``path``, differs from the build beside it (a
    flasher_args.json in its folder); None when it does not, or that cannot be told (a note
    says why: the file itself is what the command is about)."""
    try:
        return stale_dfu(path, image)
    except InputError as error:
        note(f"note: {path} is not compared with the build beside it: {error}")
        return None


def refuse_stale(path: Path, image: DfuImage, force: bool) -> None:
    """Refuse the dfu.bin at ``path`` when it is older than the build beside it (exit 2); with
    ``force``, say what that overrides."""
    stale = stale_beside(path, image)
    if stale is not None and not force:
        raise InputError(
            f"{stale.said()}, so it is not what the build beside it flashes.",
            f"{remake_hint(path)}, or flash it as it is with --force.",
        )
    if stale is not None:
        note(f"warning: --force flashes it although {stale.said()}.")


def remake_hint(path: Path) -> str:
    """What makes a dfu.bin again from the build it lies in."""
    return f"Run `idf.py dfu` (or `espdfu mkdfu --build-dir {path.parent}`) to make it again"


class StopSignals:
    """For a ``with`` block: the stop signals call ``on_stop`` instead of killing the process.

    Only the first signal counts: a second Ctrl-C while running work is being stopped cleanly
    must not break that stop off (it is bounded). The previous handlers come back on exit.
    ``on_stop`` runs on a thread of its own, never inside the handler: a handler runs between
    two bytecodes of the main thread, which may hold the very lock ``on_stop`` takes (an
    ``Event.set()`` there deadlocked ``espdfu station`` once when the signal came as its main
    thread entered ``Event.wait()``). The handler only puts the signal in a ``SimpleQueue``,
    whose ``put`` is reentrant.
    """

    def __init__(self, on_stop: Callable[[], None]) -> None:
        self.on_stop = on_stop
        self.signum: int | None = None
        self._previous: dict[signal.Signals, object] = {}
        self._signals: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._caller = threading.Thread(target=self._call, name="espdfu-stop", daemon=True)

    def __enter__(self) -> StopSignals:
        self._caller.start()
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]  # what signal() returned
        self._signals.put(None)
        self._caller.join()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            self._signals.put(signum)

    def _call(self) -> None:
        if self._signals.get() is not None:
            self.on_stop()
