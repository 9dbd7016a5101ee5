"""The ROM as it really is, met by the flasher: an erase that holds the bus, a DFU-mode PID that
nobody has published, and what a user is told about either (``espdfu.usb.rom``)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile
from espdfu.flashing.flasher import Failure, FlashOptions, Phase, Progress, flash
from espdfu.sim import BoardKind, Fault, SimBus, TimeModel, VirtualBoard, virtual_usb
from espdfu.usb import rom
from espdfu.usb.protocol import Request
from espdfu.usb.transport import Usb
from tests.helpers.boardworld import KIB, assert_flashed, image_files
from tests.helpers.command import espdfu

MIB = 1024 * KIB
SHORT_TIMEOUT_MS = 200
"""The flasher's ordinary request timeout in these tests: far below the erases they model."""


def one_board(board: VirtualBoard, time: TimeModel) -> tuple[Usb, VirtualBoard]:
    bus = SimBus(time)
    bus.plug(board)
    return virtual_usb(bus, "virtual boards"), board


def big_part_image(app_size: int = MIB) -> tuple[dfufile.DfuImage, list[FlashFile]]:
    """A dfu.bin whose app is one part of ``app_size`` bytes, as ESP-IDF v4.2 wrote them."""
    files = image_files(app_size=app_size)
    data = dfufile.pack(files, pid=0x0002, flash_size=4 * MIB, part_size=4 * MIB)
    return dfufile.parse(data), files


def erase_time(ms_per_sector: float) -> TimeModel:
    """Real time, no request latency, and the ROM's erase at ``ms_per_sector``."""
    return TimeModel(request_s=0, erase_ms_per_sector=ms_per_sector, reenumerate_s=0.01)


def test_an_erase_longer_than_a_request_timeout_is_waited_out_and_shown() -> None:
    """256 sectors at 2 ms: the board answers nothing for 0.5 s, while every other request of
    this flash may take 0.2 s at most."""
    image, files = big_part_image()
    usb, board = one_board(VirtualBoard("esp32s2", BoardKind.ROM), erase_time(2.0))
    seen: list[Progress] = []
    options = FlashOptions(timeout_ms=SHORT_TIMEOUT_MS)
    result = flash(usb, board.path, image, options=options, progress=seen.append)
    assert result.ok, result.message
    assert_flashed(board, files)
    erasing = [p for p in seen if p.phase is Phase.ERASING]
    assert [(p.erase.name, p.erase.size) for p in erasing if p.erase] == [("app.bin", MIB)]
    assert erasing[0].activity == "erasing 1 MB at 0x10000 (~8 s)"
    assert erasing[0].eta_s is not None and erasing[0].eta_s >= 7.6  # the erase is in it
    phases = [p.phase for p in seen]
    after = phases.index(Phase.ERASING)
    assert phases[after + 1] is Phase.DOWNLOADING  # back to the bar once the erase is done


def test_small_erases_only_count_in_the_estimate() -> None:
    """The bootloader's and the partition table's erases take a fraction of a second: no
    phase of their own, but their requests still get an erase's allowance."""
    image, _ = big_part_image(app_size=40 * KIB)
    usb, board = one_board(VirtualBoard("esp32s2", BoardKind.DFU), erase_time(20.0))
    seen: list[Progress] = []
    options = FlashOptions(timeout_ms=SHORT_TIMEOUT_MS)  # the bootloader's erase: 100 ms
    assert flash(usb, board.path, image, options=options, progress=seen.append).ok
    assert Phase.ERASING not in {p.phase for p in seen}


def test_a_cable_pulled_during_the_erase_is_a_vanished_board_at_once() -> None:
    """A long erase allowance must not make a pulled cable look like a hung board."""
    image, _ = big_part_image()
    usb, board = one_board(VirtualBoard("esp32s2", BoardKind.DFU), erase_time(20.0))  # 5 s
    pulled = threading.Event()

    def pull_when_erasing(progress: Progress) -> None:
        if progress.phase is Phase.ERASING and not pulled.is_set():
            pulled.set()
            threading.Timer(0.2, board.unplug).start()

    result = flash(usb, board.path, image, progress=pull_when_erasing)
    assert pulled.is_set()
    assert result.error is not None and result.error.kind is Failure.VANISHED, result.message
    assert "vanished" in result.error.message
    assert result.seconds < 5.0  # it did not sit out the erase, let alone its allowance


