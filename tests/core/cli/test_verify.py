"""`espdfu flash --verify` as a script runs it: after the flash, the board's next boot is read on
its console and checked against the build flashed; the exit code says the outcome."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from espdfu.demo.project import app_image
from espdfu.files import dfufile
from espdfu.files.dfufile import FlashFile
from espdfu.sim.bridge import bridge_url
from tests.helpers.command import espdfu

PATH = "1-1.1"


@pytest.fixture
def dfu_bin(tmp_path: Path) -> Path:
    """An S2 dfu.bin whose app names its build: espdfu-demo build 7."""
    app = app_image("build 7", time.gmtime(0), 16 * 1024)
    path = tmp_path / "dfu.bin"
    path.write_bytes(dfufile.pack([FlashFile(0x10000, "app.bin", app)], pid=0x0002))
    return path


def flash_verify(
    tmp_path: Path, dfu_bin: Path, spec: str, *args: str, config: str = ""
) -> subprocess.CompletedProcess[str]:
    """`espdfu flash DFU_BIN --sim SPEC ARGS`, in a configuration linking the board at PATH to
    its bridge ([consoles]), with ``config`` after."""
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "config.toml").write_text(f'[consoles]\n"{PATH}" = "{bridge_url(PATH)}"\n{config}')
    env = {"ESPDFU_CONFIG_DIR": str(folder)}
    return espdfu("flash", dfu_bin, "--sim", spec, *args, cwd=tmp_path, env=env)


def test_a_bridged_board_is_reset_into_its_app_and_verified(tmp_path: Path, dfu_bin: Path) -> None:
    result = flash_verify(tmp_path, dfu_bin, "esp32s2:bridge", "--verify", "10")
    assert result.returncode == 0, result.stderr
    assert f"{PATH}  verified: running espdfu-demo build 7" in result.stdout
    assert "Press RESET" not in result.stdout + result.stderr  # the bridge did it


def test_a_board_that_does_not_boot_it_exits_3_saying_why(tmp_path: Path, dfu_bin: Path) -> None:
    """Its app panics at every start: flashed, but not running the build."""
    result = flash_verify(tmp_path, dfu_bin, "esp32s2:bridge:panic", "--verify", "10", "--json")
    assert result.returncode == 3, result.stderr
    (line,) = result.stdout.splitlines()
    said = json.loads(line)
    assert said["ok"] and not said["verified"]
    assert said["verdict"] == "NOT verified: did not boot: LoadProhibited"


def test_without_a_bridge_the_user_is_asked_and_no_console_is_not_verified(
    tmp_path: Path, dfu_bin: Path
) -> None:
    """Its resets off ([resets] false), so the user is asked, and nobody presses RESET: said,
    never a guess, exit 3."""
    resets_off = f'[resets]\n"{PATH}" = false\n'
    result = flash_verify(tmp_path, dfu_bin, "esp32s2:bridge", "--verify", "1", config=resets_off)
    assert result.returncode == 3, result.stderr
    assert f"espdfu: {PATH}: press RESET on the board now, to run its new app." in result.stderr
    assert f"{PATH}  NOT verified: no boot named a build on {bridge_url(PATH)} within 1 s" in (
        result.stdout
    )
    assert "Press RESET on the board to run" not in result.stdout  # asked once, above


def test_a_mistake_in_the_configuration_stops_before_the_flash(
    tmp_path: Path, dfu_bin: Path
) -> None:
    """It was found after the flash, the board flashed and left unverified."""
    mistake = f'[resets]\n"{PATH}" = 1\n'
    result = flash_verify(tmp_path, dfu_bin, "esp32s2:bridge", "--verify", "5", config=mistake)
    assert result.returncode == 2
    assert f"[resets] {PATH} must be true or false, got 1." in result.stderr
    assert "Flashed" not in result.stdout and "downloading" not in result.stderr


def test_a_bridged_board_running_its_app_is_flashed_with_no_hands(
    tmp_path: Path, dfu_bin: Path
) -> None:
    """Off the bus (its app has no USB): its bridge resets it into download mode, and into its
    app after the flash, so nobody is asked to press anything."""
    result = flash_verify(tmp_path, dfu_bin, "esp32s2:bridge:running", "-p", PATH)
    assert result.returncode == 0, result.stderr
    said = result.stderr.splitlines()
    reset_in = (
        f"espdfu: {PATH}: reset into download mode through its UART bridge ({bridge_url(PATH)})."
    )
    assert reset_in in said
    assert f"espdfu: {PATH}: reset into its app through its UART bridge." in said
    assert "1 of 1 board flashed." in result.stdout and "RESET" not in result.stdout


def test_a_board_running_its_app_with_its_resets_off_is_not_there_to_flash(
    tmp_path: Path, dfu_bin: Path
) -> None:
    resets_off = f'[resets]\n"{PATH}" = false\n'
    result = flash_verify(
        tmp_path, dfu_bin, "esp32s2:bridge:running", "-p", PATH, config=resets_off
    )
    assert result.returncode == 2, result.stderr
    assert f"No board at {PATH}." in result.stderr and "reset into" not in result.stderr
