"""Which virtual boards to plug in, written as users type it: ``--sim esp32s2*3,esp32s3-jtag``.

A term may add, after colons, faults and settings for each of its boards, so that people
demonstrating the tool and rigs testing their scripts can make a board misbehave from the
command line: ``esp32s2:pull@100000`` is a board whose cable is pulled at byte 100,000. A
fault's position is a byte of the download, not a percentage: the board cannot know the
file's size before the download ends, and faults fire at the nth DNLOAD request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..chips import chip_by_name, dfu_chip_names
from ..errors import InputError
from ..usb.protocol import Request, Status
from .board import BoardKind, Fault, FaultAction, VirtualBoard, check_kind
from .descriptors import TRANSFER_SIZE
from .firmware import APPS

MAX_PER_TERM = 64
MAX_BOARDS = 128
MAX_ERASE_MS = 10_000
_COUNT = re.compile(r"\d{1,6}", re.ASCII)
_BYTE = re.compile(r"(\d{1,9})([km]?)", re.ASCII | re.IGNORECASE)
_ERASE_MS = re.compile(r"\d{1,5}", re.ASCII)
_KINDS = {kind.value: kind for kind in BoardKind}
_AT_FAULTS: dict[str, FaultAction] = {
    "pull": "unplug",
    "stall": "stall",
    "timeout": "timeout",
    "busy": "busy",
}
_SWITCHES = {
    "dnbusy": "erase_busy",
    "manifest": "manifest_poll",
    "chatty": "chatty",
    "bridge": "bridge",
    "running": "running",
}
"""Settings a word turns on, and the VirtualBoard argument each sets."""
_APPS = frozenset(APPS) - {"idf"}
"""Words for what the board's firmware does (VirtualBoard's ``app``): one per board."""
_STATUSES = {status.name.lower(): status for status in Status if status is not Status.OK}
_FORMS = (
    "Write terms CHIP[-KIND][*COUNT][:FAULT...] separated by commas, such as "
    "'esp32s2*3,esp32s3-jtag' or 'esp32s2:pull@100000'. "
    f"Chips: {dfu_chip_names()}. Kinds: rom (the default: ROM download mode), dfu, app, "
    f"jtag (esp32s3 only), noaccess, nodriver, nodfudriver. COUNT from 1 to {MAX_PER_TERM}, "
    f"at most {MAX_BOARDS} boards in all. Faults, each once at BYTE of the download (a "
    "number of bytes, or with K or M for KiB or MiB): pull@BYTE (the cable is pulled), stall@BYTE, "
    "timeout@BYTE, busy@BYTE (stuck busy), status=errNAME@BYTE (such as status=errVERIFY@4K); "
    f"slowerase=MS (ms per 4 KiB sector, up to {MAX_ERASE_MS}), dnbusy (the erase reported "
    "as dfuDNBUSY), manifest (a dfuMANIFEST phase), chatty (its app prints 100 lines a "
    "second), bridge (a DevKit's USB-UART bridge: its app's console there, espdfusim://PATH, "
    "and DTR/RTS wired to EN and GPIO0), running (a rom board that powers on running its app, as "
    "one plugged in without BOOT held: off the bus, seen on its bridge's console). "
    "What its firmware does, one of: panic (its app panics at start, and so reboots in a loop), "
    "panic-once (its app panics once after 25 s, and runs on after the reboot), "
    "bootassert (ESP-IDF's start-up fails an assert at every boot), refuse (the bootloader "
    "refuses the app and resets, over and over), blank (the ROM finds no bootloader: "
    "'invalid header', then its watchdog resets), brownout (a brownout as the app starts, at "
    "every boot), arduino (a sketch that prints its own lines, none of ESP-IDF's), quiet (the "
    "app prints nothing after its start-up)."
)


@dataclass(frozen=True)
class BoardSpec:
    """One board a spec names: its chip and kind, and how it misbehaves."""

    chip: str
    kind: BoardKind = BoardKind.ROM
    faults: tuple[Fault, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for :class:`VirtualBoard` (erase time, DFU 1.1 variants)."""

    def board(self) -> VirtualBoard:
        return VirtualBoard(self.chip, self.kind, faults=self.faults, **self.settings)


def parse_spec(spec: str) -> list[tuple[str, BoardKind]]:
    """The boards ``spec`` names, one (chip name, kind) per board, in order."""
    return [(board.chip, board.kind) for board in parse_boards(spec)]


