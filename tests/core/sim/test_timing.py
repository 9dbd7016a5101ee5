"""The time model: its numbers, what a board bills hosts, and the strict poll timeouts.

The boards here run on a model clock (``ModelClock``): time moves only when the board or the
host sleeps, so every timing checked is the model's, never the machine's load. How the real
sleeps hold up on a real clock is benchmarks/bench_flash.py's to measure.
"""

from __future__ import annotations

import errno

import pytest
import usb.core

from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile, pack
from espdfu.sim import BoardKind, SimBackend, SimBus, TimeModel, VirtualBoard
from espdfu.usb import rom
from espdfu.usb.protocol import Request, State, Status
from tests.helpers.simhost import MB, Host, ModelClock, device_at, image, one_board, payload_of


def test_the_three_models() -> None:
    realistic = TimeModel.realistic()
    assert (realistic.scale, realistic.latency_s, realistic.reenumerate_delay_s) == (1, 0.001, 0.5)
    assert realistic == TimeModel()
    instant = TimeModel.instant()
    assert (instant.latency_s, instant.reenumerate_delay_s) == (0, 0)
    assert instant.poll_ms(150) == 0
    scaled = TimeModel.scaled(0.01)
    assert scaled.latency_s == pytest.approx(0.00001)
    assert [scaled.poll_ms(ms) for ms in (0, 25, 150, 1200)] == [0, 1, 2, 12]
    with pytest.raises(ValueError, match="negative"):
        TimeModel(scale=-1)


def test_erasing_costs_the_same_for_every_4_kib_sector() -> None:
    model = TimeModel()
    assert model.erase_ms_per_sector == rom.ERASE_MS_PER_SECTOR
    assert model.erase_ms(0x10000, 0x90000) == 128 * rom.ERASE_MS_PER_SECTOR
    assert model.erase_ms(0x1000, 0x6000) == 5 * rom.ERASE_MS_PER_SECTOR
    assert model.erase_ms(0x1000, 0x1000) == 0
    assert TimeModel(erase_ms_per_sector=7).erase_ms(0, 3 * 4096) == 21  # settable


def test_a_1_mib_dfu_bin_takes_about_40_seconds_realistically() -> None:
    """32.8 s for the 16,400 blocks (two 1 ms requests each) and 7.7 s of erasing."""
    app = bytes(range(256)) * 4096  # 1 MiB
    dfu_bin = pack([FlashFile(0x10000, "app.bin", app)], pid=2)
    model, clock = TimeModel.scaled(0.01), ModelClock()
    _, board, dev = one_board(time_model=model, clock=clock)
    Host(dev, clock=clock).download(payload_of(dfu_bin))
    assert 0.38 < board.device_time_s < 0.43  # × 100 for the realistic model
    assert clock.time - 100 == pytest.approx(board.device_time_s)  # the host waited all of it


@pytest.mark.parametrize("erase_busy", [False, True], ids=["held", "dfuDNBUSY"])
def test_device_time_is_latencies_plus_the_erases(erase_busy: bool) -> None:
    """Held requests (the ROM) or reported poll timeouts (the DFU 1.1 variant): the host waits
    the erases out either way, and the board bills them."""
    model, clock = TimeModel.scaled(0.01), ModelClock()
    dfu_bin, _ = image()
    _, board, dev = one_board(time_model=model, clock=clock, erase_busy=erase_busy)
    host = Host(dev, clock=clock)
    payload = payload_of(dfu_bin)
    replies = host.send(payload)
    transfers = board.requests.total()
    assert transfers == len(payload) // 64 + len(replies)
    polls = sum(reply.poll_timeout_ms for reply in replies)
    sectors = 5 + 1 + 16 + 16 + 5  # bootloader, partition table, the app's parts
    if erase_busy:
        assert polls == 2 + 1 + 5 + 5 + 2  # each erase's 30 ms a sector / 100, rounded
        erasing = polls / 1000
    else:
        assert polls == 0
        erasing = sectors * model.seconds(rom.ERASE_MS_PER_SECTOR)
    expected = transfers * model.latency_s + erasing
    assert board.device_time_s == pytest.approx(expected)
    assert clock.time - 100 == pytest.approx(expected)  # the host waited for every erase


def test_the_detach_reenumeration_is_billed() -> None:
    _, board, dev = one_board(kind=BoardKind.ROM, time_model=TimeModel.scaled(0.01))
    Host(dev, 2).out(Request.DETACH, 1000)
    assert board.device_time_s == pytest.approx(0.00001 + 0.005)


