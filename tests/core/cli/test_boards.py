"""`espdfu list`, `espdfu flash` and `espdfu udev-rule` as users run them, on virtual boards."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from espdfu import udev
from espdfu.cli.live import LiveProgress
from espdfu.errors import EspdfuError
from espdfu.files import dfufile
from espdfu.flashing.flasher import FlashOptions, FlashResult, Phase, Progress, flash
from tests.helpers.boardworld import KIB, image, image_files, world
from tests.helpers.buildfolder import stale_build
from tests.helpers.command import espdfu, labelled


@pytest.fixture
def s2_file(tmp_path: Path) -> Path:
    path = tmp_path / "dfu.bin"
    path.write_bytes(dfufile.pack(image_files(), pid=2))
    return path


def test_list_shows_each_board_with_what_to_do() -> None:
    result = espdfu("list", "--sim", "esp32s2,esp32s3-jtag,esp32s2-noaccess")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PORT", "LABEL", "CHIP", "MODE", "STATE", "BLOCK"]
    assert lines[1].split() == ["1-1.1", "-", "esp32s2", "ROM", "download", "ready", "64"]
    assert lines[2].split() == ["1-1.2", "-", "unknown", "USB-Serial-JTAG", "-", "-"]
    assert lines[3].split() == [
        "1-1.3", "-", "esp32s2", "ROM", "download", "no", "permission", "64"
    ]  # fmt: skip
    notes = " ".join(line.strip() for line in lines[4:])
    assert (
        "1-1.2: Flash it over serial" in notes and "USB-Serial-JTAG" in notes and "USB-OTG" in notes
    )
    assert "1-1.3: Install the udev rule" in notes and "udev-rule" in notes


def test_list_shows_a_board_without_a_driver_and_the_fix() -> None:
    result = espdfu("list", "--json", "--sim", "esp32s2-nodriver,esp32s3-nodfudriver")
    assert result.returncode == 0, result.stderr
    bare, half = json.loads(result.stdout)
    assert (bare["access"], bare["accessible"], bare["state"]) == ("no_driver", False, "no driver")
    assert "esp-win-usb-drivers" in bare["hint"] and "Zadig" in bare["hint"]
    assert "Interface 2" in bare["hint"] and "after DETACH" in bare["hint"]
    assert (half["access"], half["state"], half["hint"]) == ("ok", "ready", "")
    table = espdfu("list", "--sim", "esp32s2-nodriver").stdout.splitlines()
    assert table[1].split() == ["1-1.1", "-", "esp32s2", "ROM", "download", "no", "driver", "64"]
    assert table[2].startswith("1-1.1: Install the WinUSB driver")


def test_list_json_and_verbose() -> None:
    result = espdfu("list", "--json", "--sim", "esp32s3-dfu*2")
    boards = json.loads(result.stdout)
    assert [b["path"] for b in boards] == ["1-1.1", "1-1.2"]
    assert {"path", "vid", "pid", "chip", "mode", "accessible", "hint", "state"} <= set(boards[0])
    assert boards[0]["pid"] == 9 and boards[0]["mode"] == "dfu" and boards[0]["state"] == "ready"
    verbose = espdfu("list", "-v", env={"ESPDFU_SIM": "esp32s2"})
    assert verbose.stdout.startswith("USB: virtual boards (esp32s2)")


def test_list_without_boards_says_how_to_get_one() -> None:
    empty = espdfu("list", env={"ESPDFU_SIM": ""})  # real libusb: this machine has no boards
    assert empty.returncode == 0
    assert empty.stdout.splitlines() == [
        "No boards found.",
        "Hold BOOT, tap RESET and release BOOT to put a board in download mode.",
    ]


def test_flash_the_only_board(s2_file: Path) -> None:
    result = espdfu("flash", s2_file, "--sim", "esp32s2")
    assert result.returncode == 0, result.stderr
    assert "1-1.1  esp32s2  Flashed" in result.stdout
    assert "1 of 1 board flashed." in result.stdout and "Press RESET" in result.stdout
    assert "downloading" in result.stderr  # plain progress lines when not on a terminal
    assert all(line == line.rstrip() for line in result.stderr.splitlines())  # for logs


def test_flash_refuses_to_guess_between_boards(s2_file: Path) -> None:
    result = espdfu("flash", s2_file, "--sim", "esp32s2*2")
    assert result.returncode == 2
    assert "--path 1-1.1 --path 1-1.2" in result.stderr and "--all" in result.stderr


def test_flash_all_skips_other_chips_and_reports_json(s2_file: Path) -> None:
    result = espdfu("flash", s2_file, "--all", "--json", "--sim", "esp32s2*2,esp32s3")
    assert result.returncode == 0, result.stderr
    results = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["path"], r["ok"], r["ending"]) for r in results] == [
        ("1-1.1", True, "idle"),
        ("1-1.2", True, "idle"),
    ]
    assert "skipping 1-1.3 (ROM download): The file is for esp32s2" in result.stderr


def test_flash_all_says_why_it_passes_over_each_board(s2_file: Path) -> None:
    """A board left out without a word looks like one espdfu did not see: every board --all
    passes over gets one line, those without DFU too."""
    spec = "esp32s2,esp32s3-jtag,esp32s2-noaccess,esp32s3"
    result = espdfu("flash", s2_file, "--all", "--sim", spec)
    assert result.returncode == 0, result.stderr
    skips = [line for line in result.stderr.splitlines() if "skipping" in line]
    assert skips == [
        "espdfu: skipping 1-1.2 (USB-Serial-JTAG): The device at 1-1.2 has no DFU interface.",
        "espdfu: skipping 1-1.3 (ROM download): The board at 1-1.3 cannot be opened.",
        "espdfu: skipping 1-1.4 (ROM download): The file is for esp32s2 but the board at 1-1.4 "
        "is esp32s3.",
    ]
    assert "1 of 1 board flashed." in result.stdout


def test_flash_a_chosen_board(s2_file: Path) -> None:
    result = espdfu("flash", s2_file, "--path", "1-1.2", "--sim", "esp32s2*2")
    assert result.returncode == 0 and "1-1.2" in result.stdout and "1-1.1" not in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--path", "9-9"], "No board at 9-9"),
        (["--path", "1-1.1", "--all"], "--all: not allowed with argument -p/--path"),
    ],
)
def test_flash_selection_mistakes(s2_file: Path, args: list[str], words: str) -> None:
    result = espdfu("flash", s2_file, *args, "--sim", "esp32s2")
    assert result.returncode == 2 and words in result.stderr


def test_flash_a_wrong_chip_board_by_path(tmp_path: Path) -> None:
    path = tmp_path / "s3.bin"
    path.write_bytes(dfufile.pack(image_files(), pid=9))
    result = espdfu("flash", path, "--path", "1-1.1", "--sim", "esp32s2")
    assert result.returncode == 2 and "is esp32s2" in result.stderr
    forced = espdfu("flash", path, "--path", "1-1.1", "--force", "--sim", "esp32s2")
    assert forced.returncode == 0


def test_a_label_names_a_board_as_its_port_path_does(s2_file: Path, tmp_path: Path) -> None:
    """The app and `watch` name the board "slot A"; `flash -p "slot A"` said "No board at slot
    A." and `list` showed no label."""
    labels = labelled(tmp_path / "config", {"1-1.2": "slot A"})
    listed = espdfu("list", "--sim", "esp32s2*2", env=labels)
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows[1:3] == [
        ["1-1.1", "-", "esp32s2", "ROM", "download", "ready", "64"],
        ["1-1.2", "slot", "A", "esp32s2", "ROM", "download", "ready", "64"],
    ]
    as_json = json.loads(espdfu("list", "--json", "--sim", "esp32s2*2", env=labels).stdout)
    assert [board["label"] for board in as_json] == [None, "slot A"]
    result = espdfu("flash", s2_file, "-p", "slot A", "--sim", "esp32s2*2", env=labels)
    assert result.returncode == 0, result.stderr
    assert "1-1.2  esp32s2  Flashed" in result.stdout and "1-1.1" not in result.stdout
    unknown = espdfu("flash", s2_file, "-p", "slot B", "--sim", "esp32s2*2", env=labels)
    assert unknown.returncode == 2
    assert (
        "'slot B' is neither a USB port path (such as 1-1.2) nor a board's label ('slot A')."
        in (unknown.stderr)
    )


