"""What a board is doing, read from its console lines as a person would read them.

Every reset prints the ROM's banner and a ``rst:0x<code> (<reason>)`` line (one reset, however
many of the two lines the wire kept: :mod:`.resets`); the ROM hands over at ``entry 0x…``, the
2nd-stage bootloader loads the app or refuses it, the app prints (or not), panics, is reset by
a watchdog or a brownout. From that, one state (:class:`RunState`), with a note of the trouble
a running app had (a panic it rebooted from, a task-watchdog warning) kept until the user has
looked (:meth:`Health.seen`). The patterns are in :mod:`.signs`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace

from . import signs
from .lines import Line
from .resets import BOOT_MODE, RST, Chip, Reset, ResetKind, chip_of_banner, kind

STABLE_S = 15.0
"""A boot whose app ran this long is no more "at boot": a crash after it is a crash of a
running app, and the crashes before it are over."""
SILENT_S = 30.0
"""No line for this long from a board that booted or ran: silent."""


class RunState(enum.Enum):
    """What the console says of the board, in a person's words."""

    UNKNOWN = "no output yet"
    DOWNLOAD = "download mode"
    BOOTING = "booting"
    RUNNING = "running"
    PANICKED = "panicked"
    CRASHING = "crashing at boot"
    CANNOT_BOOT = "cannot boot"
    POWER = "power trouble"
    SILENT = "silent"

    @property
    def word(self) -> str:
        """A stable machine word (``--json``): ``running``, ``crashing-at-boot``…"""
        return "no-output" if self is RunState.UNKNOWN else self.value.replace(" ", "-")

    @property
    def troubled(self) -> bool:
        """Red on a panel: the firmware or the board is not working."""
        return self in _TROUBLED


_VAGUE = ("", "ROM panic")
"""A panic's reason when its first line does not say it: a later line may."""
_TROUBLED = frozenset({RunState.PANICKED, RunState.CRASHING, RunState.CANNOT_BOOT, RunState.POWER})


@dataclass(frozen=True)
class Note:
    """Trouble a board got over, kept until the user has looked."""

    what: str
    """``panicked``, ``task watchdog``, ``brownout``."""
    why: str
    """``LoadProhibited``, ``IDLE1``…"""
    at: float

    def words(self, now: float) -> str:
        """``panicked 40 s ago (LoadProhibited)``."""
        why = f" ({self.why})" if self.why else ""
        return f"{self.what} {_ago(now - self.at)}{why}"


@dataclass(frozen=True)
class Reading:
    """The state at a time, with what a panel says of it."""

    state: RunState
    detail: str = ""
    """Why, short: the panic's reason, the refusal quoted, the brownout's line."""
    note: Note | None = None
    now: float = 0.0
    elf: str = ""
    """The running build, as this boot's start-up named it (its ELF's SHA-256, first digits)."""

    @property
    def words(self) -> str:
        """``running · panicked 40 s ago (LoadProhibited)``, ``cannot boot: "invalid header:
        0xffffffff"``, ``crashing at boot: assert failed in startup.c:298``."""
        words = self.state.value
        if self.detail:
            words += f" {self.detail}" if self.state is RunState.SILENT else f": {self.detail}"
        if self.note is not None and self.state in (RunState.RUNNING, RunState.BOOTING):
            words += f" · {self.note.words(self.now)}"
        return words


@dataclass
class _Boot:
    """What the board did since its last reset (or since the console opened)."""

    reset: Reset | None = None
    """None: a boot whose reset the console did not see."""
    started: bool = False
    """It began when the console saw it: after a reset, or when a USB console came back."""
    chip: Chip | None = None
    at: float = 0.0
    shown: bool = False
    """It printed something that says it boots (a ROM, bootloader or start-up line)."""
    entered: bool = False
    """The ROM handed over (``entry 0x…``, or the bootloader spoke): what comes may be the app."""
    ran_at: float | None = None
    """When the app's first line came."""
    failure: str = ""
    """What failed it at its start (a panic's reason, a brownout)."""
    panicking: bool = False
    """A panic report is under way (or ended in a halt): until the next reset."""
    elf: str = ""
    """The first hex digits of the ELF SHA-256 its start-up named (empty: not said)."""


