"""Downloads through pyusb into the ROM's state machine: whole archives, and every refusal."""

from __future__ import annotations

import errno

import pytest
import usb.core

from espdfu.files import dfufile
from espdfu.files.dfufile import FLAG_IGNORE_MD5, FLAG_NOERASE, FlashFile
from espdfu.sim import BoardKind, SimBackend, SimBus, TimeModel, VirtualBoard
from espdfu.usb.protocol import DeviceStatusError, Ending, Request, State, Status
from tests.helpers.archive import archive, record
from tests.helpers.simhost import MB, Host, device_at, expected_flash, image, one_board, payload_of


def stalls(call: object) -> None:
    with pytest.raises(usb.core.USBError) as stalled:
        call()  # type: ignore[operator]
    assert (stalled.value.errno, stalled.value.backend_error_code) == (errno.EPIPE, -9)


@pytest.mark.parametrize(("chip", "pid"), [("esp32s2", 0x0002), ("esp32s3", 0x0009)])
def test_a_dfu_bin_lands_at_its_addresses_in_erased_sectors(chip: str, pid: int) -> None:
    dfu_bin, files = image(pid)
    _, board, dev = one_board(chip, BoardKind.DFU)
    assert dev.idProduct == pid
    assert Host(dev).download(payload_of(dfu_bin)) is Ending.IDLE
    assert board.flash == expected_flash(files)
    assert board.downloads_completed == 1
    parsed = dfufile.parse(dfu_bin)
    assert board.last_files == [(e.name, e.address, e.size, True) for e in parsed.entries]
    assert [name for name, *_ in board.last_files][2:] == ["app.bin", "app.bin.1", "app.bin.2"]
    assert board.read_flash(0x10000, 16) == files[2].data[:16]


