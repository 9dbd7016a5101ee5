"""The tmux helper: a pane is the size it was made, whatever the shell and the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.helpers.tmux import Tmux


def test_a_pane_under_sh_has_its_own_size_despite_columns_and_lines_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What pytest's readline leaves in the environment, and the login shell of a plain `useradd`,
    # which (unlike bash) never corrects them after stty.
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    monkeypatch.setenv("SHELL", "/bin/sh")
    tmux = Tmux(require_tool("tmux"), tmp_path / "tmux.sock")
    size = "import shutil; print('size', *shutil.get_terminal_size())"
    try:
        tmux.run(
            "-f", "/dev/null", "new-session", "-d", "-s", "app", "-x", "100", "-y", "30",
            f"stty cols 100 rows 30; {sys.executable} -c \"{size}\"; sleep 30",
        )  # fmt: skip
        screen = tmux.wait_for(lambda s: "size " in s, "the size the pane's program sees")
        assert "size 100 30" in screen
        assert "COLUMNS=" not in tmux.run("show-environment", "-g")
    finally:
        subprocess.run([*tmux.base, "kill-server"], capture_output=True, timeout=10, check=False)
