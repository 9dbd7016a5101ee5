"""Real console logs people posted (logs/*.log, sources in each header and logs/README.md),
read as a person reads them: each ends in the state its ``# expect:`` says, after the resets
its ``# resets:`` counts, with the reasons of ``# reasons:``.

Each log goes in whole, byte by byte and in random chunks, with LF and with CRLF line ends, its
last line without a newline (the console closes on it): the time a byte arrives is its offset at
115200 baud. A log whose board is silent at its end is read again :data:`SILENT_S` later.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from espdfu.consoles.health import SILENT_S, Health, Reading, RunState
from espdfu.consoles.lines import Splitter

LOGS = sorted((Path(__file__).parent / "logs").glob("*.log"))
BYTE_S = 10 / 115200
"""A byte's time on a 115200-baud wire (8 bits, a start and a stop bit)."""

_KEYS = re.compile(r"\w+\.c:\d+|\w+Prohibited|\w+_RST\b|abort\(\)|Brownout detector was triggered")
"""What of a crash's or a brownout's reason in ``# expect:`` the state's words must say."""
_STATES = {state.value: state for state in RunState}
_NOTES = {"running, panicked before": "panicked", "running with a warning": "task watchdog"}


@dataclass(frozen=True)
class Log:
    name: str
    body: bytes
    expect: str
    resets: int
    reasons: tuple[str | None, ...]

    @property
    def state(self) -> RunState:
        return next(state for word, state in _STATES.items() if self.expect.startswith(word))

    @property
    def note(self) -> str | None:
        return next((note for words, note in _NOTES.items() if self.expect.startswith(words)), None)

    @property
    def quoted(self) -> str | None:
        """The refusal a ``cannot boot`` expectation quotes, without its log prefix."""
        match = re.search(r'"(?:[EWI] (?:\(\d+\) )?[\w.]+: )?([^"]+)"', self.expect)
        return match[1] if match else None


def read_log(path: Path) -> Log:
    text = path.read_text("utf-8")
    head = dict(re.findall(r"^# (\w[\w ]*): (.*)$", text, re.M))
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))
    reasons: tuple[str | None, ...] = ()
    if head["reasons"] != "none":
        reasons = tuple(
            None if item.startswith("(not") else item
            for item in re.findall(r"rst:0x[0-9a-f]+ \([A-Z0-9_]+\)|\(not [^)]*\)", head["reasons"])
        )
    body = body.removesuffix("\n")  # the console closes on the last line
    return Log(path.name, body.encode(), head["expect"], int(head["resets"]), reasons)


def chunks(data: bytes, how: str, seed: str) -> Iterator[tuple[bytes, float]]:
    """The bytes as a reader gets them, each chunk with the time its last byte came."""
    if how == "whole":
        sizes = [len(data)]
    elif how == "bytes":
        sizes = [1] * len(data)
    else:
        rng = random.Random(seed)
        sizes = []
        while sum(sizes) < len(data):
            sizes.append(rng.choice([1, 2, 3, 7, 16, 64, 200, 1000]))
    offset = 0
    for size in sizes:
        yield data[offset : offset + size], (offset + size) * BYTE_S
        offset += size


def read(log: Log, how: str, crlf: bool) -> tuple[Health, float]:
    data = log.body.replace(b"\n", b"\r\n") if crlf else log.body
    health, splitter, at = Health(), Splitter(), 0.0
    for chunk, at in chunks(data, how, log.name):
        for line in splitter.feed(chunk, at):
            health.see(line)
    for line in splitter.flush(at):
        health.see(line)
    return health, at


@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
@pytest.mark.parametrize("how", ["whole", "bytes", "chunks"])
@pytest.mark.parametrize("path", LOGS, ids=[path.stem for path in LOGS])
def test_a_real_log_reads_as_its_poster_read_it(path: Path, how: str, crlf: bool) -> None:
    log = read_log(path)
    health, end = read(log, how, crlf)
    assert len(health.resets) == log.resets, [reset.reason for reset in health.resets]
    assert tuple(reset.reason or None for reset in health.resets) == log.reasons
    if log.state is RunState.SILENT:
        assert health.reading().state in (RunState.BOOTING, RunState.RUNNING)
        reading = health.reading(end + SILENT_S)
    else:
        reading = health.reading()
    assert reading.state is log.state, reading.words
    later = health.reading(end + 10 * SILENT_S)
    if log.state.troubled or log.state is RunState.DOWNLOAD:
        assert later.state is log.state, "trouble never goes quiet by itself"
    if log.state is RunState.RUNNING:
        assert (reading.note and reading.note.what) == log.note, reading.words
    for key in _KEYS.findall(log.expect):  # the reason the poster gives is said
        assert key in reading.words, reading.words
    if log.state is RunState.CANNOT_BOOT:
        assert log.quoted is not None
        assert any(line.startswith(log.quoted[:24]) for line in health.refusal), health.refusal


def _reading(path: Path) -> Reading:
    health, _ = read(read_log(path), "whole", crlf=False)
    return health.reading()


def test_the_corpus_has_every_state_a_person_would_say() -> None:
    states = {read_log(path).state for path in LOGS}
    assert states == set(RunState) - {RunState.UNKNOWN, RunState.PANICKED}
