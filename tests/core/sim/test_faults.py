"""Each fault action, seen from the host: one-shot, counted per request kind since plug-in."""

from __future__ import annotations

import errno

import pytest
import usb.core

from espdfu.sim import BoardKind, Fault, SimBackend, SimBus, TimeModel, VirtualBoard
from espdfu.usb.protocol import (
    BusyTooLongError,
    DeviceStatusError,
    ProtocolError,
    Request,
    State,
    Status,
    StatusReply,
    download,
)
from tests.helpers.simhost import (
    Host,
    ModelClock,
    device_at,
    expected_flash,
    image,
    payload_of,
    run,
)


def faulty(
    *faults: Fault, kind: BoardKind = BoardKind.DFU, model: TimeModel | None = None
) -> tuple[VirtualBoard, Host]:
    """A board with ``faults`` and a host on its DFU interface, on a model clock."""
    clock = ModelClock()
    bus = SimBus(model or TimeModel.instant(), clock)
    board = bus.plug(VirtualBoard("esp32s2", kind, faults=faults))
    interface = 2 if kind is BoardKind.ROM else 0
    return board, Host(device_at(SimBackend(bus), board.path), interface, clock)


def usb_errno(call: object) -> int:
    with pytest.raises(usb.core.USBError) as failed:
        call()  # type: ignore[operator]
    return int(failed.value.errno)


def test_unplug_takes_the_board_off_the_bus_until_replugged() -> None:
    dfu_bin, _ = image()
    board, host = faulty(Fault("unplug", on=Request.DNLOAD, nth=100))
    with pytest.raises(usb.core.USBError) as gone:
        host.download(payload_of(dfu_bin))
    assert gone.value.errno == errno.ENODEV
    assert board.requests[Request.DNLOAD] == 100 and board.faults == []
    assert not board.present
    board.press_reset(boot=True)  # no power: nothing happens
    assert not board.present
    board.replug()
    assert board.mode == "dfu"


def test_stall_stalls_that_request_into_dferror() -> None:
    board, host = faulty(Fault("stall", on=Request.GETSTATUS, nth=2))
    assert host.status().state is State.DFU_IDLE
    assert usb_errno(host.status) == errno.EPIPE
    assert host.status() == StatusReply(Status.STALLEDPKT, 0, State.ERROR)
    assert board.faults == []


def test_timeout_raises_after_the_hosts_timeout_scaled() -> None:
    board, host = faulty(Fault("timeout"), model=TimeModel.scaled(0.01))
    started = host.clock.now()
    with pytest.raises(usb.core.USBTimeoutError) as timed_out:
        host.dev.ctrl_transfer(0xA1, Request.GETSTATUS, 0, 0, 6, timeout=1000)
    assert host.clock.now() - started == pytest.approx(0.01)  # 1000 ms × 0.01
    assert (timed_out.value.errno, timed_out.value.backend_error_code) == (errno.ETIMEDOUT, -7)
    assert board.device_time_s == pytest.approx(0.01)
    assert host.status().state is State.DFU_IDLE  # the request was never taken


def test_status_on_getstatus_reports_it_in_that_reply() -> None:
    _, host = faulty(Fault("status", on=Request.GETSTATUS, status=Status.ERASE))
    assert host.status() == StatusReply(Status.ERASE, 0, State.ERROR)
    host.out(Request.CLRSTATUS)
    assert host.status() == StatusReply(Status.OK, 0, State.DFU_IDLE)


def test_status_on_dnload_takes_the_block_and_fails_the_next_getstatus() -> None:
    dfu_bin, _ = image()
    board, host = faulty(Fault("status", on=Request.DNLOAD, nth=3, status=Status.WRITE))
    with pytest.raises(DeviceStatusError) as failed:
        host.download(payload_of(dfu_bin))
    assert failed.value.status is Status.WRITE
    assert board.requests[Request.DNLOAD] == 3  # the third block was the last sent


