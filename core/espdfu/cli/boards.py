"""``espdfu list`` and ``espdfu flash``: the boards on the buses, and putting a dfu.bin on them."""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
import threading
import time
from collections.abc import Container, Mapping
from dataclasses import replace
from pathlib import Path

from ..bench.settings import WorkbenchSettings
from ..errors import EspdfuError, InputError
from ..files import dfufile
from ..files.contents import REBUILD
from ..files.dfufile import DfuImage
from ..flashing.flasher import FlashResult, flash_many, forced, incompatibility, reset_step
from ..flashing.stopping import flash_endings
from ..usb.boards import Board, read_state, scan
from ..usb.trace import TraceFile
from ..usb.transport import Usb
from ..worlds import open_usb
from .bridging import flash_settings, into_apps, into_download_modes
from .changes import Plan, add_changes, plan, say_unchanged
from .common import (
    Commands,
    Exit,
    StopSignals,
    add_command,
    add_flag,
    add_flash_options,
    add_json,
    add_selection,
    add_sim,
    configured_labels,
    flash_options,
    note,
    port_paths,
    refuse_stale,
    say_stopped,
    seconds_or_zero,
)
from .live import LiveProgress
from .trace import TRACE_HELP, traced_to
from .verifying import add_verify, verify

_WAIT_POLL_S = 0.2


LIST_DESCRIPTION = (
    "Show every Espressif device and every DFU device: port path, chip, mode, DFU state, "
    "transfer size, and what to do when one cannot be flashed."
)

FLASH_DESCRIPTION = (
    "Flash FILE to the boards in ROM download mode, DFU mode, or running an app with a DFU "
    "runtime. With one compatible board and no selection it is flashed; with several, say "
    "which (--path, repeatable) or --all. Exit 0 when every selected board was flashed, 1 "
    "when any failed, 2 for bad input, 3 when --verify did not see a board run the build "
    "flashed, 128 + the signal when stopped by one (130 for Ctrl-C): running flashes are "
    "aborted, the boards left ready."
)


def add_commands(commands: Commands) -> None:
    listing = add_command(commands, "list", _list, "show the connected boards", LIST_DESCRIPTION)
    add_sim(listing)
    add_json(listing, "a JSON list")
    add_flag(listing, "-v", "--verbose", help="also say which USB library is used")
    summary = "flash a dfu.bin to one, several or all boards"
    flash = add_command(commands, "flash", _flash, summary, FLASH_DESCRIPTION)
    add_sim(flash)
    flash.add_argument("file", type=Path, metavar="FILE", help="the dfu.bin to flash")
    add_selection(flash, "the board", "every compatible board, in parallel")
    add_flash_options(
        flash,
        force="flash even when the chip differs, the board would not boot FILE, or FILE is "
        "older than its build",
    )
    flash.add_argument(
        "--wait", type=seconds_or_zero, default=0.0, metavar="SECONDS",
        help="wait up to SECONDS for the boards to appear",
    )  # fmt: skip
    add_json(flash, "one JSON result per board")
    flash.add_argument("--trace", type=Path, metavar="FILE", help=TRACE_HELP)
    add_verify(flash)
    add_changes(flash)


# --- list -------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    usb_world = open_usb(args.sim)
    boards = scan(usb_world)
    states = {board.path: read_state(usb_world, board) for board in boards}
    labels = configured_labels()
    if args.json:
        print(json.dumps([_listed(board, states, labels) for board in boards]))
        return Exit.OK
    if args.verbose:
        print(f"USB: {usb_world.description}")
    if not boards:
        print("No boards found.")
        print("Hold BOOT, tap RESET and release BOOT to put a board in download mode.")
        return Exit.OK
    rows = [("PORT", "LABEL", "CHIP", "MODE", "STATE", "BLOCK")]
    for board in boards:
        block = str(board.functional.transfer_size) if board.functional else "-"
        label = labels.get(board.path) or "-"
        row = (board.path, label, board.chip_name, board.mode.value, states[board.path], block)
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    width = min(shutil.get_terminal_size().columns, 100) - 1
    for board in boards:
        if board.hint:
            text = f"{board.path}: {board.hint}"
            print(textwrap.fill(text, width, subsequent_indent="  ", break_on_hyphens=False))
    return Exit.OK


def _listed(board: Board, states: dict[str, str], labels: Mapping[str, str]) -> dict[str, object]:
    return {**board.as_dict(), "label": labels.get(board.path), "state": states[board.path]}


# --- flash ------------------------------------------------------------------------------------


