"""A board's console as lines and states: ESP-IDF's log format, resets, panics, garbage."""

from __future__ import annotations

import pytest
import serial.tools.list_ports

from espdfu.cli.monitor import alternatives
from espdfu.consoles import ports
from espdfu.consoles.health import STABLE_S, Health, RunState
from espdfu.consoles.lines import MAX_LINE, Level, Splitter, parse
from espdfu.errors import InputError


def lines(data: bytes, at: float = 0.0) -> list[str]:
    splitter = Splitter()
    return [line.text for line in splitter.feed(data, at)]


def test_a_coloured_log_line_gives_its_level_and_tag_without_colour_codes() -> None:
    line = parse("\x1b[0;31mE (1234) wifi: connect failed\x1b[0m", 1.0)
    assert (line.level, line.tag, line.text) == (
        Level.ERROR,
        "wifi",
        "E (1234) wifi: connect failed",
    )
    assert parse("W (12:00:01.250) app: low", 0).level is Level.WARN  # a wall-clock time
    assert parse("Hello world!", 0).level is None


def test_a_backtrace_line_gives_its_program_counters() -> None:
    line = parse("Backtrace: 0x40081234:0x3ffb0000 0x400d5678:0x3ffb0020 |<-CORRUPTED", 0)
    assert line.backtrace == (0x40081234, 0x400D5678)
    assert parse("PC      : 0x40081234", 0).backtrace == ()


def test_lines_are_split_on_newlines_across_reads_and_lose_their_carriage_return() -> None:
    splitter = Splitter()
    assert [line.text for line in splitter.feed(b"I (1) a: one\r\nI (2) a: tw", 0)] == [
        "I (1) a: one"
    ]
    assert [line.text for line in splitter.feed(b"o\r\n", 1)] == ["I (2) a: two"]
    assert list(splitter.feed(b"half", 2)) == []
    assert [line.text for line in splitter.flush(3)] == ["half"]


def test_an_endless_line_is_cut_into_bounded_pieces() -> None:
    splitter = Splitter()
    pieces = list(splitter.feed(b"x" * (MAX_LINE * 2 + 10), 0))
    assert [len(piece.text) for piece in pieces] == [MAX_LINE, MAX_LINE]
    assert all(piece.cut for piece in pieces)
    assert [line.text for line in splitter.flush(1)] == ["x" * 10]
    long_then_end = list(Splitter().feed(b"y" * (MAX_LINE + 5) + b"\n", 0))
    assert [len(line.text) for line in long_then_end] == [MAX_LINE, 5]


def test_binary_garbage_never_reaches_the_terminal_as_control_characters() -> None:
    garbage = bytes(range(256)) * 3 + b"\n"
    text = "".join(lines(garbage))
    assert len(text) > 700  # everything but the newlines, shown
    assert not any(ord(char) < 0x20 and char != "\t" for char in text)
    assert "\x7f" not in text
    assert "\x1b" not in "".join(lines(b"\x1b\x1b[2J\x1bc tail\n"))


def test_a_console_opened_on_an_app_already_running_says_it_runs() -> None:
    health = Health()
    assert health.see(parse("I (55000) app: temperature 20.9 °C", 0)) is RunState.RUNNING


def test_boot_run_and_panic_are_told_apart() -> None:
    health = Health()
    assert health.state is RunState.UNKNOWN
    assert health.see(parse("ESP-ROM:esp32s2-rc4-20191025", 0)) is RunState.BOOTING
    assert health.see(parse("I (310) main_task: Calling app_main()", 1)) is RunState.RUNNING
    assert health.see(parse("I (400) app: hello", 2)) is RunState.RUNNING
    panic = "Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled."
    assert health.see(parse(panic, 60)) is RunState.PANICKED  # after a minute of running
    health.see(parse("PC      : 0x400d1234  PS      : 0x00060030", 60))
    health.see(parse("Backtrace: 0x400d1234:0x3ffb0000 0x40081000:0x3ffb0020", 60))
    health.see(parse("ELF file SHA256: 0123", 60))
    assert [line.text[:9] for line in health.panic] == ["Guru Medi", "PC      :", "Backtrace"]


def test_an_abort_at_every_boot_is_crashing_at_boot_until_an_app_runs_a_while() -> None:
    """It read "rebooting in a loop" after three boots within 30 s, and "booting" after."""
    health = Health()
    for at in (0.0, 5.0, 10.0):
        health.see(parse("rst:0xc (RTC_SW_CPU_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)", at))
        health.see(parse("abort() was called at PC 0x40081234 on core 0", at + 1))
    assert health.reading().words == "crashing at boot: abort(), 3 boots"
    assert health.see(parse("ESP-ROM:esp32s2-rc4-20191025", 41)) is RunState.CRASHING
    assert health.see(parse("I (310) main_task: Calling app_main()", 41)) is RunState.CRASHING
    assert health.see(parse("I (9000) app: still here", 41 + STABLE_S)) is RunState.RUNNING
    assert health.reading().words == "running · panicked 45 s ago (abort())"


def test_boots_spread_over_minutes_are_not_a_loop() -> None:
    health = Health()
    for at in (0.0, 40.0, 80.0):
        assert health.see(parse("ESP-ROM:esp32s3-20210327", at)) is RunState.BOOTING


@pytest.mark.parametrize(
    ("pattern", "count"),
    [("PASS|FAIL", 2), ("(A|B)|C", 2), ("[|]x|y", 2), (r"a\|b", 1), ("only", 1)],
)
def test_until_splits_only_top_level_alternatives(pattern: str, count: int) -> None:
    assert len(alternatives(pattern)) == count


def test_until_refuses_a_pattern_that_is_not_a_regular_expression() -> None:
    with pytest.raises(InputError, match="not a regular expression"):
        alternatives("PASS|(FAIL")


def test_readers_waiting_for_consoles_share_one_look_at_the_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looks: list[int] = []

    def comports() -> list[object]:
        looks.append(1)
        return []

    monkeypatch.setattr(ports, "_ports_seen", (float("-inf"), []))
    monkeypatch.setattr(serial.tools.list_ports, "comports", comports)
    assert [ports.port_at(f"1-1.{n}") for n in range(8)] == [None] * 8
    assert len(looks) == 1
