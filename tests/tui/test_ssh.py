"""End to end over SSH: the real `espdfu-tui --demo` through a real sshd on loopback, in tmux."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import missing, require_tool
from tests.helpers.sshloop import SshLoop, unavailable
from tests.helpers.tmux import Tmux


def test_over_ssh_keys_arrive_and_a_build_then_flash_completes(tmp_path: Path) -> None:
    tmux = Tmux(require_tool("tmux"), tmp_path / "tmux.sock")
    reason = unavailable()
    if reason is not None:
        missing(reason)
    env = {
        "ESPDFU_SIM_TIME": "0.2",  # virtual boards five times faster than real ones
        "ESPDFU_DEMO_BUILD_S": "0.5",
        "ESPDFU_CONFIG_DIR": str(tmp_path / "config"),
    }
    with SshLoop(tmp_path / "ssh") as loop:
        # stty: a detached pane's terminal may not have its size yet when ssh reads it
        tmux.run(
            "-f", "/dev/null", "new-session", "-d", "-s", "app", "-x", "100", "-y", "30",
            f"stty cols 100 rows 30; {loop.app(env, '--demo')}; echo EXIT=$?; sleep 30",
        )  # fmt: skip
        try:
            tmux.wait_for(lambda s: "─ 1-2.1 " in s and "press b to build" in s, "the panels")
            tmux.run("send-keys", "-t", "app", "x")
            done = tmux.wait_for(  # the three ESP32-S2 in ROM mode and the app board, running it
                lambda s: s.count("build 1 · verified") == 4, "the flashes, the new apps verified"
            )
            assert "build OK" in done
            tmux.run("send-keys", "-t", "app", "q")
            tmux.wait_for(lambda s: "EXIT=0" in s, "a clean exit of the app and of ssh")
        finally:
            subprocess.run([*tmux.base, "kill-server"], capture_output=True, timeout=10)
            print(f"sshd's log:\n{loop.sshd_log()}")  # pytest shows it when the test fails
        assert f"Accepted publickey for {loop.user} from 127.0.0.1" in loop.sshd_log()
        down, up = loop.relay.bytes_between(0, float("inf"))
        assert down > 10_000 and up > 0  # screens one way, keys the other: all through the relay