def _flash(args: argparse.Namespace) -> int:
    image = dfufile.load(args.file)
    refuse_stale(args.file, image, args.force)
    overrun = dfufile.overrun_warning(image.entries, image.flash_size)
    if overrun:
        note(f"warning: {overrun}")
    wont_boot = image.contents.problems
    if wont_boot and not args.force:
        raise InputError(f"{args.file}: {wont_boot[0]}", f"{REBUILD} --force flashes it anyway.")
    for problem in wont_boot:
        note(f"warning: --force flashes {args.file} anyway: {problem}")
    settings = flash_settings()  # the bridges and consoles: read before any USB traffic
    checks = settings if args.verify is not None else None
    planned = plan(args, image, checked=checks is not None)
    if planned.delta is not None and planned.delta.unchanged:
        say_unchanged(planned, args.diff_with, args.json)
        return Exit.OK
    args.path = port_paths(args.path, settings.labels)
    usb_world = open_usb(args.sim)
    with traced_to(args.trace) as trace:  # one file for both rounds
        rounds = _Rounds(args, settings, usb_world, trace)
        results, verdicts = rounds.flash(planned, chosen=None)
        wrong = [path for path, (ok, _) in verdicts.items() if not ok]
        sent = dict.fromkeys((result.path for result in results), planned)
        if planned.delta is not None and wrong and rounds.stop is None:
            for path in wrong:  # the base was not what the board held, or the changes did not take
                note(
                    f"{path}: after the changes only, {verdicts[path][1]}: flashing the whole file."
                )
            again, second = rounds.flash(Plan(image), chosen=wrong)
            results = [next((r for r in again if r.path == old.path), old) for old in results]
            verdicts.update(second)
            sent.update(dict.fromkeys(wrong, Plan(image)))
    if args.json:
        for result in results:
            seen = verdicts.get(result.path)
            checked = {} if seen is None else {"verified": seen[0], "verdict": seen[1]}
            print(json.dumps({**result.as_dict(), "sent": sent[result.path].as_dict(), **checked}))
    if rounds.stop is not None:
        return say_stopped(rounds.stop, flash_endings({r.path: r for r in results}))
    if not all(result.ok for result in results):
        return Exit.FAILED
    return Exit.OK if all(ok for ok, _ in verdicts.values()) else Exit.NOT_VERIFIED


class _Rounds:
    """``espdfu flash``'s flashes: the boards chosen and flashed, reset into their apps or
    verified; again for those the changes only did not give the build (``chosen``)."""

    def __init__(
        self,
        args: argparse.Namespace,
        settings: WorkbenchSettings,
        usb_world: Usb,
        trace: TraceFile | None,
    ) -> None:
        self.args = args
        self.settings = settings
        self.usb = usb_world
        self.trace = trace
        self.stop: int | None = None
        """The stop signal that came, if one did."""

    def flash(
        self, planned: Plan, chosen: list[str] | None
    ) -> tuple[list[FlashResult], dict[str, tuple[bool, str]]]:
        """Flash ``planned`` to the boards ``chosen`` (None: as the arguments select them);
        their results, and their verdicts (with --verify)."""
        args, settings, usb_world = self.args, self.settings, self.usb
        checks = settings if args.verify is not None else None
        cancel = threading.Event()
        # Ctrl-C, SIGTERM and SIGHUP abort every download cleanly (each board is left in
        # dfuIDLE, ready to flash again) and the results are still reported, board by board.
        with StopSignals(cancel.set) as stop:
            options = replace(flash_options(args), trace=self.trace)
            wanted = args.path if chosen is None else chosen
            into_download_modes(settings, wanted, usb_world, options.detach_wait_s, cancel)
            paths = _select(args, usb_world, planned.image, stop) if chosen is None else chosen
            if planned.delta is not None and paths:
                note(f"{planned.delta.words(f'{args.diff_with}')}.")
            live = None if args.json or not paths else LiveProgress(paths)
            results = flash_many(
                usb_world,
                paths,
                planned.image,
                options=options,
                progress=live.update if live else None,
                cancel=cancel,
                on_result=live.finish if live else None,
            )
        self.stop = stop.signum
        reset: Container[str] = ()  # the boards that need no RESET line
        if stop.signum is not None:
            checks = None  # stopped: nothing more is done with the boards
        elif checks is None:
            reset = into_apps(settings, results, usb_world)
        else:  # --verify resets each board, or asks for it, to read its boot
            reset = [result.path for result in results]
        if results and not args.json:
            _report(results, reset=reset)
        if checks is None:
            return results, {}
        verdicts = verify(checks, args.verify, usb_world, planned.image, results)
        if not args.json:
            for path, (_, words) in verdicts.items():
                print(f"{path}  {words}", flush=True)
        return results, verdicts


