"""`espdfu monitor` as a script runs it: a real process reading a real pseudo-terminal.

The test holds the terminal's other end, as a board's USB console would: it writes what the
firmware prints, and closes it as a RESET would.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from espdfu.consoles.health import Health, RunState
from espdfu.consoles.lines import MAX_LINE, Splitter
from tests.core.consoles.test_corpus import LOGS, Log, chunks, read_log

MONITOR = [sys.executable, "-m", "espdfu", "monitor"]


class Console:
    """A pseudo-terminal whose other end the test writes to, as the board."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)

    def print(self, *lines: str) -> None:
        os.write(self.master, "".join(line + "\r\n" for line in lines).encode())

    def wait_until_read(self) -> None:
        """Until the host has read every byte that reached the terminal: none waits in its
        input queue (FIONREAD on a descriptor of our own, which reads nothing). Bytes still on
        their way in are not counted: wait first for the host to show some of the same write."""
        watcher = os.open(self.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            deadline = time.monotonic() + 20
            while _waiting(watcher):
                assert time.monotonic() < deadline, "the host never read what was printed"
                time.sleep(0.01)
        finally:
            os.close(watcher)

    def reset(self) -> None:
        os.close(self.master)


def _waiting(fd: int) -> int:
    """Bytes waiting to be read from a terminal."""
    (count,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))
    return int(count)


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
                    "state": "booting", "words": "booting"}  # fmt: skip
    (log,) = logs.iterdir()
    assert log.read_text().splitlines() == [
        "ESP-ROM:esp32s3-20210327", "W (20) boot: slow flash", "I (400) app: ready"
    ]  # fmt: skip


