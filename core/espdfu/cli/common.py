"""What every ``espdfu`` command shares: exit codes, how errors are printed, stop signals."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType, TracebackType

from ..errors import EspdfuError
from ..stopping import STOP_SIGNALS

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

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]  # what signal() returned

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            self.on_stop()
