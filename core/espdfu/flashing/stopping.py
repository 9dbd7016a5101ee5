"""How a long run ends when it is stopped: the signals that stop it, the exit code it gives,
and one line saying what the stop ended. Shared by the ``espdfu`` commands and the app."""

from __future__ import annotations

import signal
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from .flasher import Failure, FlashResult, Outcome
from .jobs import Job

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""What ends a long run: Ctrl-C, a service manager or CI runner (SIGTERM), a dropped SSH
session (SIGHUP, which Windows does not have)."""


def signal_exit_code(signum: int) -> int:
    """The shells' convention for a program stopped by a signal: 130 SIGINT, 143 SIGTERM, ..."""
    return 128 + signum


def flash_endings(
    endings: Mapping[str, FlashResult | None], off_the_bus: Collection[str] = ()
) -> list[str]:
    """How the flashes that were stopped ended, grouped, each group with its boards' paths.

    ``None`` is a flash that had not ended when the wait for it ran out; ``off_the_bus`` are
    those that ended while their board was away (their results are in the log).
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
    if off_the_bus:
        parts.append(f"ended with the board off the bus: {', '.join(off_the_bus)} (see the log)")
    return parts


def stopped_flashes(jobs: Iterable[Job[Any, Outcome]]) -> list[str]:
    """:func:`flash_endings` for flash jobs that were stopped and joined: each one's outcome,
    or that it still runs, or that its board left the bus."""
    endings: dict[str, FlashResult | None] = {}
    off_the_bus = []
    for job in jobs:
        outcome = job.result
        if outcome is not None and outcome.board is None:
            off_the_bus.append(job.path)
        else:
            endings[job.path] = outcome.result if outcome is not None else None
    return flash_endings(endings, off_the_bus)


def _ending(result: FlashResult | None) -> str:
    if result is None:
        return "still running"
    if result.error is None:
        return "finished"
    if result.error.kind is Failure.CANCELLED:
        return "aborted, the board left busy: press RESET" if result.error.left_busy else "aborted"
    return f"failed: {result.error.kind.value}"


def stopped_line(signum: int | None, parts: list[str]) -> str:
    """What a stop ended, in one line: ``stopped by SIGTERM: 1 flash aborted, ...``."""
    cause = f"stopped by {signal.Signals(signum).name}" if signum is not None else "quit"
    return f"{cause}: {'; '.join(parts) or 'nothing was running'}."
