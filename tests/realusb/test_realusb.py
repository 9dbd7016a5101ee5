"""espdfu and dfu-util against emulated ESP ROMs through a real Linux USB stack (QEMU guest).

Three boots carry every check, to keep the tier within a few minutes: a bare system (no udevd:
espdfu's libusb must learn of re-enumerated boards from the kernel alone) with six boards, a
desktop-like one (udevd with Debian's default rules, no rule for Espressif boards) with two,
and one for the ROM's long erase (a dfu.bin with one 2 MiB part, as ESP-IDF v4.2 made them).
Each test reads one aspect of its boot's record; see docs/real-usb.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from espdfu.files import dfufile
from tests.helpers.traces import assert_flash_sequence, dfu_requests, read_lines
from tests.realusb.harness import MIB, BoardSpec, GuestRun, Image, boot, make_image

pytestmark = [pytest.mark.realusb, pytest.mark.timeout(900)]

S2 = make_image("esp32s2", seed=1)
S3 = make_image("esp32s3", seed=2, part_size=16 * 1024)  # several parts, several erases
BIG = make_image("esp32s2", seed=3, app_size=2 * MIB, part_size=4 * MIB)
"""One 2 MiB part: the ROM's erase of it (512 sectors) outlasts a 5 s request timeout."""
PLUG_PROBE = Path(__file__).with_name("plugprobe.py")
PULL_AT = 20 * 1024
CORRUPT_AT = 30_000
ERROR_BLOCK = 100


def corrupted_md5(image: Image) -> bytes:
    """``image``'s dfu.bin with the app's md5 record changed (and the CRC made right again):
    a file whose only fault is the one the board finds by itself."""
    data = bytearray(image.data)
    record = data.index(b"app.bin\0", data.index(b"dfuinfo0.dat"))
    data[record + 64] ^= 0xFF  # the first md5 byte: the record is address, flags, name, md5
    body = len(data) - dfufile.CRC.size
    data[body:] = dfufile.CRC.pack(dfufile.dfu_crc(memoryview(data)[:body]))
    return bytes(data)


ROUTE_PROBE = """
import sys
from espdfu.usb.boards import scan
from espdfu.usb.transport import DfuInterface, open_libusb
usb = open_libusb()
board = next(board for board in scan(usb) if board.path == sys.argv[1])
dfu = DfuInterface(usb.find(board.path), board.interface)
dfu.claim()
print(dfu.route, dfu.get_status().state.name)
dfu.close()
"""
"""Claims board 0's DFU interface as the flasher does and says which way its requests go."""

BARE_SCENARIO = """
step route python3 "$INPUTS/route.py" "$(board_path 0)"
start console espdfu monitor -p "$(board_path 0)" --until 'PASS|FAIL' --timeout 60 --json
wait_text "$OUT/steps/console.out" '"open"' 60
acm=/sys/kernel/config/usb_gadget/rom0/functions/acm.rom0
printf 'ESP-ROM:esp32s2-rc4-20191025\\r\\nI (310) main_task: Calling app_main()\\r\\n' \\
    >"/dev/ttyGS$(cat "$acm/port_num")"
printf 'SELFTEST PASS\\r\\n' >"/dev/ttyGS$(cat "$acm/port_num")"
finish console
step list espdfu list
step list_json espdfu list --json
step list_verbose espdfu list -v
step pull espdfu flash "$INPUTS/s2.dfu.bin" --path "$(board_path 3)" --json
step list_pulled espdfu list --json
start plug python3 "$INPUTS/plugprobe.py" "$(board_path 3)" cue 1 0
wait_text "$OUT/steps/plug.out" ready 60
gadget replug 3
finish plug
step replugged espdfu flash "$INPUTS/s2.dfu.bin" --path "$(board_path 3)" --json
step verify espdfu flash "$INPUTS/s2.dfu.bin" --path "$(board_path 4)" --json
step prog espdfu flash "$INPUTS/s2.dfu.bin" --path "$(board_path 5)" --json
step all espdfu flash "$INPUTS/s2.dfu.bin" --all --json
step s3 espdfu flash "$INPUTS/s3.dfu.bin" --json
gadget replug 2
step dfu_util dfu-util -d 303a:0009 -p "$(board_path 2)" -E 1 -D "$INPUTS/s3.dfu.bin"
"""