def test_status_on_clrstatus_outlives_the_clear() -> None:
    board, host = faulty(
        Fault("status", on=Request.GETSTATUS),
        Fault("status", Request.CLRSTATUS, status=Status.ERASE),
    )
    assert host.status() == StatusReply(Status.UNKNOWN, 0, State.ERROR)
    host.out(Request.CLRSTATUS)
    assert host.status() == StatusReply(Status.ERASE, 0, State.ERROR)
    host.out(Request.CLRSTATUS)
    assert host.status() == StatusReply(Status.OK, 0, State.DFU_IDLE)
    assert board.faults == []


def test_busy_after_the_zero_length_dnload_answers_dfumanifest() -> None:
    dfu_bin, _ = image()
    payload = payload_of(dfu_bin)
    blocks = -(-len(payload) // 64)
    board, host = faulty(Fault("busy", on=Request.DNLOAD, nth=blocks + 1))
    with pytest.raises(BusyTooLongError, match=r"dfuMANIFEST\) for over 0.05 s during manif"):
        run(host.dev, download(payload, 64, busy_limit_ms=50))
    assert host.state() is State.MANIFEST
    assert board.faults == []


def test_busy_answers_dnbusy_until_the_board_is_reset() -> None:
    board, host = faulty(Fault("busy", on=Request.GETSTATE))
    assert host.state() is State.DNBUSY
    replies = [host.status() for _ in range(5)]
    assert {(r.state, r.poll_timeout_ms) for r in replies} == {(State.DNBUSY, 0)}
    assert usb_errno(lambda: host.out(Request.ABORT)) == errno.EPIPE
    board.press_reset(boot=True)
    assert board.mode == "rom"
    (runtime,) = usb.core.find(find_all=True, backend=host.dev.backend)
    assert Host(runtime, 2).status().state is State.APP_IDLE


def test_a_host_gives_up_on_a_board_stuck_busy() -> None:
    dfu_bin, _ = image()
    board, host = faulty(Fault("busy", on=Request.DNLOAD, nth=2))
    with pytest.raises(BusyTooLongError):
        run(host.dev, download(payload_of(dfu_bin), 64, busy_limit_ms=50))
    assert board.requests[Request.DNLOAD] == 2  # the second block was taken


@pytest.mark.parametrize("on", [Request.GETSTATUS, Request.GETSTATE])
def test_garbage_returns_unknown_codes_of_the_asked_length(on: Request) -> None:
    _, host = faulty(Fault("garbage", on=on))
    length = 6 if on is Request.GETSTATUS else 1
    raw = host.raw_in(on, length)
    assert len(raw) == length and raw[0] == 0xEE
    if on is Request.GETSTATUS:
        with pytest.raises(ProtocolError, match="unknown codes"):
            StatusReply.decode(raw)
    assert host.state() is State.DFU_IDLE  # one-shot


def test_short_returns_fewer_bytes_than_asked() -> None:
    _, host = faulty(Fault("short"))
    assert len(host.raw_in(Request.GETSTATUS, 6)) == 3
    assert len(host.raw_in(Request.GETSTATUS, 6)) == 6


def test_in_only_faults_wait_for_an_in_request() -> None:
    board, host = faulty(Fault("short"))
    host.out(Request.ABORT)
    assert board.faults == [Fault("short")]
    assert len(host.raw_in(Request.GETSTATE, 1)) == 0


def test_a_fault_counts_requests_since_the_board_was_plugged() -> None:
    board, host = faulty(kind=BoardKind.ROM)
    for _ in range(3):
        host.status()
    board.faults.append(Fault("stall", on=Request.GETSTATUS, nth=2))  # already reached: next
    assert usb_errno(host.status) == errno.EPIPE
    board.replug()
    assert board.requests == {}


def test_several_faults_fire_in_turn() -> None:
    dfu_bin, files = image()
    board, host = faulty(
        Fault("stall", on=Request.DNLOAD, nth=10),
        Fault("short", on=Request.GETSTATUS, nth=30),
    )
    payload = payload_of(dfu_bin)
    with pytest.raises(usb.core.USBError):
        host.download(payload)
    with pytest.raises(ProtocolError, match="3 bytes"):
        host.download(payload)  # recovers from dfuERROR, then meets the short reply
    assert host.download(payload).name == "IDLE"
    assert board.faults == [] and board.flash == expected_flash(files)


def test_faults_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="counts from 1"):
        Fault("stall", nth=0)