@pytest.mark.parametrize("dfu11", [False, True], ids=["as-the-rom", "dfu11-variant"])
def test_the_state_machine_step_by_step(dfu11: bool) -> None:
    """The ROM holds the bus while it erases and answers dfuIDLE straight after the download;
    the DFU 1.1 variant says dfuDNBUSY for each erase and goes through dfuMANIFEST."""
    dfu_bin, files = image()
    payload = payload_of(dfu_bin)
    _, board, dev = one_board(erase_busy=dfu11, manifest_poll=dfu11)
    host = Host(dev)
    host.dnload(0, payload[:64])
    assert host.state() is State.DNLOAD_SYNC
    assert host.status().state is State.DNLOAD_IDLE  # dfuinfo0.dat erases nothing
    states = [reply.state for reply in host.send(payload[64:], first_block=1)]
    assert states.count(State.DNBUSY) == (5 if dfu11 else 0)  # one erase per file and part
    assert states[-1] is State.DNLOAD_IDLE
    assert State.ERROR not in states
    blocks = -(-len(payload) // 64)
    host.dnload(blocks, b"")
    ending = [State.MANIFEST] if dfu11 else []
    assert [host.status().state for _ in range(3)] == [
        *ending,
        State.DFU_IDLE,
        State.DFU_IDLE,
        State.DFU_IDLE,
    ][:3]
    assert board.flash == expected_flash(files)
    assert board.downloads_completed == 1


def test_a_download_can_run_again() -> None:
    first, _ = image(seed=1)
    second, files = image(seed=2)
    _, board, dev = one_board()
    Host(dev).download(payload_of(first))
    Host(dev).download(payload_of(second))
    assert board.downloads_completed == 2
    assert board.flash == expected_flash(files)


def test_block_numbers_must_follow_on_and_wrap_at_16_bits() -> None:
    _, board, dev = one_board()
    host = Host(dev)
    host.dnload(0xFFFF, b"0707")
    host.status()
    host.dnload(0, b"01")  # 0xFFFF + 1 wraps to 0
    assert host.status().state is State.DNLOAD_IDLE
    stalls(lambda: host.dnload(5, b"00"))
    assert (host.status().status, host.state()) == (Status.STALLEDPKT, State.ERROR)
    host.out(Request.CLRSTATUS)
    assert host.status().state is State.DFU_IDLE
    assert board.requests[Request.DNLOAD] == 3


def test_what_the_rom_refuses_stalls_into_dferror() -> None:
    _, _, dev = one_board()
    host = Host(dev)
    stalls(lambda: host.dnload(0, b""))  # nothing to download
    assert host.status().status is Status.STALLEDPKT
    stalls(lambda: host.out(Request.DNLOAD, 0, b"x"))  # dfuERROR takes no download
    host.out(Request.CLRSTATUS)
    stalls(lambda: host.raw_in(Request.UPLOAD, 64))  # the ROM has no upload
    host.out(Request.CLRSTATUS)
    stalls(lambda: host.out(Request.DETACH, 1000))  # already in DFU mode
    host.out(Request.CLRSTATUS)
    stalls(lambda: host.dnload(0, bytes(65)))  # beyond wTransferSize
    host.out(Request.CLRSTATUS)
    stalls(lambda: dev.ctrl_transfer(0x21, Request.GETSTATUS, 0, 0, b""))  # wrong direction
    host.out(Request.CLRSTATUS)
    stalls(lambda: dev.ctrl_transfer(0x21, 7, 0, 0, b""))  # not a DFU request
    host.out(Request.CLRSTATUS)
    stalls(lambda: host.out(Request.CLRSTATUS))  # nothing to clear
    assert host.status().status is Status.STALLEDPKT


def test_the_runtime_answers_status_and_detach_only() -> None:
    _, _, dev = one_board(kind=BoardKind.ROM)
    host = Host(dev, interface=2)
    assert (host.status().state, host.state()) == (State.APP_IDLE, State.APP_IDLE)
    stalls(lambda: host.dnload(0, b"x"))
    stalls(lambda: host.out(Request.CLRSTATUS))
    assert host.status().status is Status.OK  # a runtime has no dfuERROR
    stalls(lambda: dev.ctrl_transfer(0x21, 0x20, 0, 2, bytes(7)))  # no CDC class requests here


def test_abort_keeps_what_was_written() -> None:
    dfu_bin, files = image()
    payload = payload_of(dfu_bin)
    _, board, dev = one_board()
    host = Host(dev)
    host.send(payload[: 64 * 400])
    host.out(Request.ABORT)
    assert host.status().state is State.DFU_IDLE
    assert board.read_flash(0x1000, 20_000) == files[0].data
    assert board.downloads_completed == 0


def download_error(payload: bytes, board: VirtualBoard | None = None) -> Status:
    bus = SimBus(TimeModel.instant())
    board = bus.plug(board or VirtualBoard("esp32s2", BoardKind.DFU))
    dev = device_at(SimBackend(bus), board.path)
    with pytest.raises(DeviceStatusError) as failed:
        Host(dev).download(payload)
    return failed.value.status


def test_a_wrong_md5_is_err_verify() -> None:
    data = bytes(range(256)) * 20
    bad = archive([record(0x10000, b"app.bin", data, md5=bytes(16))], [(b"app.bin", data)])
    assert download_error(bad) is Status.VERIFY


def test_a_wrong_md5_passes_with_ignore_md5() -> None:
    data = bytes(range(256)) * 20
    flags = FLAG_IGNORE_MD5 | FLAG_NOERASE
    payload = archive([record(0, b"a.bin", data, flags, bytes(16))], [(b"a.bin", data)])
    _, board, dev = one_board()
    assert Host(dev).download(payload) is Ending.IDLE
    assert board.last_files == [("a.bin", 0, len(data), False)]
    assert board.read_flash(len(data), 4096 - len(data) % 4096) == bytes(4096 - len(data) % 4096)


def test_a_raw_firmware_image_is_err_file() -> None:
    assert download_error(b"\xe9" + bytes(1000)) is Status.FILE


def test_beyond_the_flash_is_err_address() -> None:
    files = [FlashFile(4 * MB - 4096, "app.bin", bytes(8192))]
    dfu_bin = dfufile.pack(files, pid=2, flash_size=8 * MB)  # a bigger flash than the board's
    assert download_error(payload_of(dfu_bin)) is Status.ADDRESS


def test_flash_params_limit_the_flash() -> None:
    files = [FlashFile(2 * MB, "data.bin", bytes(4096))]
    dfu_bin = dfufile.pack(files, pid=2, flash_size=2 * MB)
    big = VirtualBoard("esp32s2", BoardKind.DFU, flash_size=16 * MB)
    assert download_error(payload_of(dfu_bin), big) is Status.ADDRESS


def test_a_download_ended_early_is_err_notdone() -> None:
    dfu_bin, _ = image()
    payload = payload_of(dfu_bin)[: 64 * 100]
    assert download_error(payload) is Status.NOTDONE