DESKTOP_SCENARIO = """
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
step nobody_list "${nobody[@]}" espdfu list
step nobody_json "${nobody[@]}" espdfu list --json
step espdfu espdfu flash "$INPUTS/s2.dfu.bin" --path "$(board_path 0)" --json \
    --trace "$OUT/trace.jsonl"
step trace espdfu trace "$OUT/trace.jsonl" --summary
step report espdfu report -o "$OUT/report.md" --trace "$OUT/trace.jsonl"
step nobody_report "${nobody[@]}" espdfu report -o /tmp/nobody.md
cp /tmp/nobody.md "$OUT/nobody.md"
gadget wipe 0
gadget replug 0
step dfu_util dfu-util -d 303a:0002 -D "$INPUTS/s2.dfu.bin"
step dfu_util_bad_md5 dfu-util -d 303a:0002 -D "$INPUTS/bad-md5.dfu.bin"
step espdfu_bad_md5 espdfu flash "$INPUTS/bad-md5.dfu.bin" --path "$(board_path 0)"
mkdir -p /tmp/project/build && cd /tmp/project || exit 1
start watch espdfu watch /tmp/project/build --all
wait_text "$OUT/steps/watch.out" esp32s3 60
cp "$INPUTS/s3.dfu.bin" build/dfu.bin.tmp && mv build/dfu.bin.tmp build/dfu.bin
wait_text "$OUT/steps/watch.out" Flashed 120
gadget reset 1
wait_text "$OUT/steps/watch.out" 'console on /dev/ttyACM' 60
acm=/sys/kernel/config/usb_gadget/app1/functions/acm.app1
printf 'ESP-ROM:esp32s3-20210327\\r\\nI (310) main_task: Calling app_main()\\r\\n' \\
    >"/dev/ttyGS$(cat "$acm/port_num")"
printf 'SELFTEST PASS\\r\\n' >"/dev/ttyGS$(cat "$acm/port_num")"
wait_text "$OUT/steps/watch.out" 'SELFTEST PASS' 60
stop watch
"""


@pytest.fixture(scope="module")
def bare(realusb: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestRun]:
    """No udevd: boards 0, 1 (S2; 1 the DFU 1.1 variant: its erases say dfuDNBUSY, it goes
    through dfuMANIFEST), 2 (S3), and S2 boards whose first download goes wrong: 3 (cable
    pulled), 4 (one byte corrupted on arrival), 5 (a flash write fails)."""
    boards = [
        BoardSpec("esp32s2"),
        BoardSpec("esp32s2", timing={"erase_busy": True, "manifest_poll": True}),
        BoardSpec("esp32s3"),
        BoardSpec("esp32s2", faults={"pull_after_bytes": PULL_AT}),
        BoardSpec("esp32s2", faults={"corrupt_byte": CORRUPT_AT}),
        BoardSpec("esp32s2", faults={"error_at_block": ERROR_BLOCK, "error_status": "PROG"}),
    ]
    inputs = {
        "s2.dfu.bin": S2.data,
        "s3.dfu.bin": S3.data,
        "route.py": ROUTE_PROBE.encode(),
        "plugprobe.py": PLUG_PROBE.read_bytes(),
    }
    yield boot(BARE_SCENARIO, boards=boards, inputs=inputs, workdir=tmp_path_factory.mktemp("bare"))


@pytest.fixture(scope="module")
def desktop(realusb: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestRun]:
    """udevd running, no udev rule for Espressif boards: boards 0 (S2) and 1 (S3)."""
    inputs = {"s2.dfu.bin": S2.data, "s3.dfu.bin": S3.data, "bad-md5.dfu.bin": corrupted_md5(S2)}
    yield boot(
        DESKTOP_SCENARIO,
        boards=[BoardSpec("esp32s2"), BoardSpec("esp32s3")],
        inputs=inputs,
        udev=True,
        workdir=tmp_path_factory.mktemp("desktop"),
    )


ERASE_SCENARIO = """
step dfu_util dfu-util -d 303a:0002 -p "$(board_path 0)" -E 1 -D "$INPUTS/big.dfu.bin"
gadget replug 0
gadget wipe 0
STEP_TIMEOUT=400 step espdfu espdfu flash "$INPUTS/big.dfu.bin" --path "$(board_path 0)"
start pulled espdfu flash "$INPUTS/big.dfu.bin" --path "$(board_path 1)"
wait_text "$OUT/steps/pulled.err" erasing 60
sleep 2
cut -d' ' -f1 /proc/uptime >"$OUT/pulled_at"
gadget unplug 1
finish pulled
step other_pid espdfu flash "$INPUTS/s2.dfu.bin" --path "$(board_path 2)" --json
"""


