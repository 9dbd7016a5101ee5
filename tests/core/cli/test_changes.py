"""`espdfu flash --diff-with OLD`: only the sectors changed since OLD, checked by the boot after.

Run in this process, on a bus of virtual boards whose flash holds an earlier flash (a board's
flash does not outlive a process), through the real command line, flasher and consoles."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from espdfu.cli import boards as boards_command
from espdfu.cli import main
from espdfu.demo.project import PARTITIONS, app_image, bootloader_image
from espdfu.files import dfufile
from espdfu.files.delta import compose
from espdfu.files.dfufile import FlashFile
from espdfu.files.partitions import write_table
from espdfu.flashing.flasher import flash
from espdfu.sim.bridge import bridge_url
from espdfu.usb.trace import read_trace
from tests.helpers.boardworld import World, world

PATH = "1-1.1"
BUILT = time.gmtime(0)
NVS_AT = 0x9000


def build(version: str, seed: int = 0) -> bytes:
    """An S2 dfu.bin as `idf.py dfu` packs a project with an NVS image."""
    files = [
        FlashFile(0x1000, "bootloader.bin", bootloader_image()),
        FlashFile(0x8000, "partition-table.bin", write_table(PARTITIONS)),
        FlashFile(NVS_AT, "nvs.bin", b"\x01" * 300),
        FlashFile(0x10000, "app.bin", app_image(version, BUILT, 64 * 1024, seed=seed)),
    ]
    return dfufile.pack(files, pid=0x0002)


OLD, NEW, OTHER = build("build 1"), build("build 2"), build("build 9", seed=3)


def board_holding(*files: bytes, spec: str = "esp32s2:bridge") -> World:
    """A virtual board at PATH whose flash holds ``files``, flashed in turn."""
    board_world = world(spec)
    for data in files:
        assert flash(board_world.usb, PATH, dfufile.parse(data)).ok
    return board_world


def run(
    board_world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    as_json: bool = True,
) -> tuple[int, str, str]:
    """`espdfu flash NEW -p PATH --json ARGS` on ``board_world``, its bridge linked (without
    --json when not ``as_json``)."""
    (tmp_path / "new.dfu.bin").write_bytes(NEW)
    (tmp_path / "old.dfu.bin").write_bytes(OLD)
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text(f'[consoles]\n"{PATH}" = "{bridge_url(PATH)}"\n')
    monkeypatch.setenv("ESPDFU_CONFIG_DIR", str(config))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(boards_command, "open_usb", lambda sim: board_world.usb)
    capsys.readouterr()
    code = main(["flash", "new.dfu.bin", "-p", PATH, *(["--json"] if as_json else []), *args])
    out, err = capsys.readouterr()
    return code, out, err


def received(board_world: World) -> dict[str, int]:
    """The files of the board's last download, and their sizes."""
    return {file.name: file.size for file in board_world.board(PATH).last_files}


def test_the_changes_only_leave_the_flash_as_the_whole_file_and_are_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    board_world = board_holding(OLD)
    code, out, err = run(
        board_world, tmp_path, monkeypatch, capsys, "--diff-with", "old.dfu.bin", "--verify", "10"
    )
    assert code == 0, err
    said = json.loads(out)
    assert said["ok"] and said["verified"], said
    sent = said["sent"]
    assert sent["mode"] == "delta" and 0 < sent["sent"] < sent["total"] / 3
    assert {run["image"] for run in sent["runs"]} == {"app.bin", "nvs.bin"}  # NVS: always
    assert sum(received(board_world).values()) == sent["sent"]
    assert received(board_world)["9000-nvs.bin"] == 300
    twin = board_holding(OLD, NEW)
    assert board_world.board(PATH).flash == twin.board(PATH).flash
    assert "sending " in err and "sectors changed since old.dfu.bin" in err


def test_a_board_that_held_another_build_gets_the_whole_file_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user was wrong about OLD: the boot after the changes shows it, the whole file
    follows, and the board ends as a whole flash leaves it, verified."""
    board_world = board_holding(OTHER)
    code, out, err = run(
        board_world, tmp_path, monkeypatch, capsys, "--diff-with", "old.dfu.bin", "--verify",
        "10", "--trace", "both.trace",
    )  # fmt: skip
    assert code == 0, err
    flashes = [line for line in read_trace(tmp_path / "both.trace") if line["event"] == "flash"]
    assert [line["size"] for line in flashes] == [  # both rounds, in one file
        len(compose(dfufile.parse(NEW), dfufile.parse(OLD)).image.payload),
        len(dfufile.parse(NEW).payload),
    ]
    said = json.loads(out)
    assert said["verified"] and said["sent"]["mode"] == "full", said
    assert f"{PATH}: after the changes only, NOT verified: " in err
    assert ": flashing the whole file." in err
    assert board_world.board(PATH).flash == board_holding(OTHER, NEW).board(PATH).flash


def test_without_a_check_the_whole_file_goes_unless_the_base_is_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    board_world = board_holding(OLD)
    code, out, err = run(board_world, tmp_path, monkeypatch, capsys, "--diff-with", "old.dfu.bin")
    assert code == 0, err
    assert json.loads(out)["sent"]["mode"] == "full"
    assert "sending the whole file: nothing would check that the boards hold old.dfu.bin" in err
    code, out, err = run(
        board_world, tmp_path, monkeypatch, capsys, "--diff-with", "old.dfu.bin", "--trust-base"
    )
    assert code == 0, err
    assert json.loads(out)["sent"]["mode"] == "delta"


def test_nothing_changed_flashes_nothing_and_full_sends_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    board_world = board_holding(NEW)
    (tmp_path / "same.dfu.bin").write_bytes(NEW)
    requests = board_world.board(PATH).requests.total()
    code, out, err = run(
        board_world, tmp_path, monkeypatch, capsys, "--diff-with", "same.dfu.bin", "--verify"
    )
    assert code == 0, err
    assert json.loads(out) == {"mode": "delta", "sent": 0, "total": json.loads(out)["total"],
                               "sectors": 0, "runs": []}  # fmt: skip
    assert board_world.board(PATH).requests.total() == requests  # not a word to the board
    code, out, err = run(
        board_world,
        tmp_path,
        monkeypatch,
        capsys,
        "--diff-with",
        "same.dfu.bin",
        "--verify",
        as_json=False,
    )
    assert out.splitlines() == [
        "nothing changed since same.dfu.bin: nothing sent.",
        "--full sends the whole file anyway.",
    ]
    code, out, err = run(
        board_world, tmp_path, monkeypatch, capsys, "--diff-with", "same.dfu.bin", "--full"
    )
    assert code == 0, err
    assert json.loads(out)["sent"]["mode"] == "full"
    assert "app.bin" in received(board_world)


def test_a_base_for_another_chip_is_refused_before_any_flash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    board_world = board_holding()
    s3 = dfufile.pack([FlashFile(0x10000, "app.bin", b"\xe9" * 100)], pid=0x0009)
    (tmp_path / "s3.dfu.bin").write_bytes(s3)
    code, out, err = run(
        board_world, tmp_path, monkeypatch, capsys, "--diff-with", "s3.dfu.bin", "--verify"
    )
    assert code == 2 and out == ""
    assert "cannot be sent as changes of s3.dfu.bin: the base is a file for esp32s3" in err
    assert board_world.board(PATH).last_files == []
