"""Per-board progress on stderr: lines redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from ..flashing.flasher import Failure, FlashResult, Phase, Progress
from ..units import format_size

BAR_WIDTH = 20
_PLAIN_STEPS = 4  # a plain line at each quarter of a download


class LiveProgress:
    """One line per board; thread-safe, since every board reports from its own thread."""

    def __init__(self, paths: Sequence[str], stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.lines = {path: f"{path}: waiting" for path in paths}
        self.width = max(len(path) for path in paths) if paths else 0
        self.quarter = dict.fromkeys(paths, -1)
        self.phase: dict[str, Phase | None] = dict.fromkeys(paths)
        self.drawn = False
        self.lock = threading.Lock()

    def update(self, progress: Progress) -> None:
        with self.lock:
            text = self._describe(progress)
            self.lines[progress.path] = text
            if self.tty:
                self._redraw()
            elif self._worth_a_line(progress):
                print(text.rstrip(), file=self.stream, flush=True)

    def finish(self, result: FlashResult) -> None:
        """The board's flash ended: its line says how, at once (its last progress would say
        "finishing" or "erasing" until the whole command ends)."""
        with self.lock:
            text = f"{result.path:<{self.width}}  {_ending(result)}"
            self.lines[result.path] = text
            if self.tty:
                self._redraw()
            else:
                print(text, file=self.stream, flush=True)

    def _describe(self, progress: Progress) -> str:
        head = f"{progress.path:<{self.width}}  {progress.activity:<20}"
        if progress.attempt > 1:
            head += f" (try {progress.attempt})"
        if progress.phase not in (Phase.DOWNLOADING, Phase.ERASING, Phase.MANIFESTING):
            return head
        filled = int(progress.fraction * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        text = (
            f"{head} [{bar}] {progress.fraction:4.0%}  "
            f"{format_size(progress.done)} / {format_size(progress.total)}"
        )
        if progress.rate:
            text += f"  {format_size(int(progress.rate))}/s"
        if progress.eta_s is not None and progress.done < progress.total:
            text += f"  ETA {progress.eta_s:.0f} s"
        return text

    def _worth_a_line(self, progress: Progress) -> bool:
        """Plain output: phase changes and each quarter of the download, not every update."""
        quarter = int(progress.fraction * _PLAIN_STEPS)
        new_phase = self.phase[progress.path] is not progress.phase
        new_quarter = progress.phase is Phase.DOWNLOADING and quarter > self.quarter[progress.path]
        self.phase[progress.path] = progress.phase
        if new_quarter:
            self.quarter[progress.path] = quarter
        return new_phase or new_quarter

    def _redraw(self) -> None:
        columns = shutil.get_terminal_size().columns - 1
        out = [f"\x1b[{len(self.lines)}F"] if self.drawn else []
        out += [f"\x1b[2K{line[:columns]}\n" for line in self.lines.values()]
        self.stream.write("".join(out))
        self.stream.flush()
        self.drawn = True


def _ending(result: FlashResult) -> str:
    """How a board's flash ended, in a few words: "flashed in 9.4 s", "failed: timeout"."""
    error = result.error
    if error is None:
        return f"flashed in {result.seconds:.1f} s"
    if error.kind is Failure.CANCELLED:
        busy = ", the board still busy: press RESET" if error.left_busy else ""
        return f"cancelled at byte {error.accepted:,}{busy}"
    return f"failed: {error.kind.value} after {result.seconds:.1f} s"