@pytest.fixture(scope="module")
def erase(realusb: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestRun]:
    """S2 boards as the ROM is: each file's erase holds the bus, a 2 MiB part's for 15 s; board 2
    comes back from DETACH with another PID (nothing public says which PID the ROM's DFU mode
    has). udevd runs, as on a desktop, so that dfu-util finds the board after DETACH. espdfu
    prints its progress (to stderr) only without --json, so its plain lines are read here."""
    yield boot(
        ERASE_SCENARIO,
        boards=[BoardSpec("esp32s2"), BoardSpec("esp32s2"), BoardSpec("esp32s2", dfu_pid=0x42)],
        inputs={"big.dfu.bin": BIG.data, "s2.dfu.bin": S2.data},
        udev=True,
        timeout_s=600,
        workdir=tmp_path_factory.mktemp("erase"),
    )


def results(run: GuestRun, name: str) -> list[dict[str, Any]]:
    """The JSON lines `espdfu flash --json` printed in step ``name``."""
    step = run.step(name)
    try:
        return [json.loads(line) for line in step.stdout.splitlines() if line.strip()]
    except json.JSONDecodeError:
        raise AssertionError(str(step)) from None


def assert_flash(run: GuestRun, board: int, image: Image) -> None:
    """The board's flash holds exactly the image's files at their addresses, erased around."""
    flash, expected = run.boards[board].flash, image.expected_flash()
    for file in image.files:
        written = flash[file.address : file.address + len(file.data)]
        assert written == file.data, f"board {board}: {file.name} at 0x{file.address:x} differs"
    if flash != expected:
        first = next(i for i, (a, b) in enumerate(zip(flash, expected, strict=True)) if a != b)
        raise AssertionError(f"board {board}: the flash differs from the image at 0x{first:x}")


# --- a bare system: no udevd --------------------------------------------------------------------


def test_list_shows_each_board_in_rom_download_mode_at_its_port(bare: GuestRun) -> None:
    step = bare.step("list_json")
    assert step.rc == 0, step
    listed = {board["path"]: board for board in json.loads(step.stdout)}
    expected = {board.path: board.report["chip"] for board in bare.boards}
    assert {path: board["chip"] for path, board in listed.items()} == expected
    for board in listed.values():
        assert (board["mode"], board["mode_text"]) == ("rom", "ROM download"), board
        assert board["accessible"] and board["state"] == "ready", board
        assert board["transfer_size"] == 64, board
    table = bare.step("list").stdout
    row = rf"^{re.escape(bare.boards[2].path)} +- +esp32s3 +ROM download +ready +64$"
    assert re.search(row, table, re.MULTILINE), table


def test_espdfu_uses_the_libusb_of_libusb_package(bare: GuestRun) -> None:
    """It needs no udevd: it learns of new devices from the kernel's netlink events."""
    step = bare.step("list_verbose")
    assert step.rc == 0, step
    first = step.stdout.splitlines()[0]
    assert "libusb_package/libusb-1.0.so) from libusb-package" in first, step


def test_on_linux_requests_go_through_libusbs_usbfs_file_in_one_ioctl(bare: GuestRun) -> None:
    step = bare.step("route")
    assert step.rc == 0, step
    assert step.stdout.split() == ["usbfs", "APP_IDLE"], step


def test_monitor_reads_a_boards_cdc_console_at_its_port_path_through_cdc_acm(
    bare: GuestRun,
) -> None:
    """The gadget's /dev/ttyGS0 to the host's cdc_acm /dev/ttyACM*: found by USB port path
    (pyserial's port list, from sysfs), read until --until matched."""
    step = bare.step("console")
    assert step.rc == 0, step
    records = [json.loads(line) for line in step.stdout.splitlines()]
    path = bare.boards[0].path
    opened = records[0]
    assert opened["event"] == "open" and opened["board"] == path, step
    assert re.fullmatch(r"/dev/ttyACM\d+", opened["port"]), step
    texts = [(record["text"], record["state"]) for record in records if "text" in record]
    assert texts == [
        ("ESP-ROM:esp32s2-rc4-20191025", "booting"),
        ("I (310) main_task: Calling app_main()", "running"),
        ("SELFTEST PASS", "running"),
    ], step