def test_force_says_what_it_overrides(tmp_path: Path) -> None:
    path = tmp_path / "s3.bin"
    path.write_bytes(dfufile.pack(image_files(), pid=9))
    forced = espdfu("flash", path, "--path", "1-1.1", "--force", "--sim", "esp32s2")
    assert forced.returncode == 0
    assert (
        "espdfu: warning: --force flashes 1-1.1 although: The file is for esp32s3 but the board "
        "at 1-1.1 is esp32s2." in forced.stderr.splitlines()
    )
    fitting = espdfu("flash", path, "--force", "--sim", "esp32s3")
    assert fitting.returncode == 0 and "--force" not in fitting.stderr


def test_flash_refuses_a_dfu_bin_older_than_the_build_beside_it(tmp_path: Path) -> None:
    """`idf.py build` does not remake dfu.bin: the one beside the build held an older app, and
    was flashed."""
    (tmp_path / "build").mkdir()
    stale_build(tmp_path / "build")
    said = "build/dfu.bin holds an older app than build/app.bin"
    refused = espdfu("flash", "build/dfu.bin", "--sim", "esp32s2", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        f"espdfu: {said}, so it is not what the build beside it flashes.",
        "  Run `idf.py dfu` (or `espdfu mkdfu --build-dir build`) to make it again, or flash it "
        "as it is with --force.",
    ]
    forced = espdfu("flash", "build/dfu.bin", "--force", "--sim", "esp32s2", cwd=tmp_path)
    assert forced.returncode == 0 and "Flashed" in forced.stdout
    assert f"espdfu: warning: --force flashes it although {said}." in forced.stderr.splitlines()


