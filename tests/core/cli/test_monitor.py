"""`espdfu monitor` as a script runs it: a real process reading a real pseudo-terminal.

The test holds the terminal's other end, as a board's USB console would: it writes what the
firmware prints, and closes it as a RESET would.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from espdfu.consoles.lines import MAX_LINE

MONITOR = [sys.executable, "-m", "espdfu", "monitor"]


class Console:
    """A pseudo-terminal whose other end the test writes to, as the board."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)

    def print(self, *lines: str) -> None:
        os.write(self.master, "".join(line + "\r\n" for line in lines).encode())

    def reset(self) -> None:
        os.close(self.master)


@pytest.fixture
def console() -> Iterator[Console]:
    board = Console()
    yield board
    with contextlib.suppress(OSError):
        os.close(board.master)


def start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MONITOR, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(process: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    """Read the monitor's stdout until a line holds ``text`` (or fail after 20 s)."""
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if text in line:
            return
    raise AssertionError(f"no {text!r} in {seen}")


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=20)
    assert "Traceback" not in err
    return process.returncode, out, err


@pytest.mark.parametrize(("verdict", "code"), [("SELFTEST PASS", 0), ("SELFTEST FAIL: adc", 1)])
def test_until_ends_with_the_exit_code_of_the_alternative_that_matched(
    console: Console, verdict: str, code: int
) -> None:
    process = start(console.path, "--until", "PASS|FAIL", "--timeout", "30")
    seen: list[str] = []
    wait_for(process, "console open", seen)
    console.print("ESP-ROM:esp32s2-rc4-20191025", "\x1b[0;32mI (310) app: testing\x1b[0m", verdict)
    returncode, out, _ = finish(process)
    assert returncode == code
    shown = seen + out.splitlines()
    assert f"{console.path}  I (310) app: testing" in shown
    assert f"{console.path}  {verdict}" in shown


def test_json_lines_carry_board_level_text_and_state_and_a_log_file_keeps_the_lines(
    console: Console, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    process = start(console.path, "--json", "--until", "ready", "--log-dir", logs)
    seen: list[str] = []
    wait_for(process, '"open"', seen)
    console.print("ESP-ROM:esp32s3-20210327", "W (20) boot: slow flash", "I (400) app: ready")
    returncode, out, _ = finish(process)
    assert returncode == 0
    records = [json.loads(line) for line in seen + out.splitlines()]
    warn = next(record for record in records if record.get("level") == "W")
    assert warn == {"board": console.path, "level": "W", "text": "W (20) boot: slow flash",
                    "state": "booting"}  # fmt: skip
    (log,) = logs.iterdir()
    assert log.read_text().splitlines() == [
        "ESP-ROM:esp32s3-20210327", "W (20) boot: slow flash", "I (400) app: ready"
    ]  # fmt: skip


def test_a_console_that_vanishes_is_said_and_the_timeout_still_ends_it(console: Console) -> None:
    process = start(console.path, "--until", "never", "--timeout", "3")
    seen: list[str] = []
    wait_for(process, "console open", seen)
    console.print("I (1) app: half a li")
    time.sleep(0.5)
    console.reset()
    returncode, out, _ = finish(process)
    shown = seen + out.splitlines()
    assert returncode == 1
    assert any("console gone" in line for line in shown), shown
    assert f"{console.path}  I (1) app: half a li" in shown  # the part line is not lost


def test_a_port_another_program_holds_is_refused_in_words(console: Console) -> None:
    with serial.Serial(console.path, exclusive=True):
        result = subprocess.run(
            [*MONITOR, console.path], capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 1
    assert "in use by another program" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_that_is_not_there_is_refused_in_words(tmp_path: Path) -> None:
    result = subprocess.run(
        [*MONITOR, tmp_path / "ttyACM9"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "cannot be opened" in result.stderr and "--list" in result.stderr


def test_virtual_boards_print_through_their_own_consoles() -> None:
    """`--sim`: an app board runs at once; its console, a pseudo-terminal, holds the start-up
    output until the monitor has it open."""
    result = subprocess.run(
        [*MONITOR, "--sim", "esp32s2-app,esp32s3-app:panic", "--all", "--json",
         "--until", "tick 0|Backtrace", "--timeout", "30"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result  # the panicking board matched the second alternative
    records = [json.loads(line) for line in result.stdout.splitlines()]
    texts = {board: [r["text"] for r in records if r.get("board") == board and "text" in r]
             for board in ("1-1.1", "1-1.2")}  # fmt: skip
    assert texts["1-1.1"][0] == "ESP-ROM:esp32s2-rc4-20191025"
    assert "I (1000) app: tick 0" in texts["1-1.1"]
    assert texts["1-1.2"][0] == "ESP-ROM:esp32s3-20210327"
    assert any(text.startswith("Backtrace: 0x40081234:") for text in texts["1-1.2"])


def test_a_ten_megabyte_burst_of_garbage_is_read_through_to_the_line_after_it(
    console: Console,
) -> None:
    """Random bytes (no newline for thousands of bytes at a time, every control character)
    as fast as the terminal takes them, then a line: the monitor keeps up and stops on it."""
    process = subprocess.Popen(
        [*MONITOR, console.path, "--until", "^DONE$", "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []
    wait_for(process, "console open", seen)
    burst = random.Random(3).randbytes(10 * 1024 * 1024).replace(b"\n", b"\0")
    writer = threading.Thread(target=_write_all, args=(console.master, burst + b"\nDONE\r\n"))
    writer.start()
    out, err = process.communicate(timeout=180)
    writer.join()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    shown = out.splitlines()
    assert shown[-1] == f"{console.path}  DONE"
    assert len(shown) >= 10 * 1024 * 1024 // MAX_LINE  # cut into bounded lines, none lost
    assert not any(char in out for char in "\x00\x07\x08\x1b\x7f")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view[:65536]) :]


def test_a_bad_until_pattern_is_invalid_input_before_any_port_is_opened(tmp_path: Path) -> None:
    result = subprocess.run(
        [*MONITOR, tmp_path / "ttyACM9", "--until", "PASS|(FAIL"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "is not a regular expression" in result.stderr
    assert "cannot be opened" not in result.stderr