def test_flash_follows_the_reenumeration_and_writes_the_files_esp32s3(bare: GuestRun) -> None:
    (result,) = results(bare, "s3")
    assert result["ok"] and result["ending"] == "idle", result
    assert result["path"] == bare.boards[2].path and result["chip"] == "esp32s3"
    board = bare.boards[2]
    assert [event["event"] for event in board.report["events"]][:3] == [
        "enumerated",
        "detached",
        "enumerated",
    ], board.report["events"]
    (download,) = board.downloads
    assert download["outcome"] == "manifested" and download["bytes"] == S3.payload_size
    assert all(file["md5_ok"] for file in download["files"]), download
    assert_flash(bare, 2, S3)


S2_BOARDS = (0, 1, 3, 4, 5)


def test_all_flashes_every_esp32s2_in_parallel(bare: GuestRun) -> None:
    """Two boards in ROM download mode (detached) and three already in DFU mode, two of them
    after a failed download; the S3 is skipped. The downloads overlap in time and every
    image is right."""
    step = bare.step("all")
    assert step.rc == 0, step
    flashed = results(bare, "all")
    paths = [bare.boards[index].path for index in S2_BOARDS]
    assert sorted(result["path"] for result in flashed) == sorted(paths), step
    assert all(result["ok"] for result in flashed), step
    assert "skipping" in step.stderr and bare.boards[2].path in step.stderr, step
    last = [bare.boards[index].downloads[-1] for index in S2_BOARDS]
    assert max(d["started"] for d in last) < min(d["ended"] for d in last), last
    for index in S2_BOARDS:
        assert_flash(bare, index, S2)


def test_a_pulled_cable_fails_at_its_byte_without_hanging_then_flash_again(
    bare: GuestRun,
) -> None:
    step = bare.step("pull")
    (result,) = results(bare, "pull")
    assert step.rc == 1 and not result["ok"], step
    assert f"at byte {PULL_AT:,} of {S2.payload_size:,}" in result["message"], result
    assert step.seconds < 30, step
    assert bare.boards[3].events("pulled")[0]["at_byte"] == PULL_AT
    still = {board["path"] for board in json.loads(bare.step("list_pulled").stdout)}
    assert bare.boards[3].path not in still
    (again,) = results(bare, "replugged")
    assert again["ok"], bare.step("replugged")


def test_a_board_plugged_in_is_seen_on_the_kernels_word(bare: GuestRun) -> None:
    """The monitor polls only every 30 s here: seen sooner, it was the uevent's doing."""
    step = bare.step("plug")
    assert step.rc == 0, step
    (seen,) = json.loads(step.stdout.splitlines()[-1])["seen"]
    plugged = [e["at"] for e in bare.boards[3].events("enumerated") if e["at"] <= seen]
    assert plugged and seen - plugged[-1] < 10, (plugged, seen)


def test_a_pulled_cable_is_reported_as_vanished(bare: GuestRun) -> None:
    (result,) = results(bare, "pull")
    assert result["error"] == "vanished", result
    assert f"vanished at byte {PULL_AT:,} of {S2.payload_size:,}" in result["message"], result


def test_a_device_error_status_is_named(bare: GuestRun) -> None:
    """A byte corrupted on its way into flash: the board's md5 check fails, it reports
    errVERIFY, and espdfu says so in words."""
    step = bare.step("verify")
    (result,) = results(bare, "verify")
    assert step.rc == 1 and result["error"] == "device_status", step
    assert result["status"] == "errVERIFY", result
    assert "errVERIFY" in result["message"] and "md5 mismatch" in result["message"], result
    (error,) = bare.boards[4].events("error")
    assert error["status"] == "errVERIFY"


def test_a_failed_flash_write_is_named_with_its_place(bare: GuestRun) -> None:
    (result,) = results(bare, "prog")
    assert result["status"] == "errPROG", result
    offset = ERROR_BLOCK * 64
    assert f"errPROG at byte {offset:,} of {S2.payload_size:,}" in result["message"], result


def test_espdfu_never_sends_a_request_before_the_poll_timeout(
    bare: GuestRun, desktop: GuestRun
) -> None:
    """The boards STALL early requests to a busy board (after dfuDNBUSY, dfuMANIFEST): none
    came, from espdfu or dfu-util, in all the downloads above."""
    for run in (bare, desktop):
        for board in run.boards:
            assert board.report["stalls"] == {}, (board.path, board.report["stalls"])