@dataclass
class Health:
    """The board's state, from its console lines as they come (:meth:`see`)."""

    resets: list[Reset] = field(default_factory=list)
    panic: list[Line] = field(default_factory=list)
    """The last panic's lines, from its first line to its backtrace."""
    note: Note | None = None
    _boot: _Boot = field(default_factory=_Boot)
    _banner_open: bool = False
    """The last reset is known by its banner only: a ``rst:`` line now is the same reset's."""
    _before_banner: _Boot | None = None
    """The boot a banner ended, judged again once its ``rst:`` line says why."""
    _failed: int = 0
    """Boots in a row that failed at their start."""
    _failure: str = ""
    _refusal: list[str] = field(default_factory=list)
    """The ROM's or the bootloader's refusal, cause first; kept across the resets it causes."""
    _causes: list[str] = field(default_factory=list)
    """The bootloader's errors this boot, until one is a refusal."""
    _brownout: str = ""
    _brownout_at: float = 0.0
    _reporting: bool = False
    _last_at: float | None = None

    # --- reading ---------------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        """The state when the last line came."""
        return self.reading().state

    def reading(self, now: float | None = None) -> Reading:
        """The state at ``now`` (default: when the last line came): a board that says nothing
        for :data:`SILENT_S` after it booted or ran is silent."""
        if self._last_at is None:
            return Reading(RunState.UNKNOWN, now=now or 0.0)  # no line: not even silent
        now = self._last_at if now is None else max(now, self._last_at)
        self._settle(now)
        state, detail = self._state(now)
        return Reading(state, detail, self.note, now, self._boot.elf)

    @property
    def refusal(self) -> tuple[str, ...]:
        """Why the board cannot boot: the ROM's or the bootloader's lines (without their log
        prefix), the cause first; empty when it can."""
        return tuple(self._refusal)

    def reopened(self, at: float) -> None:
        """The console went and came back (an app's own USB console comes back with the app after
        a reset, without the ROM's lines): a boot begins whose reset went unseen; the trouble
        before it (a panic, a refusal, a brownout) is kept."""
        if self._last_at is None:
            return
        ended = self._boot
        self._boot = _Boot(None, True, ended.chip, at)
        self._banner_open, self._before_banner, self._causes = False, None, []
        self._reporting = False
        self._judge(ended, at, None)

    def seen(self) -> None:
        """The user has looked at the console: the note of past trouble goes."""
        self.note = None

    def _state(self, now: float) -> tuple[RunState, str]:
        boot = self._boot
        if self._refusal:
            return RunState.CANNOT_BOOT, f'"{self._refusal[0]}"'
        if self._brownout:
            return RunState.POWER, self._brownout
        if boot.panicking and not boot.failure:
            return RunState.PANICKED, self.note.why if self.note else ""
        if boot.failure or (self._failed and not self._recovered(boot, now)):
            times = self._failed + bool(boot.failure)
            boots = f", {times} boots" if times > 1 else ""
            return RunState.CRASHING, (boot.failure or self._failure) + boots
        if boot.reset is not None and boot.reset.download:
            return RunState.DOWNLOAD, ""
        if boot.ran_at is None and not boot.shown:
            return RunState.UNKNOWN, ""
        quiet = now - (now if self._last_at is None else self._last_at)
        if quiet >= SILENT_S:
            return RunState.SILENT, f"for {_duration(quiet)}"
        return (RunState.RUNNING if boot.ran_at is not None else RunState.BOOTING), ""

    def _settle(self, now: float) -> None:
        """A brownout is over once the app has run for a while since: a note then."""
        if self._brownout and self._recovered(self._boot, now, since=self._brownout_at):
            self.note = Note("brownout", self._brownout, self._brownout_at)
            self._brownout = ""

    @staticmethod
    def _recovered(boot: _Boot, now: float, since: float | None = None) -> bool:
        ran = boot.ran_at
        return ran is not None and (since is None or ran > since) and now - ran >= STABLE_S

    @staticmethod
    def _at_boot(boot: _Boot, at: float) -> bool:
        """Whether something at ``at`` happened at the boot's start (a boot seen starting)."""
        if not boot.started:
            return False
        return at - (boot.ran_at if boot.ran_at is not None else boot.at) < STABLE_S

    # --- lines -----------------------------------------------------------------------------

    def see(self, line: Line) -> RunState:
        """Read one more line; its state."""
        self._last_at = line.at
        text = signs.plain(line.text)
        marks = sorted(
            [(m.start(), m) for m in signs.BANNER.finditer(text)]
            + [(m.start(), m) for m in RST.finditer(text)],
            key=lambda mark: mark[0],
        )
        if marks:
            self._rom_refusal(text[: marks[0][0]])
            banner = False
            for _, match in marks:
                if match.re is RST:
                    self._rst(match, text[match.end() :], line.at)
                else:
                    self._banner(match[0], text, line.at)
                    banner = True
            self._banner_open = banner and self._banner_open
            return self.state
        if not text.strip() or text.startswith("Build:"):
            return self.state
        self._banner_open = False
        self._line(line, text)
        return self.state

    def _line(self, line: Line, text: str) -> None:
        at, boot = line.at, self._boot
        if signs.BROWNOUT in text:
            self._brownout, self._brownout_at = signs.BROWNOUT, at
            if self._at_boot(boot, at):
                boot.failure = "brownout"
            return
        if boot.panicking:  # the report goes on to the next reset
            why = signs.panic(text)
            if why and self.note and self.note.what == "panicked" and self.note.why in _VAGUE:
                self.note = replace(self.note, why=why)  # "Panic at …" then "Fatal exception …"
                boot.failure = boot.failure and why
            if self._reporting:
                self.panic.append(line)
                self._reporting = signs.BACKTRACE not in text
            return
        if (why := signs.panic(text)) is not None or signs.panic_part(text):
            self._panic(line, text, why or "")
            return
        if signs.rom_line(text):
            boot.shown = True
            boot.entered = boot.entered or text.startswith(signs.ENTRY)
            if text.startswith(signs.DOWNLOAD):
                self._download()
            self._rom_refusal(text)
            return
        if self._rom_refusal(text):
            return
        if text.startswith(signs.BACKTRACE) or signs.neutral(text):
            return  # a task watchdog's backtrace, a monitor's line: nothing of the board
        said = signs.log(text)
        tag = said[1] if said else ""
        if said and tag in signs.BOOTLOADER_TAGS:
            boot.shown = boot.entered = True
            if said[0] == "E" and boot.ran_at is None:  # not an app checking an OTA image
                self._bootloader_error(said[2])
            return
        if said and tag == signs.TASK_WDT:
            self._watchdog(said[2], at)
        elif (
            said
            and tag in signs.STARTUP_TAGS
            and not f"{tag}: {said[2]}".startswith(signs.RUN_MARKS)
        ):
            boot.shown = boot.entered = True
            if elf := signs.ELF_SHA256.match(said[2]):
                boot.elf = elf[1]
            return
        if boot.reset is not None and not boot.entered and said is None:
            return  # not the app's: the ROM has not handed over (garbage, a cut line)
        if boot.ran_at is None:
            boot.ran_at = at
        self._refusal = []  # an app runs: whatever was refused before, this one booted

    def _rom_refusal(self, text: str) -> bool:
        if self._boot.ran_at is not None:
            return False  # the app's own words ("invalid header: X-Foo")
        for pattern in signs.ROM_REFUSALS:
            if match := pattern.search(text):
                self._boot.shown = True
                quote = match[0].rstrip()
                whole = len(quote) >= len("invalid header: 0x12345678") or "err" in quote
                if not self._refusal or (whole and len(self._refusal[0]) < len(quote)):
                    self._refusal = [quote]
                return True
        return False

    def _bootloader_error(self, message: str) -> None:
        if self._refusal and self._refusal[-1] != message:
            self._refusal.append(message)  # the lines after the refusal ("No bootable…")
        elif signs.final_refusal(message):
            self._refusal = [*self._causes, message]
        elif "OTA app partition slot" in message:
            self._causes = []  # the next slot is tried: its own errors, if any, count
        else:
            self._causes.append(message)

    def _watchdog(self, message: str, at: float) -> None:
        if message.startswith("Task watchdog got triggered"):
            if self.note is None or self.note.what != "panicked":  # a panic matters more
                self.note = Note("task watchdog", "", at)
        elif (
            (task := signs.watchdog_task(message))
            and self.note
            and self.note.what == "task watchdog"
        ):
            tasks = f"{self.note.why}, {task}" if self.note.why else task
            self.note = replace(self.note, why=tasks)

    def _panic(self, line: Line, text: str, why: str) -> None:
        boot = self._boot
        boot.panicking = True
        self.panic = [line]
        self._reporting = signs.BACKTRACE not in text
        self.note = Note("panicked", why, line.at)
        if self._at_boot(boot, line.at):
            boot.failure = why or "panic"

    def _download(self) -> None:
        if self._boot.reset is not None and not self._boot.reset.download:
            self._boot.reset = replace(self._boot.reset, download=True)
            self.resets[-1] = self._boot.reset
        self._refusal = []

    # --- resets ----------------------------------------------------------------------------

    def _banner(self, mark: str, text: str, at: float) -> None:
        chip = chip_of_banner(text) or (Chip.ESP32 if mark.startswith("ets") else None)
        self._before_banner = self._new_boot(Reset(at), chip)
        self._banner_open = True

    def _rst(self, match: re.Match[str], rest: str, at: float) -> None:
        code, name = int(match[1], 16), match[2] or ""
        mode = BOOT_MODE.match(rest.lstrip(","))
        download = mode is not None and mode[1].startswith("DOWNLOAD")
        if self._banner_open and self.resets and self.resets[-1].code is None:
            why = kind(code, name, self._boot.chip)  # the reset its banner began
            reset = replace(self.resets[-1], code=code, name=name, kind=why, download=download)
            self.resets[-1] = self._boot.reset = reset
            if self._before_banner is not None and reset.kind is ResetKind.WATCHDOG:
                self._judge(self._before_banner, at, reset)
        else:
            chip = self._boot.chip if self._boot.reset is None else None
            reset = Reset(at, code, name, kind(code, name, chip), download)
            self._judge(self._new_boot(reset, chip), at, reset)
        self._banner_open = False
        self._before_banner = None
        if reset.kind is ResetKind.BROWNOUT:
            self._brownout, self._brownout_at = f"brownout reset, {reset.reason}", at
        if reset.download:
            self._refusal = []

    def _new_boot(self, reset: Reset, chip: Chip | None) -> _Boot:
        """Start the boot this reset begins; the one it ended, judged by what it did."""
        ended = self._boot
        self.resets.append(reset)
        self._boot = _Boot(reset, True, chip, reset.at, shown=True)
        self._causes = []
        self._reporting = False
        self._judge(ended, reset.at, None)
        return ended

    def _judge(self, ended: _Boot, at: float, reset: Reset | None) -> None:
        """Count a boot that failed at its start (a crash, a brownout, a watchdog reset before
        its app ran); a boot whose app ran a while ends a run of failures."""
        failure = ended.failure
        if reset is not None:
            if failure or reset.kind is not ResetKind.WATCHDOG or not self._at_boot(ended, at):
                return  # judged already when the banner came, or no failure
            failure = ended.failure = f"watchdog reset, {reset.reason}"
        if failure:
            self._failed += 1
            self._failure = failure
        elif self._recovered(ended, at):
            self._failed = 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def _ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{_duration(seconds)} ago"
