"""Whether a board's app runs, reboots or panicked, from its console lines as they come.

The ROM prints its banner at every reset (``ESP-ROM:esp32s2-…``, ``rst:0x1 (POWERON),boot:…``);
ESP-IDF's start-up says when the app's main task runs; a panic prints ``Guru Meditation
Error: …`` or ``abort() was called at PC …``, the registers, then ``Backtrace: PC:SP …``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .lines import Line

REBOOT_LOOP_BOOTS = 3
REBOOT_LOOP_S = 30.0
"""This many boots within this many seconds is a reboot loop."""

_BOOT_MARKS = ("ESP-ROM:", "rst:0x")
_RUN_MARKS = ("app_main()", "cpu_start: Starting scheduler", "main_task: Started on CPU")
_PANIC_MARKS = ("Guru Meditation Error", "abort() was called at PC", "***ERROR*** A stack overflow")


class RunState(enum.Enum):
    """What the console says of the firmware."""

    UNKNOWN = "no output yet"
    BOOTING = "booting"
    RUNNING = "running"
    PANICKED = "panicked"
    REBOOT_LOOP = "rebooting in a loop"


@dataclass
class Health:
    """The firmware's state, from the lines as they come.

    A reboot loop (an app that panics at start, a brown-out) shows as :data:`REBOOT_LOOP_BOOTS`
    boot banners within :data:`REBOOT_LOOP_S`; until that window has passed, the app starting
    or panicking again is part of the loop, not a new state.
    """

    state: RunState = RunState.UNKNOWN
    boots: list[float] = field(default_factory=list)
    """When the boot banners of the last :data:`REBOOT_LOOP_S` came."""
    panic: list[Line] = field(default_factory=list)
    """The last panic's lines, from its first line to its backtrace (or the next boot)."""
    _reporting: bool = field(default=False, repr=False)

    def see(self, line: Line) -> RunState:
        text = line.text
        self.boots = [at for at in self.boots if line.at - at < REBOOT_LOOP_S]
        if text.startswith(_BOOT_MARKS):
            self.boots.append(line.at)
            self.state = RunState.BOOTING
            self._reporting = False
        elif any(mark in text for mark in _PANIC_MARKS):
            self.state = RunState.PANICKED
            self.panic = [line]
            self._reporting = True
        elif self._reporting:  # the panic report goes on to its backtrace
            self.panic.append(line)
            self._reporting = not line.backtrace
        elif any(mark in text for mark in _RUN_MARKS):
            self.state = RunState.RUNNING
        elif self.state is RunState.UNKNOWN:  # its start-up went by unread: an app that prints
            self.state = RunState.RUNNING  # runs (it read "no output yet" under its lines)
        if len(self.boots) >= REBOOT_LOOP_BOOTS:
            self.state = RunState.REBOOT_LOOP
        return self.state