def test_dfu_util_loses_the_board_after_detach_without_udevd(bare: GuestRun) -> None:
    """Debian's libusb hears of re-enumerations only from udevd: the reason the desktop boot
    runs it, and the difference from espdfu's libusb above."""
    step = bare.step("dfu_util")
    assert step.rc != 0, step
    assert "Lost device after RESET?" in step.stdout + step.stderr, step


# --- a desktop: udevd, no rule for Espressif boards ---------------------------------------------


def test_without_root_or_udev_rule_the_board_is_listed_as_not_accessible(
    desktop: GuestRun,
) -> None:
    step = desktop.step("nobody_list")
    assert step.rc == 0, step
    assert "no permission" in step.stdout, step
    assert "udev-rule --install" in " ".join(step.stdout.split()), step
    listed = json.loads(desktop.step("nobody_json").stdout)
    assert len(listed) == 2 and not any(board["accessible"] for board in listed), listed


def test_dfu_util_flashes_the_same_board_as_espdfu_with_the_same_result(
    desktop: GuestRun,
) -> None:
    (result,) = results(desktop, "espdfu")
    assert result["ok"], desktop.step("espdfu")
    step = desktop.step("dfu_util")
    assert step.rc == 0 and "Done!" in step.stdout, step
    # What users' dfu-util logs of real boards show, and so the ROM model (espdfu.usb.rom):
    # WillDetach, DFU 1.1 and 64-byte blocks in both modes, dfuIDLE right after the download.
    for line in (
        "Run-Time device DFU version 0110",
        "Device will detach and reattach...",
        "DFU mode device DFU version 0110",
        "Device returned transfer size 64",
    ):
        assert line in step.stdout, step
    after_download = step.stdout.split("Download done.", 1)[1]
    assert "DFU state(2) = dfuIDLE" in after_download and "dfuMANIFEST" not in after_download
    espdfu_download, dfu_util_download = desktop.boards[0].downloads[:2]
    expected = hashlib.sha256(S2.expected_flash()).hexdigest()
    for download in (espdfu_download, dfu_util_download):
        assert download["outcome"] == "manifested", download
        assert download["flash_sha256"] == expected, download
    assert espdfu_download["files"] == dfu_util_download["files"]
    assert [event["event"] for event in desktop.boards[0].report["events"]].count("detached") == 2


def test_a_traced_flash_holds_every_request_in_order_through_usbfs(desktop: GuestRun) -> None:
    """`espdfu flash --trace`: DETACH, the board back at a new address, then each block with its
    GETSTATUS, the zero-length DNLOAD and dfuIDLE; as many blocks as the board received, the
    descriptors as the kernel read them, and each request in one usbfs ioctl."""
    lines = read_lines(desktop.folder / "out" / "trace.jsonl")
    board = desktop.boards[0]
    assert_flash_sequence(lines, board.path, S2.payload_size, detach=True)
    requests = dfu_requests(lines, board.path)
    blocks = [r for r in requests if r["request"] == "DNLOAD" and r.get("data_len")]
    assert len(blocks) == board.downloads[0]["blocks"]
    rom, dfu = (line for line in lines if line["event"] == "board")
    assert rom["descriptors"]["interfaces"][2] == {
        "number": 2, "class": "fe/01/01", "extra": "092109e80340001001"
    }  # fmt: skip
    assert rom["descriptors"]["address"] != dfu["descriptors"]["address"]
    assert [line["route"] for line in lines if line["event"] == "claimed"] == ["usbfs"] * 2
    summary = desktop.step("trace")
    assert summary.stdout.startswith(f"{board.path}: "), summary
    assert f"{len(blocks) + 1} DNLOAD, 1 DETACH (none failed). Flashed" in summary.stdout


def test_report_holds_the_real_stack_and_says_who_may_open_the_boards(desktop: GuestRun) -> None:
    step = desktop.step("report")
    assert step.rc == 0 and "It holds:" in step.stdout, step
    text = (desktop.folder / "out" / "report.md").read_text()
    assert "- USB: libusb 1." in text and "from libusb-package" in text, text
    assert "- OS: Linux 6.12" in text and "- udevd: running" in text, text
    for board in desktop.boards:
        assert f"### {board.path}: {board.report['chip']}" in text, text
    assert "70-espdfu.rules is not installed" in text
    assert "you may open it" in text and "(root)" in text
    assert "trace.jsonl (" in text
    nobody = desktop.step("nobody_report")
    assert nobody.rc == 0, nobody
    refused = (desktop.folder / "out" / "nobody.md").read_text()
    assert "uid 65534" in refused and "you may NOT open it" in refused, refused
    assert refused.count("no permission") >= 2, refused


