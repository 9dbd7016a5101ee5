"""A flash's trace (espdfu.usb.trace): every request in order, the decisions, nothing when off."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from espdfu.flashing.flasher import FlashOptions, flash, flash_many
from espdfu.sim import Fault, TimeModel
from espdfu.usb.protocol import Request
from espdfu.usb.trace import TraceFile, TraceFolder, read_trace, readable, trace_files
from espdfu.usb.transport import DfuInterface
from tests.helpers.boardworld import image, world
from tests.helpers.traces import assert_flash_sequence, dfu_requests, read_lines


def traced_flash(
    spec: str, path: Path, time: TimeModel | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Flash every board of ``spec`` at once, traced to ``path``: the trace, the payload's size."""
    w = world(spec, time)
    dfu_image = image()
    trace = TraceFile(path)
    results = flash_many(w.usb, w.paths, dfu_image, options=FlashOptions(trace=trace))
    trace.close()
    assert all(result.ok for result in results), results
    return read_lines(path), len(dfu_image.payload)


def test_a_virtual_flash_trace_holds_every_request_the_board_received_in_order(
    tmp_path: Path,
) -> None:
    w = world("esp32s2")
    (path,) = w.paths
    dfu_image = image()
    trace = TraceFile(tmp_path / "trace.jsonl")
    result = flash(w.usb, path, dfu_image, options=FlashOptions(trace=trace))
    trace.close()
    assert result.ok, result.message
    lines = read_lines(tmp_path / "trace.jsonl")
    assert_flash_sequence(lines, path, len(dfu_image.payload), detach=True)
    traced = Counter(Request[line["request"]] for line in dfu_requests(lines, path))
    assert traced == w.board(path).requests  # the simulator's own count of what it received
    assert lines[0]["event"] == "trace" and lines[0]["format"] == 1
    assert [line["t"] for line in lines] == sorted(line["t"] for line in lines)


def test_the_trace_says_each_decision_and_the_descriptors_read(tmp_path: Path) -> None:
    lines, _ = traced_flash("esp32s2", tmp_path / "trace.jsonl")
    events = [line["event"] for line in lines]
    for event in ("flash", "attempt", "board", "detach", "waiting", "back", "transfer_size",
                  "erase_allowance", "ending", "result"):  # fmt: skip
        assert event in events, event
    rom, dfu = (line for line in lines if line["event"] == "board")
    assert rom["mode"] == "rom" and dfu["mode"] == "dfu"
    assert rom["descriptors"]["vid_pid"] == "303a:0002"
    assert rom["descriptors"]["address"] != dfu["descriptors"]["address"]  # re-enumerated
    assert {"number": 2, "class": "fe/01/01"}.items() <= rom["descriptors"]["interfaces"][2].items()
    (detach,) = (line for line in lines if line["event"] == "detach")
    assert detach["will_detach"] is True and detach["wValue"] == 1000
    allowances = [line for line in lines if line["event"] == "erase_allowance"]
    assert [line["address"] for line in allowances] == ["0x1000", "0x8000", "0x10000"]
    assert all(line["timeout_ms"] > 5000 for line in allowances)
    assert lines[-1]["event"] == "result" and lines[-1]["ok"] is True


def test_boards_flashed_at_once_share_one_file_each_line_whole(tmp_path: Path) -> None:
    lines, payload = traced_flash("esp32s2*4", tmp_path / "trace.jsonl")
    boards = {line["board"] for line in lines[1:]}
    assert boards == {"1-1.1", "1-1.2", "1-1.3", "1-1.4"}
    for board in boards:
        assert_flash_sequence(lines, board, payload, detach=True)


