"""Flash jobs on virtual boards: the real discovery and flash engine over the simulator backend."""

from __future__ import annotations

import itertools
import threading

import pytest

from espdfu.flashing.flasher import (
    Failure,
    FlashOptions,
    FlashResult,
    Phase,
    Progress,
    flash,
    flash_many,
)
from espdfu.sim import BoardKind, Fault, TimeModel
from espdfu.usb import rom, transport
from espdfu.usb.boards import DRIVER_HINT, Access, Mode, read_state
from espdfu.usb.protocol import Blocks, Ending, Request, Sent, Status
from tests.helpers.boardworld import KIB, assert_flashed, image, image_files, world
from tests.helpers.fakeusbfs import use_usbfs


@pytest.mark.parametrize("chip", ["esp32s2", "esp32s3"])
def test_a_rom_board_is_detached_flashed_and_told_to_reset(chip: str) -> None:
    w = world(chip)
    (path,) = w.paths
    files = image_files(app_size=700 * KIB)  # split into two parts
    result = flash(w.usb, path, image(chip, files))
    assert result.ok, result.message
    assert result.ending is Ending.IDLE and result.chip == chip
    assert "press RESET" in result.message.replace("Press", "press")
    board = w.board(path)
    assert_flashed(board, files)
    assert board.downloads_completed == 1 and board.mode == "dfu"
    assert board.requests[Request.DETACH] == 1


def test_a_board_already_in_dfu_mode_is_not_detached() -> None:
    w = world("esp32s2-dfu")
    (path,) = w.paths
    result = flash(w.usb, path, image())
    assert result.ok and w.board(path).requests[Request.DETACH] == 0


def test_an_application_with_a_dfu_runtime_is_flashed_without_buttons() -> None:
    w = world("esp32s3-app")
    (path,) = w.paths
    files = image_files()
    assert flash(w.usb, path, image("esp32s3", files)).ok
    assert_flashed(w.board(path), files)


def test_eight_boards_in_parallel_each_get_their_image() -> None:
    w = world("esp32s2*8")
    files = image_files(app_size=64 * KIB)
    results = flash_many(w.usb, w.paths, image("esp32s2", files))
    assert [r.path for r in results] == w.paths and all(r.ok for r in results)
    for path in w.paths:
        assert_flashed(w.board(path), files)


def test_flashing_twice_works_the_second_time_from_dfu_mode() -> None:
    w = world("esp32s2")
    (path,) = w.paths
    assert flash(w.usb, path, image(files=image_files(seed=1))).ok
    second = image_files(seed=2)
    assert flash(w.usb, path, image(files=second)).ok
    assert_flashed(w.board(path), second)


# --- refusals ---------------------------------------------------------------------------------


def test_the_wrong_chip_is_refused_before_touching_the_board() -> None:
    w = world("esp32s2")
    (path,) = w.paths
    result = flash(w.usb, path, image("esp32s3"))
    assert result.error is not None and result.error.kind is Failure.WRONG_CHIP
    assert "for esp32s3" in result.error.message and "is esp32s2" in result.error.message
    assert w.board(path).mode == "rom" and sum(w.board(path).requests.values()) == 0
    assert flash(w.usb, path, image("esp32s3"), options=FlashOptions(force=True)).ok


def test_a_file_for_any_chip_goes_anywhere() -> None:
    w = world("esp32s3")
    assert flash(w.usb, w.paths[0], image("ffff")).ok


def test_usb_serial_jtag_is_explained() -> None:
    w = world("esp32s3-jtag")
    result = flash(w.usb, w.paths[0], image("esp32s3"))
    assert result.error is not None and result.error.kind is Failure.NOT_DFU
    assert "USB-Serial-JTAG" in result.error.hint and "USB-OTG" in result.error.hint


