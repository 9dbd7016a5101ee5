"""The gadget's ROM model on its own (no guest): the tier's verdicts are only as good as it is.

The project's own sans-IO download drives it here, sent by the flasher's own loop
(``driver.drive``) on a clock that moves only when the host waits, so every stall or error is
the model's decision, not a timing accident.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from espdfu.chips import chip_by_name
from espdfu.files import dfufile
from espdfu.usb import rom
from espdfu.usb.driver import drive
from espdfu.usb.protocol import (
    DeviceStatusError,
    Ending,
    Exchange,
    Reply,
    Request,
    State,
    Status,
    StatusReply,
    Step,
    download,
)
from tests.realusb.guest.rom import (
    RUNTIME_DESCRIPTOR,
    Action,
    Answer,
    Faults,
    Rom,
    Setup,
    Timing,
)
from tests.realusb.harness import MIB, make_image

IMAGE = make_image("esp32s2", seed=7, app_size=20 * 1024)


class Host:
    """A host on a fake clock: it advances only by the waits the host makes, the ones the
    board's erase imposes included; past ``timeout_s`` a request fails as libusb's would."""

    def __init__(
        self, faults: Faults | None = None, timeout_s: float | None = None, **timing: Any
    ) -> None:
        self.time = 100.0
        self.timeout_s = timeout_s
        self.held_s = 0.0
        """What the board's erases made the host wait, in all."""
        chip = chip_by_name("esp32s2")
        assert chip is not None
        self.rom = Rom(chip, 4 * MIB, Timing(**timing), faults or Faults(), lambda: self.time)
        self.rom.enumerate("dfu")

    def out(self, request: Request, value: int = 0, data: bytes = b"") -> Answer:
        self._wait_out_erase()
        setup = Setup(0x21, request, value, 0, len(data))
        return self.rom.control(setup, lambda: data)

    def status(self, timeout_s: float | None = None) -> StatusReply:
        self._wait_out_erase(timeout_s)
        answer = self.rom.control(Setup(0xA1, Request.GETSTATUS, 0, 0, 6), _no_data)
        assert answer.data is not None, answer
        return StatusReply.decode(answer.data)

    def _wait_out_erase(self, timeout_s: float | None = None) -> None:
        """The gadget holds a request while the board erases (gadget.Board._hold)."""
        held = self.rom.held_until - self.time
        if held <= 0:
            return
        limit = timeout_s or self.timeout_s
        if limit is not None and held > limit:
            self.time += limit
            raise TimeoutError(f"no answer within {limit:g} s")
        self.time += held
        self.held_s += held

    def run(self, steps: Exchange[Ending]) -> tuple[Ending, list[State]]:
        """Drive a download; return how it ended and every state GETSTATUS reported."""
        states: list[State] = []

        def perform(step: Step) -> Reply:
            if step.request is Request.GETSTATUS:
                reply = self.status(step.timeout_ms / 1000 or None)
                states.append(reply.state)
                return reply
            answer = self.out(step.request, step.value, bytes(step.data))
            assert not answer.stall and answer.action is None, (step, answer)
            return None

        return drive(steps, perform, self._wait, lambda: self.time), states

    def _wait(self, seconds: float) -> None:
        self.time += seconds


def _no_data() -> bytes:
    raise AssertionError("an IN request has no data stage to read")


def test_a_download_writes_the_files_and_ends_in_dfu_idle() -> None:
    """As the ROM: each file's erase holds the bus (no dfuDNBUSY), and the GETSTATUS after the
    zero-length DNLOAD answers dfuIDLE at once."""
    host = Host()
    ending, states = host.run(download(IMAGE.data[:-16], 64))
    assert ending is Ending.IDLE
    assert State.DNBUSY not in states and State.MANIFEST not in states
    assert states[-2:] == [State.DNLOAD_IDLE, State.DFU_IDLE]
    assert bytes(host.rom.flash) == IMAGE.expected_flash()
    (record,) = host.rom.downloads
    assert record.outcome == "manifested" and record.poll_ms == 0
    assert [file.md5_ok for file in record.receiver.files] == [True, True, True]
    erases = [event for event in host.rom.events if event["event"] == "erasing"]
    sectors = [rom.sectors(e["address"], e["size"]) for e in erases]
    assert sectors == [3, 1, 5]  # bootloader.bin, partition-table.bin, app.bin
    assert host.held_s == pytest.approx(sum(sectors) * rom.ERASE_MS_PER_SECTOR / 1000)


def test_the_dfu_1_1_variant_reports_its_erases_and_manifests() -> None:
    host = Host(erase_busy=True, manifest_poll=True)
    ending, states = host.run(download(IMAGE.data[:-16], 64))
    assert ending is Ending.IDLE and host.held_s == 0
    assert states.count(State.DNBUSY) == 3
    assert states[-2:] == [State.MANIFEST, State.DFU_IDLE]
    assert bytes(host.rom.flash) == IMAGE.expected_flash()


BIG = make_image("esp32s2", seed=8, app_size=2 * MIB, part_size=4 * MIB)