def strict_setup(strict: bool) -> tuple[VirtualBoard, Host, int]:
    """A board that reports its erases, just told to erase (15 ms at this scale): the host
    must now wait (on the model clock, ``host.clock``)."""
    clock = ModelClock()
    bus = SimBus(TimeModel.scaled(0.1), clock)
    board = bus.plug(VirtualBoard("esp32s2", BoardKind.DFU, strict_poll=strict, erase_busy=True))
    host = Host(device_at(SimBackend(bus), board.path), clock=clock)
    payload = payload_of(image()[0])
    offset = 0
    while True:
        host.dnload(offset // 64, payload[offset : offset + 64])
        reply = host.status(honour_poll=False)
        offset += 64
        if reply.state is State.DNBUSY:
            return board, host, reply.poll_timeout_ms
        clock.sleep(reply.poll_timeout_ms / 1000)


def test_a_request_before_the_poll_timeout_stalls() -> None:
    _, host, poll = strict_setup(strict=True)
    assert poll == 15  # the bootloader's 5 sectors: 150 ms × 0.1
    with pytest.raises(usb.core.USBError) as stalled:
        host.status()
    assert stalled.value.errno == errno.EPIPE
    host.clock.sleep(poll / 1000)
    assert (host.status().status, host.state()) == (Status.STALLEDPKT, State.ERROR)


def test_a_host_that_waits_exactly_the_poll_timeout_is_served() -> None:
    _, host, poll = strict_setup(strict=True)
    host.clock.sleep(poll / 1000 - 0.0001)  # a tenth of a millisecond early: stalled
    with pytest.raises(usb.core.USBError):
        host.status(honour_poll=False)
    _, host, poll = strict_setup(strict=True)
    host.clock.sleep(poll / 1000)
    assert host.status().state is State.DNLOAD_IDLE


def test_once_idle_the_next_block_and_its_status_may_come_at_once() -> None:
    """A poll timeout reported with dfuDNLOAD-IDLE holds no one back (dfu-util ignores it)."""
    clock = ModelClock()
    bus = SimBus(TimeModel(scale=0.1, block_write_ms=50.0), clock)  # 5 ms after every block
    board = bus.plug(VirtualBoard("esp32s2", BoardKind.DFU))
    host = Host(device_at(SimBackend(bus), board.path), clock=clock)
    payload = payload_of(image()[0])
    host.dnload(0, payload[:64])  # dfuinfo0.dat's header: nothing to erase
    reply = host.status(honour_poll=False)
    assert (reply.state, reply.poll_timeout_ms) == (State.DNLOAD_IDLE, 5)
    assert host.dnload(1, payload[64:128]) == 64  # at once: served
    assert host.status(honour_poll=False).state is State.DNLOAD_IDLE  # at once: served


def test_without_strict_polling_an_early_host_hears_busy() -> None:
    board, host, poll = strict_setup(strict=False)
    early = host.status(honour_poll=False)  # at the very start: all of it is left (a float
    assert early.state is State.DNBUSY and early.poll_timeout_ms == poll  # read 16 of 15 ms)
    billed = board.device_time_s
    host.clock.sleep(early.poll_timeout_ms / 1000)
    assert host.status().state is State.DNLOAD_IDLE
    assert board.device_time_s == pytest.approx(billed + 0.0001)  # early replies are not billed


def test_latencies_are_slept_and_a_late_wake_is_paid_back_by_the_next_sleep() -> None:
    """On a clock whose every sleep wakes 0.5 ms late, twenty 2 ms latencies take 40.5 ms, not
    50: each sleep is shortened by the last one's lateness; only the last is not paid back."""
    clock = ModelClock(late=0.0005)
    _, board, dev = one_board(time_model=TimeModel(request_s=0.002), clock=clock)
    host = Host(dev, clock=clock)
    for _ in range(20):
        host.state()
    assert board.device_time_s == pytest.approx(0.040)
    assert clock.time - 100 == pytest.approx(0.0405)


def test_a_flash_size_must_be_whole_sectors() -> None:
    with pytest.raises(ValueError, match="sectors"):
        VirtualBoard("esp32s2", flash_size=4 * MB + 1)


def test_a_host_with_a_short_request_timeout_fails_on_the_erase_as_dfu_util_does() -> None:
    """The ROM holds every request while it erases (esp-idf issue 6999): the GETSTATUS after the
    block that starts a large part times out, and the board answers again once it is done."""
    app = bytes(range(256)) * 1024  # 256 KiB, one part: 64 sectors at 5 ms = 0.32 s
    parsed = dfufile.parse(pack([FlashFile(0x10000, "app.bin", app)], pid=2, part_size=MB))
    (entry,) = parsed.entries
    clock = ModelClock()
    model = TimeModel(request_s=0, erase_ms_per_sector=5.0)
    _, board, dev = one_board(time_model=model, clock=clock)
    host = Host(dev, clock=clock)
    payload = parsed.payload
    timed_out_at = None
    for block, offset in enumerate(range(0, len(payload), 64)):
        host.dnload(block, payload[offset : offset + 64])
        try:
            bytes(dev.ctrl_transfer(0xA1, Request.GETSTATUS, 0, 0, 6, timeout=100))
        except usb.core.USBTimeoutError:
            timed_out_at = block
            break
    assert timed_out_at == entry.start // 64  # the block holding the app's first byte
    with pytest.raises(usb.core.USBTimeoutError):  # 0.1 s later, still erasing
        dev.ctrl_transfer(0xA1, Request.GETSTATUS, 0, 0, 6, timeout=100)
    clock.sleep(0.13)  # 0.33 s after the erase began, which takes 0.32 s
    assert host.status().state is State.DNLOAD_IDLE  # the erase is over; it answers again
    assert board.requests[Request.GETSTATUS] == timed_out_at + 1  # the lost ones never reached it
