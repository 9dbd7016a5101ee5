"""``espdfu trace FILE``: a flash's trace as people read it, and ``--trace FILE`` for the flash."""

from __future__ import annotations

import argparse
import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..usb.trace import TraceFile, read_trace, readable
from .common import Commands, Exit, add_command, add_paths, note

DESCRIPTION = (
    "Show a trace written by `espdfu flash --trace FILE` (or by the app, with [flash] trace = "
    "true) as text: each USB request with its answer and time, the descriptors read, each "
    "decision, then a summary for each board. The file itself is JSON lines (docs/cli.md)."
)
TRACE_HELP = (
    "write every USB request, answer and decision of the flash to FILE (JSON lines; "
    "`espdfu trace FILE` shows it)"
)


def add_commands(commands: Commands) -> None:
    summary = "show a flash's trace (written by flash --trace)"
    show = add_command(commands, "trace", _show, summary, DESCRIPTION)
    show.add_argument("file", type=Path, metavar="FILE", help="the trace file")
    add_paths(show, "only the board")
    show.add_argument(
        "--summary", action="store_true", help="only the summary of each board, not each line"
    )


@contextlib.contextmanager
def traced_to(path: Path | None) -> Iterator[TraceFile | None]:
    """The trace file of ``--trace`` (None without it), closed at the end and said where."""
    if path is None:
        yield None
        return
    trace = TraceFile(path)
    try:
        yield trace
    finally:
        trace.close()
        note(f"the trace is in {path} (`espdfu trace {path}` shows it)")


def _show(args: argparse.Namespace) -> int:
    wanted = set(args.path)
    lines = [
        line for line in read_trace(args.file) if not wanted or line.get("board", "") in wanted
    ]
    if not args.summary:
        for text in readable(lines):
            print(text)
    for text in summary(lines):
        print(text)
    return Exit.OK


def summary(lines: Iterable[dict[str, Any]]) -> Iterator[str]:
    """For each board: its requests counted by name, the failed ones, and how its flash ended."""
    requests: dict[str, Counter[str]] = {}
    errors: Counter[str] = Counter()
    results: dict[str, str] = {}
    for line in lines:
        board = line.get("board")
        if board is None:
            continue
        counted = requests.setdefault(board, Counter())  # a board without requests is summed up
        if line["event"] == "request":
            counted[line["request"]] += 1
            errors[board] += "error" in line
        elif line["event"] == "result":
            results[board] = str(line.get("message", ""))
    for board, counted in requests.items():
        count = ", ".join(f"{n} {name}" for name, n in counted.most_common())
        failed = f"{errors[board]} failed" if errors[board] else "none failed"
        ended = results.get(board, "no result (the flash did not end)")
        yield f"{board}: {count or 'no requests'} ({failed}). {ended}"