def _select(
    args: argparse.Namespace, usb_world: Usb, image: DfuImage, stop: StopSignals
) -> list[str]:
    """The boards to flash, per --path / --all / the only one; waits up to --wait for them.

    Empty when a stop signal came while waiting for them.
    """
    deadline = time.monotonic() + max(args.wait, 0.0)
    while True:
        boards = {board.path: board for board in scan(usb_world)}
        try:
            chosen = _choose(args, boards, image)
        except _NotYet as waiting:
            if stop.signum is not None:
                return []
            if time.monotonic() >= deadline:
                raise waiting.error from None
            time.sleep(_WAIT_POLL_S)
            continue
        if args.all:  # once, for the boards as they were when the flash started
            _say_skipped(boards, image, args.force)
        for path in chosen if args.force else ():
            overridden = forced(boards[path], image)
            if overridden:
                note(f"warning: --force flashes {path} although: {overridden}")
        return chosen


def _say_skipped(boards: dict[str, Board], image: DfuImage, force: bool) -> None:
    """One line on stderr for each board --all passes over, with what it is and why: a board
    left out without a word looks like one espdfu did not see."""
    for path, board in boards.items():
        problem = incompatibility(board, image, force)
        if problem is not None:
            note(f"skipping {path} ({board.mode.value}): {problem.message}")


class _NotYet(Exception):
    """The boards asked for are not there (yet): worth waiting for with --wait."""

    def __init__(self, error: EspdfuError) -> None:
        self.error = error


def _choose(args: argparse.Namespace, boards: dict[str, Board], image: DfuImage) -> list[str]:
    if args.path:
        missing = [path for path in args.path if path not in boards]
        if missing:
            raise _NotYet(InputError(f"No board at {', '.join(missing)}.", _present(boards)))
        for path in args.path:
            problem = incompatibility(boards[path], image, args.force)
            if problem is not None:
                raise InputError(problem.message, problem.hint)
        return list(dict.fromkeys(args.path))
    compatible = [p for p, b in boards.items() if incompatibility(b, image, args.force) is None]
    if args.all:
        if not compatible:
            raise _NotYet(
                EspdfuError(f"No board can take this {image.chip_name} file.", _present(boards))
            )
        return compatible
    if len(compatible) == 1:
        return compatible
    if not compatible:
        raise _NotYet(
            EspdfuError(f"No board can take this {image.chip_name} file.", _present(boards))
        )
    choices = " ".join(f"--path {path}" for path in compatible)
    raise InputError(
        f"{len(compatible)} boards could take this file: say which ({choices}) or use --all."
    )


def _present(boards: dict[str, Board]) -> str:
    if not boards:
        return "No board is connected: hold BOOT, tap RESET, release BOOT on the board."
    listing = ", ".join(_described(board) for board in boards.values())
    hints = dict.fromkeys(board.hint for board in boards.values() if board.hint)
    return " ".join([f"Connected: {listing}.", *hints])


def _described(board: Board) -> str:
    """'1-1.2 (esp32s2, ROM download)', with why it cannot be flashed when it cannot."""
    why = "" if board.accessible else f": {board.access.value}"
    if board.interface is None:
        why = ": no DFU interface"
    return f"{board.path} ({board.chip_name}, {board.mode.value}{why})"


def report_line(lead: str, text: str, hint: str = "") -> None:
    """``lead  text``, and the hint on the next line, under the text."""
    print(f"{lead}  {text}", flush=True)
    if hint:
        print(f"{' ' * len(lead)}  {hint}", flush=True)


def report_result(result: FlashResult, prefix: str = "", name: str = "") -> None:
    """One board's result in a line (the board by ``name``, else its port), and what to do on
    the next when it failed."""
    hint = result.error.hint if result.error is not None else ""
    report_line(f"{prefix}{name or result.path}", f"{result.chip}  {result.headline}", hint)


def _report(results: list[FlashResult], *, reset: Container[str] = ()) -> None:
    """Each result, then how many were flashed and, for the others to run their new app, the
    RESET to press (``reset``: the boards reset already)."""
    for result in results:
        report_result(result)
    flashed = sum(result.ok for result in results)
    print(f"{flashed} of {len(results)} board{'s' if len(results) != 1 else ''} flashed.")
    left = sum(bool(r.ok and r.next_step and r.path not in reset) for r in results)
    if left:
        print(reset_step(left))