def parse_boards(spec: str) -> list[BoardSpec]:
    """The boards ``spec`` names, with their faults and settings, one per board, in order."""
    if not spec.strip():
        raise InputError("The simulator spec is empty: it names no board.", _FORMS)
    boards: list[BoardSpec] = []
    for term in spec.split(","):
        boards += _read_term(term.strip())
        if len(boards) > MAX_BOARDS:
            raise InputError(
                f"The simulator spec names more than {MAX_BOARDS} boards (up to '{term.strip()}').",
                _FORMS,
            )
    return boards


def _read_term(term: str) -> list[BoardSpec]:
    if not term:
        raise InputError("The simulator spec has an empty term (a stray comma).", _FORMS)
    head, *options = (part.strip() for part in term.split(":"))
    body, star, count_text = (part.strip() for part in head.partition("*"))
    count = 1
    if star:
        if not _COUNT.fullmatch(count_text) or not 1 <= int(count_text) <= MAX_PER_TERM:
            raise InputError(
                f"In '{term}', the count after '*' must be a whole number from 1 to "
                f"{MAX_PER_TERM}.",
                _FORMS,
            )
        count = int(count_text)
    chip_part, dash, kind_text = body.rpartition("-")
    kind = _KINDS.get(kind_text.lower()) if dash else None
    name = chip_part if kind else body  # "esp32-s3" is a chip; "esp32-s3-dfu" one with a kind
    chip = chip_by_name(name)
    if chip is None:
        if dash and chip_by_name(chip_part):
            raise InputError(f"In '{term}', '{kind_text}' is not a board kind.", _FORMS)
        raise InputError(f"In '{term}', '{name}' is not a chip with USB DFU.", _FORMS)
    kind = kind or BoardKind.ROM
    try:
        check_kind(chip, kind)
    except InputError as error:
        raise InputError(f"In '{term}': {error.message}", _FORMS) from None
    faults: list[Fault] = []
    settings: dict[str, Any] = {}
    for option in options:
        _read_option(term, option, faults, settings)
    return [BoardSpec(chip.name, kind, tuple(faults), settings)] * count


def _read_option(term: str, option: str, faults: list[Fault], settings: dict[str, Any]) -> None:
    """Add what one ``:OPTION`` of ``term`` says to ``faults`` or ``settings``."""
    word, _, value = option.lower().partition("=")
    if word in _SWITCHES and not value:
        settings[_SWITCHES[word]] = True
    elif word in _APPS and not value:
        if settings.get("app", word) != word:
            raise InputError(
                f"In '{term}', '{settings['app']}' and '{word}' are two firmwares: a board "
                "runs one.",
                _FORMS,
            )
        settings["app"] = word
    elif word == "slowerase" and value:
        if not _ERASE_MS.fullmatch(value) or int(value) > MAX_ERASE_MS:
            raise InputError(
                f"In '{term}', slowerase takes the erase time of one 4 KiB sector in ms, "
                f"a whole number from 0 to {MAX_ERASE_MS}, not '{value}'.",
                _FORMS,
            )
        settings["erase_ms_per_sector"] = float(value)
    elif "@" in option:
        faults.append(_read_fault(term, option))
    else:
        raise InputError(f"In '{term}', '{option}' is not a fault or a setting.", _FORMS)


def _read_fault(term: str, option: str) -> Fault:
    """``ACTION@BYTE`` or ``status=errNAME@BYTE``: fired by the DNLOAD carrying that byte."""
    what, _, where = (part.strip() for part in option.partition("@"))
    at = _BYTE.fullmatch(where)
    if at is None:
        raise InputError(
            f"In '{term}', '{where}' after '@' is not a byte of the download: write a number "
            "of bytes, such as 100000, 64K or 1M (not a percentage: a board learns the file's "
            "size only at its end).",
            _FORMS,
        )
    byte = int(at.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[at.group(2).lower()]
    nth = byte // TRANSFER_SIZE + 1
    action, _, status_text = what.partition("=")
    action = action.lower()
    if action == "status":
        status = _STATUSES.get(status_text.lower().removeprefix("err"))
        if status is None:
            names = ", ".join(s.label for s in _STATUSES.values())
            raise InputError(
                f"In '{term}', '{status_text}' is not a DFU error status: one of {names}.", _FORMS
            )
        return Fault("status", Request.DNLOAD, nth, status)
    if action not in _AT_FAULTS or status_text:
        raise InputError(f"In '{term}', '{what}' is not a fault.", _FORMS)
    return Fault(_AT_FAULTS[action], Request.DNLOAD, nth)