def test_a_busy_board_s_poll_waits_are_traced(tmp_path: Path) -> None:
    """A board that reports its erases as dfuDNBUSY: each wait for its poll timeout is said."""
    fast = TimeModel.scaled(0.01)  # poll timeouts of a few milliseconds, not 0
    lines, payload = traced_flash("esp32s2:dnbusy:manifest", tmp_path / "trace.jsonl", fast)
    assert_flash_sequence(lines, "1-1.1", payload, detach=True)
    waits = [line for line in lines if line["event"] == "poll_wait"]
    assert waits and all(line["ms"] > 0 for line in waits)


def test_a_failed_request_its_recovery_and_the_retry_are_traced(tmp_path: Path) -> None:
    w = world("esp32s2-dfu")
    (path,) = w.paths
    w.board(path).faults.append(Fault("stall", Request.DNLOAD, nth=1))
    trace = TraceFile(tmp_path / "trace.jsonl")
    result = flash(w.usb, path, image(), options=FlashOptions(trace=trace))
    trace.close()
    assert result.ok and result.attempts == 2
    lines = read_lines(tmp_path / "trace.jsonl")
    (stalled,) = (line for line in lines if line["event"] == "request" and "error" in line)
    assert stalled["request"] == "DNLOAD" and stalled["error"].startswith("Stalled")
    after = [line["event"] for line in lines[lines.index(stalled) :]]
    story = [event for event in after if event in ("recover", "recovered", "failed", "attempt")]
    assert story == ["recover", "recovered", "failed", "attempt"], after
    assert [line["number"] for line in lines if line["event"] == "attempt"] == [1, 2]


def test_an_untraced_flash_wraps_nothing(tmp_path: Path) -> None:
    """Tracing costs nothing when off: the requests go to the transport's own function."""
    w = world("esp32s2-dfu")
    (path,) = w.paths
    plain = DfuInterface(w.usb.find(path), 0)
    plain.claim()
    assert "traced" not in plain._control.__qualname__
    plain.close()
    trace = TraceFile(tmp_path / "trace.jsonl")
    traced = DfuInterface(w.usb.find(path), 0, trace=trace.open(path))
    traced.claim()
    assert "traced" in traced._control.__qualname__
    traced.close()
    trace.close()


def test_a_folder_keeps_a_file_per_flash_and_only_the_newest(tmp_path: Path) -> None:
    w = world("esp32s2-dfu")
    (path,) = w.paths
    folder = tmp_path / "traces"
    options = FlashOptions(trace=TraceFolder(folder, keep=2))
    for _ in range(3):
        assert flash(w.usb, path, image(), options=options).ok
    kept = trace_files(folder)
    assert len(kept) == 2 and all(path in file.name for file in kept)
    assert all(read_lines(file)[-1]["event"] == "result" for file in kept)


def test_a_trace_that_cannot_be_written_does_not_stop_the_flash(tmp_path: Path) -> None:
    w = world("esp32s2-dfu")
    (path,) = w.paths
    blocked = tmp_path / "file"
    blocked.write_text("")
    options = FlashOptions(trace=TraceFolder(blocked / "traces"))
    result = flash(w.usb, path, image(), options=options)
    assert result.ok
    assert "The flash was not traced: cannot create" in result.message


def test_the_readable_form_decodes_each_status(tmp_path: Path) -> None:
    traced_flash("esp32s2", tmp_path / "trace.jsonl")
    text = list(readable(read_trace(tmp_path / "trace.jsonl")))
    assert any("DETACH" in line and "wValue=1000 wIndex=2" in line for line in text)
    assert any("GETSTATUS" in line and "OK dfuDNLOAD-IDLE poll 0 ms" in line for line in text)
    assert text[-1].split()[1:3] == ["1-1.1", "result:"]
    board = next(n for n, line in enumerate(text) if " board: mode=rom " in line)
    assert text[board + 1].split() == [
        "functional:", "attributes=9", "detach_timeout_ms=1000", "transfer_size=64",
        "dfu_version=272",
    ]  # fmt: skip
    assert "interfaces 2: number=2 class=fe/01/01 extra=092109e80340001001" in text[board + 5]
