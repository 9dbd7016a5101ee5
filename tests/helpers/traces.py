"""What a flash's trace must hold: the DFU requests the protocol mandates, every one, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from espdfu.usb.protocol import State, StatusReply

_CLASS = 0x20
_BUSY = (State.DNLOAD_SYNC, State.DNBUSY, State.MANIFEST_SYNC, State.MANIFEST)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a trace file, each one JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def dfu_requests(lines: list[dict[str, Any]], board: str) -> list[dict[str, Any]]:
    """The DFU (class) requests of ``board``'s flash, in the trace's order."""
    return [
        line
        for line in lines
        if line["event"] == "request" and line["board"] == board and line["type"] & 0x60 == _CLASS
    ]


def status(request: dict[str, Any]) -> State:
    assert request["request"] == "GETSTATUS" and "error" not in request, request
    return StatusReply.decode(bytes.fromhex(request["answer"])).state


def assert_flash_sequence(
    lines: list[dict[str, Any]], board: str, payload: int, *, transfer: int = 64, detach: bool
) -> None:
    """``board``'s requests are DFU 1.1's download of ``payload`` bytes, and nothing else:
    DETACH (when ``detach``) and the board back on the bus, GETSTATUS in dfuIDLE, each block's
    DNLOAD (numbered from 0, ``transfer`` bytes, the last one shorter) with its GETSTATUS polls
    until dfuDNLOAD-IDLE, the zero-length DNLOAD and its polls until dfuIDLE."""
    requests = dfu_requests(lines, board)
    at = 0
    if detach:
        assert requests[0]["request"] == "DETACH", requests[:2]
        mine = [line for line in lines if line.get("board") == board]
        detached = next(n for n, line in enumerate(mine) if line is requests[0])
        again = next(n for n, line in enumerate(mine) if line is requests[1])
        assert "back" in [line["event"] for line in mine[detached:again]], "no re-enumeration"
        at = 1
    assert status(requests[at]) is State.DFU_IDLE, requests[at]
    at += 1
    blocks = -(-payload // transfer)
    for block in range(blocks + 1):
        size = min(transfer, payload - block * transfer)
        dnload = requests[at]
        assert dnload["request"] == "DNLOAD" and dnload["value"] == block & 0xFFFF, dnload
        assert dnload.get("data_len", 0) == size == dnload["length"], dnload
        at += 1
        ends = (State.DNLOAD_IDLE,) if size else (State.DFU_IDLE, State.MANIFEST_WAIT_RESET)
        while (state := status(requests[at])) not in ends:
            assert state in _BUSY, (block, state)
            at += 1
        at += 1
    assert at == len(requests), requests[at:]