def test_no_permission_points_to_the_fix() -> None:
    w = world("esp32s2-noaccess")
    result = flash(w.usb, w.paths[0], image())
    assert result.error is not None and result.error.kind is Failure.NO_PERMISSION
    assert "udev-rule" in result.error.hint


def test_no_driver_fails_with_the_fix_untouched_and_unretried() -> None:
    w = world("esp32s2-nodriver")
    (path,) = w.paths
    result = flash(w.usb, path, image())
    assert result.error is not None and result.error.kind is Failure.NO_DRIVER
    assert result.error.hint == DRIVER_HINT and "cannot be opened" in result.error.message
    assert result.error.final and result.attempts == 1
    assert sum(w.board(path).requests.values()) == 0


def test_no_driver_for_the_dfu_mode_device_fails_after_detach() -> None:
    w = world("esp32s3-nodfudriver")
    (path,) = w.paths
    options = FlashOptions(detach_wait_s=0.3)
    result = flash(w.usb, path, image("esp32s3"), options=options)
    assert result.error is not None and result.error.kind is Failure.NO_DRIVER
    assert "came back in DFU mode" in result.error.message
    assert result.error.hint == DRIVER_HINT and result.attempts == 1
    board = w.board(path)
    assert board.requests[Request.DETACH] == 1 and board.downloads_completed == 0
    seen = w.scan(path)  # it waits in DFU mode for its driver, and is listed so
    assert (seen.mode, seen.access) == (Mode.DFU, Access.NO_DRIVER)


def test_a_driver_gone_between_the_look_and_the_open_fails_in_words() -> None:
    w = world("esp32s2")
    (path,) = w.paths

    def uninstall(progress: Progress) -> None:
        if progress.phase is Phase.DETACHING:  # after the board was looked at, before opening
            w.board(path).kind = BoardKind.NO_DRIVER

    result = flash(w.usb, path, image(), progress=uninstall)
    assert result.error is not None and result.error.kind is Failure.NO_DRIVER
    assert result.error.hint == DRIVER_HINT and result.attempts == 1


def test_flash_many_reports_every_board_when_some_have_no_driver() -> None:
    w = world("esp32s2,esp32s2-nodriver,esp32s2-nodfudriver")
    results = flash_many(w.usb, w.paths, image(), options=FlashOptions(detach_wait_s=0.3))
    assert [r.path for r in results] == w.paths
    assert [r.error.kind if r.error else None for r in results] == [
        None,
        Failure.NO_DRIVER,
        Failure.NO_DRIVER,
    ]


def test_an_empty_port() -> None:
    w = world("esp32s2")
    result = flash(w.usb, "3-9", image())
    assert result.error is not None and result.error.kind is Failure.NOT_FOUND


# --- faults -----------------------------------------------------------------------------------


def test_a_cable_pull_mid_download_names_the_byte_and_replug_recovers() -> None:
    w = world("esp32s2")
    (path,) = w.paths
    board = w.board(path)
    board.faults.append(Fault("unplug", Request.DNLOAD, nth=50))
    result = flash(w.usb, path, image())
    assert result.error is not None and result.error.kind is Failure.VANISHED
    assert "at byte 3,136 of" in result.error.message  # 49 blocks of 64 were confirmed
    assert result.attempts == 1  # data was accepted: no blind retry
    board.replug()
    assert flash(w.usb, path, image()).ok


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault("stall", Request.DNLOAD, nth=20), Failure.STALL),
        (Fault("status", Request.DNLOAD, nth=20, status=Status.VERIFY), Failure.DEVICE_STATUS),
        (Fault("garbage", Request.GETSTATUS, nth=30), Failure.PROTOCOL),
        (Fault("short", Request.GETSTATUS, nth=30), Failure.PROTOCOL),
        (Fault("timeout", Request.DNLOAD, nth=20), Failure.TIMEOUT),
    ],
)
def test_faults_are_typed_and_the_board_can_be_flashed_right_after(
    fault: Fault, kind: Failure
) -> None:
    w = world("esp32s2-dfu")
    (path,) = w.paths
    w.board(path).faults.append(fault)
    result = flash(w.usb, path, image())
    assert result.error is not None and result.error.kind is kind, result.message
    assert result.error.accepted > 0
    assert read_state(w.usb, w.scan(path)) == "ready"
    assert flash(w.usb, path, image()).ok


