"""A private tmux server driving a real terminal program: keys in, the screen read back."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

DEADLINE_S = 60.0
SIZE_VARIABLES = ("COLUMNS", "LINES")
"""Never handed to the tmux server: see Tmux.run."""


class Tmux:
    """A private tmux server with one window running a command."""

    def __init__(self, tmux: str, socket: Path) -> None:
        self.base = [tmux, "-S", str(socket)]

    def run(self, *args: str) -> str:
        # The server starts with the environment of the command that starts it, and every pane
        # inherits it. pytest imports readline (through pdb), and GNU readline exports
        # COLUMNS=80 LINES=24 into the C environment when not on a terminal (os.environ does
        # not show them, a child gets them). In a pane whose shell is sh, nothing corrects
        # them, and the app draws itself at 80x24 whatever the pane's size. So the environment
        # is given explicitly, from os.environ, without them.
        env = {key: value for key, value in os.environ.items() if key not in SIZE_VARIABLES}
        result = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=10, check=True, env=env
        )
        return result.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app")

    def wait_for(self, condition: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            screen = self.screen()
            if condition(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen()}")