def test_a_host_with_5_s_timeouts_fails_on_a_large_part_and_espdfus_waits_succeed() -> None:
    """esp-idf issue 6999 in the model: dfu-util's 5 s request timeout ends at the erase of a
    2 MiB part (15 s); the same download with espdfu's erase allowances completes."""
    dfu_util = Host(timeout_s=5.0)
    with pytest.raises(TimeoutError):
        dfu_util.run(download(BIG.data[:-16], 64))
    (record,) = dfu_util.rom.downloads
    assert record.bytes < 64 * 1024  # it failed at 0 %: at the app's first block
    image = dfufile.parse(BIG.data)
    slow = {block: int(e.deadline_s * 1000) for block, e in rom.erases(image.entries, 64).items()}
    espdfu = Host(timeout_s=5.0)
    ending, _ = espdfu.run(download(BIG.data[:-16], 64, slow=slow))
    assert ending is Ending.IDLE and bytes(espdfu.rom.flash) == BIG.expected_flash()
    assert espdfu.held_s > 15


def test_the_runtime_interface_answers_appidle_and_takes_detach() -> None:
    host = Host()
    host.rom.enumerate("rom")
    assert host.status().state is State.APP_IDLE
    assert host.out(Request.DNLOAD, 0, b"x").stall
    functional = host.rom.control(Setup(0x81, 6, 0x2100, 0, 9), _no_data)  # GET_DESCRIPTOR
    assert functional.data == RUNTIME_DESCRIPTOR.encode()
    assert host.out(Request.DETACH, 1000).action is Action.DETACH


def test_a_request_to_a_busy_board_before_its_poll_timeout_stalls() -> None:
    host = Host(erase_busy=True)
    for block in range(20):  # past dfuinfo0.dat and flash_params.dat: the first file erases
        host.out(Request.DNLOAD, block, IMAGE.data[block * 64 : block * 64 + 64])
        busy = host.status()
        if busy.state is State.DNBUSY:
            break
    assert busy.state is State.DNBUSY and busy.poll_timeout_ms > 0
    host.time += busy.poll_timeout_ms / 1000 / 2
    assert host.rom.control(Setup(0xA1, Request.GETSTATUS, 0, 0, 6), _no_data).stall
    assert host.status() == StatusReply(Status.STALLEDPKT, 0, State.ERROR)
    host.out(Request.CLRSTATUS)
    assert host.status().state is State.DFU_IDLE


def test_the_next_block_may_follow_dfudnload_idle_at_once() -> None:
    """dfu-util does not wait after dfuDNLOAD-IDLE: DFU 1.1's bwPollTimeout is the wait before
    the next GETSTATUS, so the model must not stall it."""
    host = Host(block_poll_ms=2)
    host.out(Request.DNLOAD, 0, IMAGE.data[:64])
    idle = host.status()
    assert idle.state is State.DNLOAD_IDLE and idle.poll_timeout_ms == 2
    assert not host.out(Request.DNLOAD, 1, IMAGE.data[64:128]).stall


@pytest.mark.parametrize(
    "send",
    [
        lambda host: host.out(Request.DNLOAD, 5, b"x" * 64),  # block 1 was due
        lambda host: host.out(Request.DNLOAD, 1, b"x" * 65),  # more than wTransferSize
        lambda host: host.rom.control(Setup(0xA1, Request.UPLOAD, 0, 0, 64), _no_data),
        lambda host: host.rom.control(Setup(0xA1, 0x42, 0, 0, 4), _no_data),
        lambda host: host.out(Request.DETACH, 1000),
    ],
    ids=["block number", "block size", "upload", "unknown", "detach"],
)
def test_requests_the_rom_does_not_take_stall_into_dfuerror(
    send: Callable[[Host], Answer],
) -> None:
    host = Host(erase_ms_per_sector=0)
    host.out(Request.DNLOAD, 0, IMAGE.data[:64])
    host.status()
    assert send(host).stall
    assert host.status() == StatusReply(Status.STALLEDPKT, 0, State.ERROR)


def test_ending_before_the_archive_is_whole_is_errnotdone() -> None:
    host = Host(erase_ms_per_sector=0)
    host.out(Request.DNLOAD, 0, IMAGE.data[:64])
    host.status()
    host.out(Request.DNLOAD, 1)
    assert host.status() == StatusReply(Status.NOTDONE, 0, State.ERROR)


@pytest.mark.parametrize(
    ("faults", "status"),
    [
        (Faults(corrupt_byte=15_000), Status.VERIFY),
        (Faults(error_at_block=3, error_status="WRITE"), Status.WRITE),
    ],
)
def test_faults_become_the_status_a_board_reports(faults: Faults, status: Status) -> None:
    host = Host(faults)
    with pytest.raises(DeviceStatusError) as error:
        host.run(download(IMAGE.data[:-16], 64))
    assert error.value.status is status
    assert host.rom.events[-1]["event"] == "error"


def test_a_cable_pull_answers_nothing_at_its_byte() -> None:
    host = Host(Faults(pull_after_bytes=128), erase_ms_per_sector=0)
    for block in range(2):
        host.out(Request.DNLOAD, block, IMAGE.data[block * 64 : block * 64 + 64])
        host.status()
    assert host.out(Request.DNLOAD, 2, IMAGE.data[128:192]).action is Action.PULL
    assert host.rom.events[-1] == {"at": 100.0, "event": "pulled", "at_byte": 128}