def test_a_device_error_is_named_with_its_meaning() -> None:
    w = world("esp32s2-dfu")
    w.board(w.paths[0]).faults.append(Fault("status", Request.DNLOAD, nth=5, status=Status.VERIFY))
    result = flash(w.usb, w.paths[0], image())
    assert result.error is not None and result.error.status is Status.VERIFY
    assert "errVERIFY" in result.error.message and "md5" in result.error.message


def test_endless_busy_gives_up_and_replug_recovers() -> None:
    w = world("esp32s2-dfu")
    (path,) = w.paths
    w.board(path).faults.append(Fault("busy", Request.DNLOAD, nth=3))
    result = flash(w.usb, path, image(), options=FlashOptions(busy_limit_s=0.5))
    assert result.error is not None and result.error.kind is Failure.TIMEOUT
    assert "busy" in result.error.message
    w.board(path).replug()
    assert flash(w.usb, path, image()).ok


def test_a_board_stuck_busy_is_not_retried_even_before_any_data() -> None:
    w = world("esp32s2-dfu")
    (path,) = w.paths
    w.board(path).faults.append(Fault("busy", Request.GETSTATUS, nth=1))
    result = flash(w.usb, path, image(), options=FlashOptions(busy_limit_s=0.2))
    assert result.error is not None and result.error.kind is Failure.TIMEOUT
    assert result.attempts == 1 and result.error.final
    assert "The board stayed busy (dfuDNBUSY) for over 0.2 s (at byte 0 of" in result.message