def test_a_rom_that_never_finishes_its_erase_is_named_with_the_erase() -> None:
    """The GETSTATUS after the app's first block is never answered: the flasher gives up at the
    erase's allowance (scaled here) and says what the board was doing."""
    image, _ = big_part_image()
    (app,) = [entry for entry in image.entries if entry.name == "app.bin"]
    first_window_block = (app.start - 4) // rom.TRANSFER_SIZE
    hang = Fault("timeout", on=Request.GETSTATUS, nth=first_window_block + 2)  # +1: reach idle
    board = VirtualBoard("esp32s2", BoardKind.DFU, faults=[hang])
    usb, _ = one_board(board, TimeModel.scaled(0.01))
    result = flash(usb, board.path, image)
    error = result.error
    assert error is not None and error.kind is Failure.TIMEOUT and error.final, result.message
    assert "did not finish erasing 1 MB at 0x10000 (for 'app.bin') within 28 s" in error.message
    assert "about 8 s" in error.message
    assert "--part-size" in error.hint and "RESET" in error.hint


def test_a_board_whose_erase_says_dfudnbusy_is_flashed_too() -> None:
    """DFU 1.1's way (busy with a long poll timeout) remains a board setting: flashed alike."""
    image, files = big_part_image()
    board = VirtualBoard("esp32s2", BoardKind.ROM, erase_busy=True, manifest_poll=True)
    usb, _ = one_board(board, erase_time(2.0))
    assert flash(usb, board.path, image, options=FlashOptions(timeout_ms=SHORT_TIMEOUT_MS)).ok
    assert_flashed(board, files)


# --- the DFU-mode PID -------------------------------------------------------------------------


def test_a_dfu_mode_device_with_another_pid_is_flashed_as_the_chip_seen_before_detach() -> None:
    image, files = big_part_image(app_size=40 * KIB)
    board = VirtualBoard("esp32s2", BoardKind.ROM, dfu_pid=0x0042)
    usb, _ = one_board(board, TimeModel.instant())
    result = flash(usb, board.path, image)
    assert result.ok, result.message
    assert result.chip == "esp32s2"
    assert_flashed(board, files)
    (note,) = result.notes
    assert "303a:0042, not 303a:0002" in note and "esp32s2" in note
    assert note in result.headline and result.as_dict()["notes"] == [note]


def test_an_application_board_is_still_checked_by_its_dfu_mode_pid() -> None:
    """An application's PID names no chip: the DFU-mode device's is the only one to check."""
    board = VirtualBoard("esp32s3", BoardKind.APP)
    usb, _ = one_board(board, TimeModel.instant())
    image, _ = big_part_image(app_size=40 * KIB)  # for esp32s2
    result = flash(usb, board.path, image)
    assert result.error is not None and result.error.kind is Failure.WRONG_CHIP


@pytest.mark.parametrize("size", [512 * KIB, 512 * KIB + 1])
def test_only_entries_over_512_kib_get_a_note(size: int) -> None:
    image, _ = big_part_image(app_size=size)
    slow = rom.slow_entries(image.entries)
    assert [entry.name for entry in slow] == (["app.bin"] if size > 512 * KIB else [])


# --- what users read --------------------------------------------------------------------------


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "dfu.bin"
    path.write_bytes(big_part_image(app_size=4 * MIB - 64 * KIB)[0].raw)
    return path


def test_info_notes_a_part_whose_erase_outlasts_dfu_utils_timeout(big_file: Path) -> None:
    result = espdfu("info", big_file)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("  note: ")]
    (note,) = notes
    assert "'app.bin' is one part of 4,128,768 bytes" in note
    assert "about 31 s" in note and "dfu-util" in note and "espdfu waits" in note
    assert "idf.py dfu --part-size 524288" in note
    data = json.loads(espdfu("info", "--json", big_file).stdout)
    assert data["notes"] == [note.removeprefix("  note: ")]


def test_flash_shows_the_erase_on_its_progress_line(big_file: Path) -> None:
    result = espdfu("flash", big_file, "--sim", "esp32s2")
    assert result.returncode == 0, result.stderr
    assert "erasing 3.9 MB at 0x10000 (~31 s)" in result.stderr, result.stderr
