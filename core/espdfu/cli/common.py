"""What every ``espdfu`` command shares: exit codes, how errors are printed, stop signals."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Mapping
from types import FrameType, TracebackType

from ..errors import EspdfuError
from ..flasher import Failure, FlashResult

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""What ends a long run: Ctrl-C, a service manager or CI runner (SIGTERM), a dropped SSH
session (SIGHUP, which Windows does not have)."""


def print_error(error: EspdfuError) -> None:
    """A sentence, and on the next line what to do about it."""
    print(f"espdfu: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"  {error.hint}", file=sys.stderr)


def note(text: str) -> None:
    print(f"espdfu: {text}", file=sys.stderr)


def signal_exit_code(signum: int) -> int:
    """The shells' convention for a program stopped by a signal: 130 SIGINT, 143 SIGTERM, ..."""
    return 128 + signum


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


def flash_endings(endings: Mapping[str, FlashResult | None]) -> list[str]:
    """How the flashes that were stopped ended, grouped, each group with its boards' paths.

    ``None`` is a flash that had not ended when the wait for it ran out.
    """
    groups: dict[str, list[str]] = {}
    for path, result in endings.items():
        groups.setdefault(_ending(result), []).append(path)
    parts = []
    for ending, paths in groups.items():
        count = f"{len(paths)} flash{'es' if len(paths) > 1 else ''}"
        if ending == "aborted":
            ending += f", {'boards' if len(paths) > 1 else 'board'} left ready to flash"
        parts.append(f"{count} {ending} ({', '.join(paths)})")
    return parts


def _ending(result: FlashResult | None) -> str:
    if result is None:
        return "still running"
    if result.error is None:
        return "finished"
    if result.error.kind is Failure.CANCELLED:
        return "aborted"
    return f"failed: {result.error.kind.value}"


def stopped_line(signum: int | None, parts: list[str]) -> str:
    """What a stop ended, in one line: ``stopped by SIGTERM: 1 flash aborted, ...``."""
    cause = f"stopped by {signal.Signals(signum).name}" if signum is not None else "quit"
    return f"{cause}: {'; '.join(parts) or 'nothing was running'}."
