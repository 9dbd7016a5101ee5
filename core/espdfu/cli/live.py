"""Per-board progress on stderr: lines redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from ..flashing.flasher import Phase, Progress
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