def test_a_failure_after_the_last_block_says_the_board_was_finishing() -> None:
    w = world("esp32s2-dfu")
    (path,) = w.paths
    dfu = image()
    end = -(-len(dfu.payload) // 64) + 1  # the zero-length DNLOAD
    w.board(path).faults.append(Fault("stall", Request.DNLOAD, nth=end))
    result = flash(w.usb, path, dfu)
    assert result.error is not None and result.error.kind is Failure.STALL
    assert f"while finishing, after all {len(dfu.payload):,} bytes" in result.error.message


def test_a_failure_before_any_data_is_retried_once() -> None:
    w = world("esp32s2")
    (path,) = w.paths
    w.board(path).faults.append(Fault("timeout", Request.GETSTATUS, nth=1))
    result = flash(w.usb, path, image())
    assert result.ok and result.attempts == 2


def test_a_board_that_never_comes_back_after_detach() -> None:
    w = world("esp32s2")
    (path,) = w.paths
    w.board(path).faults.append(Fault("unplug", Request.DETACH))
    result = flash(w.usb, path, image(), options=FlashOptions(detach_wait_s=0.3))
    assert result.error is not None and result.error.kind is Failure.LOST
    assert "did not come back in DFU mode within 0.3 s" in result.error.message


def test_a_hidden_functional_descriptor_falls_back_to_the_rom_block_size() -> None:
    w = world("esp32s2-dfu")
    w.board(w.paths[0]).faults.append(Fault("descriptor"))
    assert flash(w.usb, w.paths[0], image()).ok


# --- progress and cancel ----------------------------------------------------------------------


def test_progress_goes_through_the_phases_and_ends_complete() -> None:
    w = world("esp32s2", TimeModel.scaled(0.3))
    seen: list[Progress] = []
    result = flash(w.usb, w.paths[0], image(), progress=seen.append)
    assert result.ok
    phases = list(dict.fromkeys(p.phase for p in seen))
    assert phases == [
        Phase.CONNECTING,
        Phase.DETACHING,
        Phase.WAITING,
        Phase.DOWNLOADING,
        Phase.MANIFESTING,
    ]
    done = [p.done for p in seen]
    assert done == sorted(done) and done[-1] == seen[-1].total
    downloading = [p for p in seen if p.phase is Phase.DOWNLOADING]
    assert len(downloading) <= result.seconds / 0.1 + 3  # at most 10 updates a second
    assert any(p.rate and p.eta_s is not None for p in downloading)


def test_cancel_aborts_and_leaves_the_board_ready() -> None:
    w = world("esp32s2")
    (path,) = w.paths
    cancel = threading.Event()

    def progress(update: Progress) -> None:
        if update.done > 10 * KIB:
            cancel.set()

    result = flash(w.usb, path, image(), progress=progress, cancel=cancel)
    assert result.error is not None and result.error.kind is Failure.CANCELLED
    assert read_state(w.usb, w.scan(path)) == "ready"
    assert flash(w.usb, path, image()).ok


def test_a_board_that_keeps_answering_busy_is_shown_waiting_and_until_when() -> None:
    """It sat at "22% · ETA 6 s" with nothing saying it waited on a busy board, or how long."""
    w = world("esp32s2-dfu", TimeModel.realistic())  # the board asks for 25 ms each time
    (path,) = w.paths
    w.board(path).faults.append(Fault("busy", Request.DNLOAD, nth=20))
    seen: list[Progress] = []
    result = flash(
        w.usb, path, image(), options=FlashOptions(busy_limit_s=2.5), progress=seen.append
    )
    assert result.error is not None and result.error.kind is Failure.TIMEOUT
    busy = [p for p in seen if p.phase is Phase.BUSY]
    assert busy and 0 < busy[0].done <= 19 * 64  # the blocks it had taken (counted by KiB)
    assert all(p.busy_limit_s == 2.5 and p.busy_s is not None for p in busy)
    assert busy[0].busy_s is not None and busy[0].busy_s >= 1.0  # a block's short wait is not
    assert busy[-1].activity == f"busy {busy[-1].busy_s:.0f} s (gives up at 2 s)"


def test_a_stop_during_a_busy_wait_is_prompt_and_says_the_board_is_left_busy() -> None:
    """A cancel waited out the busy board for 10 s more; and said it was left ready."""
    w = world("esp32s2-dfu", TimeModel.realistic())
    (path,) = w.paths
    w.board(path).faults.append(Fault("busy", Request.DNLOAD, nth=20))
    cancel = threading.Event()
    getstatus_at_cancel: list[int] = []

    def progress(update: Progress) -> None:
        if update.phase is Phase.BUSY and not cancel.is_set():
            getstatus_at_cancel.append(w.board(path).requests[Request.GETSTATUS])
            cancel.set()

    result = flash(w.usb, path, image(), progress=progress, cancel=cancel)
    error = result.error
    assert error is not None and error.kind is Failure.CANCELLED and error.left_busy
    assert "the board was still busy and is left so" in error.message
    assert error.hint == "Press RESET on the board (or replug it) before you flash it again."
    # After the cancel, a second of the board's own 25 ms polls at most, not the ten before
    (before,) = getstatus_at_cancel
    assert w.board(path).requests[Request.GETSTATUS] - before <= 1000 // 25 + 2


# --- the usbfs route: runs of blocks in its own loop ------------------------------------------


def _on_usbfs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Claim virtual boards on the usbfs route; the list fills with the blocks of each run its
    loop sends."""
    use_usbfs(monkeypatch)
    sent: list[int] = []
    make = transport._usbfs_blocks

    def counted(file: int, ioctl: transport._Ioctl) -> transport._SendBlocks:
        send_blocks = make(file, ioctl)

        def send(index: int, timeout: int, blocks: Blocks) -> Sent:
            sent.append(blocks.block_count)
            return send_blocks(index, timeout, blocks)

        return send

    monkeypatch.setattr(transport, "_usbfs_blocks", counted)
    return sent


def test_on_the_usbfs_route_the_blocks_go_in_runs_with_the_same_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs of a progress grain (16 blocks) at most, between the erases' blocks; the phases
    (erasing, downloading again) and progress as the request-by-request route shows them."""
    files = image_files(app_size=700 * KIB)  # erases long enough to be shown
    dfu = image("esp32s2", files)

    def phases() -> list[Phase]:
        w = world("esp32s2", TimeModel.scaled(0.3))
        (path,) = w.paths
        seen: list[Progress] = []
        result = flash(w.usb, path, dfu, progress=seen.append)
        assert result.ok, result.message
        assert_flashed(w.board(path), files)
        assert w.board(path).requests[Request.DNLOAD] == blocks + 1
        done = [p.done for p in seen]
        assert done == sorted(done) and done[-1] == seen[-1].total
        assert any(p.rate and p.eta_s is not None for p in seen if p.phase is Phase.DOWNLOADING)
        return [phase for phase, _ in itertools.groupby(p.phase for p in seen)]

    blocks = -(-len(dfu.payload) // 64)
    alone = phases()
    sent = _on_usbfs(monkeypatch)
    assert phases() == alone and Phase.ERASING in alone
    slow = len(rom.erases(dfu.entries, 64))  # each erase's block goes alone
    assert sum(sent) == blocks - slow and max(sent) == 16


@pytest.mark.parametrize(
    "fault",
    [
        Fault("unplug", Request.DNLOAD, nth=50),
        Fault("unplug", Request.GETSTATUS, nth=40),
        Fault("stall", Request.DNLOAD, nth=20),
        Fault("stall", Request.GETSTATUS, nth=37),
        Fault("status", Request.DNLOAD, nth=20, status=Status.VERIFY),
        Fault("garbage", Request.GETSTATUS, nth=30),
        Fault("short", Request.GETSTATUS, nth=33),
        Fault("timeout", Request.DNLOAD, nth=21),
        Fault("timeout", Request.GETSTATUS, nth=18),
        Fault("busy", Request.DNLOAD, nth=25),
    ],
    ids=lambda fault: f"{fault.action}-{fault.on.name if fault.on else 'any'}-{fault.nth}",
)
def test_a_fault_within_a_run_is_told_as_on_the_request_by_request_route(
    fault: Fault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which block, which request, what kind: the usbfs loop's account of a run that failed is
    the one each request on its own gives."""
    options = FlashOptions(timeout_ms=100, busy_limit_s=0.2)

    def flashed() -> FlashResult:
        w = world("esp32s2-dfu")
        (path,) = w.paths
        w.board(path).faults.append(fault)
        return flash(w.usb, path, image(), options=options)

    alone = flashed()
    sent = _on_usbfs(monkeypatch)
    looped = flashed()
    assert sent, "the usbfs loop was not used"
    assert alone.error is not None and looped.error is not None
    assert (looped.error.kind, looped.error.accepted) == (alone.error.kind, alone.error.accepted)
    assert alone.error.accepted > 0 and f"at byte {alone.error.accepted:,} " in looped.message
    assert looped.message == alone.message


def test_a_cancel_stops_a_run_of_blocks_between_two_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _on_usbfs(monkeypatch)
    w = world("esp32s2-dfu")
    (path,) = w.paths
    cancel = threading.Event()

    def progress(update: Progress) -> None:
        if update.done > 10 * KIB:
            cancel.set()

    options = FlashOptions(progress_interval_s=0)
    result = flash(w.usb, path, image(), options=options, progress=progress, cancel=cancel)
    assert result.error is not None and result.error.kind is Failure.CANCELLED
    assert 10 * KIB < result.error.accepted <= 11 * KIB + 1024
    assert sum(sent) * 64 < 12 * KIB
    assert read_state(w.usb, w.scan(path)) == "ready"
    assert flash(w.usb, path, image()).ok