def test_after_several_boards_reset_is_asked_once_of_each(s2_file: Path) -> None:
    several = espdfu("flash", s2_file, "--all", "--sim", "esp32s2*2").stdout.splitlines()
    assert [line for line in several if "RESET" in line] == [
        "Press RESET on each board to run the new firmware: the ESP ROM does not start it by "
        "itself."
    ]
    one = espdfu("flash", s2_file, "--sim", "esp32s2").stdout
    assert "Press RESET on the board to run" in one


def test_flash_with_no_board_waits_then_fails(s2_file: Path) -> None:
    result = espdfu("flash", s2_file, "--wait", "0.3", "--sim", "esp32s3-jtag")
    assert result.returncode == 1
    assert "No board can take this esp32s2 file" in result.stderr
    assert (
        "1-1.1 (unknown, USB-Serial-JTAG: no DFU interface). Flash it over serial" in result.stderr
    )


def test_flash_an_invalid_file_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "app.bin"
    path.write_bytes(b"\xe9" + bytes(1000))
    result = espdfu("flash", path, "--sim", "esp32s2")
    assert result.returncode == 2 and "raw ESP firmware image" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=str)
def test_a_stop_signal_aborts_every_download_cleanly(s2_file: Path, signum: signal.Signals) -> None:
    """Ctrl-C, SIGTERM or a dropped SSH session mid-download: each board is aborted into
    dfuIDLE and said so, one line each; exit 128 + the signal, no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "espdfu", "flash", str(s2_file), "--all", "--sim", "esp32s2*2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ESPDFU_SIM_TIME": "1"},
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "downloading" in line:
            break
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, err
    for path in ("1-1.1", "1-1.2"):
        assert f"{path}  esp32s2  Cancelled at byte" in out
    assert "the board is left ready to flash again" in out and "0 of 2 boards flashed." in out
    assert (
        f"espdfu: stopped by {signum.name}: 2 flashes aborted, boards left ready to flash "
        "(1-1.1, 1-1.2)." in err
    )
    assert "Traceback" not in err


def test_json_bytes_are_the_bytes_the_board_confirmed_when_cancelled() -> None:
    """A cancelled flash's `bytes` agrees with its message's "at byte N"; `size` is the whole
    download, which is what `bytes` is after a flash that went well."""
    w = world("esp32s2")
    cancel = threading.Event()

    def progress(update: Progress) -> None:
        if update.done >= 8 * KIB:
            cancel.set()

    every_block = FlashOptions(progress_interval_s=0.0)
    result = flash(w.usb, "1-1.1", image(), options=every_block, progress=progress, cancel=cancel)
    cancelled = result.as_dict()
    assert cancelled["error"] == "cancelled"
    assert 8 * KIB <= cancelled["bytes"] < cancelled["size"] == len(image().payload)
    assert (
        f"Cancelled at byte {cancelled['bytes']:,} of {cancelled['size']:,}"
        in (cancelled["message"])
    )
    flashed = flash(w.usb, "1-1.1", image()).as_dict()
    assert flashed["ok"] and flashed["bytes"] == flashed["size"] == cancelled["size"]


def test_a_cable_pulled_by_the_spec_ends_the_flash_at_that_byte(s2_file: Path) -> None:
    """The fault comes from the command line, as a demonstration or a rig's own test has it."""
    result = espdfu("flash", s2_file, "--json", "--sim", "esp32s2:pull@20000")
    assert result.returncode == 1, result.stderr
    (outcome,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert outcome["error"] == "vanished"
    assert outcome["bytes"] == 20000 // 64 * 64  # the blocks before the one carrying byte 20000
    assert "The board vanished at byte 19,968 of" in outcome["message"]
    assert "check the cable" in outcome["hint"]


def test_udev_rule_is_least_privilege() -> None:
    result = espdfu("udev-rule")
    rule = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert rule == [
        'SUBSYSTEM=="usb", ATTR{idVendor}=="303a", MODE="0660", GROUP="plugdev", TAG+="uaccess"'
    ]
    assert "udevadm control --reload-rules" in result.stdout
    assert "0666" not in result.stdout


def test_udev_install_needs_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(EspdfuError, match="needs root") as caught:
        udev.install(tmp_path / "70-espdfu.rules")
    assert 'sudo "$(command -v espdfu)" udev-rule --install' in caught.value.hint
    assert not (tmp_path / "70-espdfu.rules").exists()


def test_udev_install_as_root_writes_the_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("espdfu.udev.shutil.which", lambda name: None)  # no udevadm here
    target = tmp_path / "70-espdfu.rules"
    said = udev.install(target)
    assert target.read_text().count('ATTR{idVendor}=="303a"') == 1
    assert said[0] == f"Installed {target}." and "udevadm was not found" in said[1]


def test_each_boards_progress_line_says_its_end_as_it_ends(s2_file: Path) -> None:
    """A board's line said "finishing" (or "erasing …") until the whole command ended."""
    result = espdfu("flash", s2_file, "--all", "--sim", "esp32s2,esp32s2:status=errVERIFY@4K")
    ends = [line.split(None, 1) for line in result.stderr.splitlines()]
    assert any(path == "1-1.1" and words.startswith("flashed in ") for path, words in ends)
    assert any(
        path == "1-1.2" and words.startswith("failed: device error after ") for path, words in ends
    ), result.stderr
    assert result.returncode == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_boards_line_is_redrawn_with_its_end() -> None:
    terminal = _Terminal()
    live = LiveProgress(["1-1.1", "1-1.2"], terminal)
    live.update(Progress("1-1.1", Phase.MANIFESTING, 100, 100))
    live.update(Progress("1-1.2", Phase.ERASING, 0, 100))
    live.finish(FlashResult("1-1.1", "esp32s2", 100, 9.4))
    last_frame = terminal.getvalue().rsplit("\x1b[2F", 1)[-1]  # the last redraw of both lines
    assert "1-1.1  flashed in 9.4 s" in last_frame
    assert "1-1.2  erasing" in last_frame