def test_a_corrupted_md5_is_errverify_for_dfu_util_and_refused_by_espdfu(
    desktop: GuestRun,
) -> None:
    step = desktop.step("dfu_util_bad_md5")
    assert step.rc != 0 and "status(7)" in step.stdout, step
    assert desktop.boards[0].events("error")[-1]["status"] == "errVERIFY"
    refused = desktop.step("espdfu_bad_md5")
    assert refused.rc == 2 and "md5" in refused.stderr, refused


def test_watch_flashes_each_new_dfu_bin(desktop: GuestRun) -> None:
    step = desktop.step("watch")
    assert step.rc == 143, step  # stopped by SIGTERM
    assert "New dfu.bin" in step.stdout and "Flashed" in step.stdout, step
    download = desktop.boards[1].downloads[-1]
    assert download["outcome"] == "manifested", download
    assert_flash(desktop, 1, S3)


def test_watch_shows_the_new_apps_console_after_its_reset(desktop: GuestRun) -> None:
    """After the flash, RESET: the app's own USB console (CDC-ACM, at the board's port path)
    is found, opened and printed under the board, with the app's state."""
    step = desktop.step("watch")
    path = desktop.boards[1].path
    lines = [line.split(" ", 1)[1] for line in step.stdout.splitlines() if " " in line]
    opened = next(line for line in lines if line.startswith(f"{path}: console on "))
    assert re.fullmatch(rf"{re.escape(path)}: console on /dev/ttyACM\d+", opened), step
    assert f"{path} | SELFTEST PASS" in lines and f"{path}: app running" in lines, step
    # The app's USB console does not name the chip; the board keeps the one its ROM named
    assert any(line.startswith(f"{path}: esp32s3, no DFU. Hold BOOT") for line in lines), step
    flashed = next(i for i, line in enumerate(lines) if "Flashed" in line)
    assert lines.index(opened) > flashed, step


# --- the ROM's long erase ------------------------------------------------------------------------


def test_dfu_util_fails_at_the_start_of_a_large_part_as_users_report(erase: GuestRun) -> None:
    """esp-idf issue 6999: dfu-util's 5 s request timeout ends at the erase, at 0 %."""
    step = erase.step("dfu_util")
    assert step.rc != 0, step
    assert "LIBUSB_ERROR_TIMEOUT" in step.stdout + step.stderr, step
    first = erase.boards[0].downloads[0]
    assert first["bytes"] < 64 * 1024 and first["outcome"] != "manifested", first


def test_espdfu_waits_out_the_erase_says_so_and_the_flash_is_right(erase: GuestRun) -> None:
    step = erase.step("espdfu")
    assert step.rc == 0 and "Flashed 2 MB" in step.stdout, step
    assert "erasing 2 MB at 0x10000 (~16 s)" in step.stderr, step
    app_erase = [e for e in erase.boards[0].events("erasing") if e["address"] == 0x10000]
    assert app_erase and app_erase[-1]["ms"] > 5000, app_erase  # longer than dfu-util waits
    assert erase.boards[0].downloads[-1]["outcome"] == "manifested"
    assert_flash(erase, 0, BIG)


def test_a_cable_pulled_during_the_erase_is_a_vanished_board_within_seconds(
    erase: GuestRun,
) -> None:
    """The erase allowance (51 s for 2 MiB) does not delay what a pulled cable tells at once."""
    step = erase.step("pulled")
    assert step.rc == 1 and "The board vanished at byte" in step.stdout, step
    pulled_at = float((erase.folder / "out" / "pulled_at").read_text())
    assert step.end - pulled_at < 10, (step, pulled_at)  # the erase had 13 s to go


def test_a_board_back_from_detach_with_another_pid_is_flashed_as_the_chip_it_was(
    erase: GuestRun,
) -> None:
    """The chip is read before DETACH; the DFU-mode device's PID is not relied upon."""
    (result,) = results(erase, "other_pid")
    assert result["ok"] and result["chip"] == "esp32s2", erase.step("other_pid")
    (note,) = result["notes"]
    assert "303a:0042, not 303a:0002" in note, result
    assert_flash(erase, 2, S2)