def test_a_console_that_vanishes_is_said_and_the_timeout_still_ends_it(console: Console) -> None:
    process = start(console.path, "--until", "never", "--timeout", "3")
    seen: list[str] = []
    wait_for(process, "console open", seen)
    os.write(console.master, b"I (0) app: whole\r\nI (1) app: half a li")  # one write...
    wait_for(process, "app: whole", seen)  # ...in the terminal's queue as one piece
    console.wait_until_read()  # the pseudo-terminal's close would drop what was not read
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
    assert result.returncode == 2  # a name to correct, as a missing file is for every command
    assert f"There is no {tmp_path / 'ttyACM9'}." in result.stderr and "--list" in result.stderr


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda path: path.write_text("not a port"), "it is a file"),
        (os.mkdir, "it is a folder"),
        (os.mkfifo, "it is a pipe"),
    ],
    ids=["file", "folder", "fifo"],
)
def test_what_is_no_serial_port_is_refused_in_one_sentence(
    tmp_path: Path, make: Callable[[Path], object], words: str
) -> None:
    """Before opening it (a pipe would block): one sentence and what to name instead, exit 2,
    never pyserial's words ("Could not configure port: (25, ...)")."""
    target = tmp_path / "port"
    make(target)
    result = subprocess.run([*MONITOR, target], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result
    assert f"{target} is not a serial port: {words}." in result.stderr
    assert "Could not configure" not in result.stderr and "Traceback" not in result.stderr


def test_a_device_that_is_no_terminal_is_refused_in_one_sentence() -> None:
    result = subprocess.run([*MONITOR, "/dev/zero"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result
    assert "/dev/zero is not a serial port: a device, but not a terminal." in result.stderr
    assert "Could not configure" not in result.stderr


def test_virtual_boards_print_through_their_own_consoles() -> None:
    """`--sim`: an app board runs at once; its console, a pseudo-terminal, holds the start-up
    output until the monitor has it open."""
    result = subprocess.run(
        [*MONITOR, "--sim", "esp32s2-app,esp32s3-app:panic", "--all", "--json",
         "--until", "sensor ready|Backtrace", "--timeout", "30"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result  # the panicking board matched the second alternative
    records = [json.loads(line) for line in result.stdout.splitlines()]
    texts = {board: [r["text"] for r in records if r.get("board") == board and "text" in r]
             for board in ("1-1.1", "1-1.2")}  # fmt: skip
    assert texts["1-1.1"][0] == "ESP-ROM:esp32s2-rc4-20191025"
    assert "I (1000) app: sensor ready (BME280)" in texts["1-1.1"]
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


def test_a_board_in_download_mode_is_said_to_be_waited_for_and_why() -> None:
    """It printed nothing, for ever: now what it waits for, and why (from the bus)."""
    result = subprocess.run(
        [*MONITOR, "-p", "1-1.1", "--sim", "esp32s2", "--timeout", "6"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1  # the timeout
    assert result.stdout.splitlines() == [
        "1-1.1  -- waiting: 1-1.1 is in ROM download mode: its app's console appears after a RESET."
    ]
    empty = subprocess.run(
        [*MONITOR, "-p", "1-9", "--sim", "esp32s2", "--json", "--timeout", "6"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    waiting = json.loads(empty.stdout.splitlines()[0])
    assert waiting == {
        "board": "1-9",
        "event": "waiting",
        "message": "no board is at 1-9 now; its app's console is opened when it comes.",
    }


def test_a_long_wait_is_said_again_with_how_long(capsys: pytest.CaptureFixture[str]) -> None:
    from espdfu.cli.monitor import FIRST_WAIT_SAY_S, WAIT_SAY_S, _Waits
    from espdfu.consoles.ports import Back, Gone
    from espdfu.worlds import virtual_world

    times = iter((0.0, 0.0, FIRST_WAIT_SAY_S - 0.1, FIRST_WAIT_SAY_S, 10.0, WAIT_SAY_S + 5, 40.0))
    now = 0.0

    def clock() -> float:
        return now

    world, _ = virtual_world("esp32s2")
    waits = _Waits(["1-1.1"], world, as_json=False, clock=clock)
    for now in times:  # noqa: B007  (the clock reads it)
        waits.say_due()
    said = capsys.readouterr().out.splitlines()
    assert said == [
        "1-1.1  -- waiting: 1-1.1 is in ROM download mode: its app's console appears after a "
        "RESET.",
        f"1-1.1  -- still waiting after {WAIT_SAY_S + 5:.0f} s: 1-1.1 is in ROM download mode: "
        "its app's console appears after a RESET.",
    ]
    waits.seen("1-1.1", Back("/dev/pts/9", now))  # open: nothing more to say
    now = 100.0
    waits.say_due()
    waits.seen("1-1.1", Gone(now))  # gone again: said again soon
    now += FIRST_WAIT_SAY_S
    waits.say_due()
    assert capsys.readouterr().out.startswith("1-1.1  -- waiting: ")


def test_until_says_which_alternative_matched() -> None:
    """It exited 1 without a word of which pattern matched."""
    result = subprocess.run(
        [*MONITOR, "--sim", "esp32s2-app", "--all", "--until", "temperature|sensor",
         "--timeout", "30"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "espdfu: 1-1.1 matched 'sensor' of --until: a failure (the first alternative, "
        "'temperature', means success)."
    ]


def test_its_help_says_what_a_stop_does_to_it_and_to_no_flash() -> None:
    """It said "running flashes are aborted": it runs none."""
    text = subprocess.run([*MONITOR, "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "Stop with Ctrl-C" in " ".join(text.split()) and "flashes" not in text
    watch = subprocess.run(
        [sys.executable, "-m", "espdfu", "watch", "--help"], capture_output=True, text=True
    ).stdout
    assert "running flashes are aborted" in " ".join(watch.split())


def test_list_shows_the_ports_of_sims_boards_and_of_the_paths_given() -> None:
    """--list listed the system's ports whatever --sim and -p said."""
    spec = "esp32s2*2,esp32s2-app"
    every = subprocess.run(
        [*MONITOR, "--list", "--sim", spec], capture_output=True, text=True, timeout=30
    )
    rows = [line.split("  ") for line in every.stdout.splitlines()]
    assert every.returncode == 0 and [row[1] for row in rows] == ["1-1.1", "1-1.2", "1-1.3"]
    assert rows[0][2] == "virtual board, no console now" and rows[2][2] == "virtual board"
    one = subprocess.run(
        [*MONITOR, "--list", "--sim", spec, "-p", "1-1.3"], capture_output=True, text=True
    )
    assert [line.split("  ")[1] for line in one.stdout.splitlines()] == ["1-1.3"]


def test_a_line_without_its_newline_is_shown_when_the_monitor_stops(console: Console) -> None:
    """The reader gives the part line when it closes the port; the monitor stopped reading its
    events before that, and the line was lost."""
    process = start(console.path, "--timeout", "2")
    seen: list[str] = []
    wait_for(process, "console open", seen)
    os.write(console.master, b"I (0) app: whole\r\nassert failed: app_main main.c:12 (x)")
    _, out, _ = finish(process)
    shown = seen + out.splitlines()
    assert f"{console.path}  assert failed: app_main main.c:12 (x)" in shown
    # and the board's state, said in text where it changes
    assert f"{console.path}  -- panicked: assert failed in main.c:12" in shown


_WAYS = ("whole", "bytes", "chunks")


@pytest.mark.parametrize("log", LOGS, ids=lambda path: path.stem)
def test_a_real_log_through_a_terminal_ends_in_the_state_a_person_reads(
    console: Console, log: Path
) -> None:
    """Every log of tests/core/consoles/logs (their sources are in their headers) through a real
    pseudo-terminal to ``espdfu monitor --json``, its last line without a newline, in one piece,
    byte by byte or in random chunks and with CRLF or LF, by turns: the monitor ends in the
    state the log's header says (a board silent at its end: in the state before the silence,
    which comes only after SILENT_S)."""
    real = read_log(log)
    turn = LOGS.index(log)
    how = _WAYS[turn % len(_WAYS)]
    data = real.body.replace(b"\n", b"\r\n") if turn % 2 == 0 else real.body
    splitter = Splitter()
    lines = [*splitter.feed(data, 0.0), *splitter.flush(0.0)]
    process = start(console.path, "--json", "--timeout", "30")
    seen: list[str] = []
    wait_for(process, '"open"', seen)
    for chunk, _ in chunks(data, how, log.stem):
        os.write(console.master, chunk)
    # Every line but the last is shown as its newline is read; then nothing waits unread, and
    # the stop shows the last line, which has no newline.
    assert process.stdout is not None
    while sum('"text"' in line for line in seen) < len(lines) - 1:
        seen.append(process.stdout.readline().rstrip("\n"))
        assert seen[-1], seen
    console.wait_until_read()
    process.send_signal(signal.SIGINT)
    _, out, _ = finish(process)
    records = [json.loads(line) for line in seen + out.splitlines()]
    said = [record for record in records if "text" in record]
    assert [record["text"] for record in said] == [line.text for line in lines]  # the last too
    expected = real.state
    if expected is RunState.SILENT:
        expected = _before_the_silence(real)
    assert said[-1]["state"] == expected.word, (said[-1], real.expect)
    if real.note:
        assert real.note in said[-1]["words"]


def _before_the_silence(log: Log) -> RunState:
    health = Health()
    for line in Splitter().feed(log.body + b"\n", 0.0):
        health.see(line)
    return health.state
