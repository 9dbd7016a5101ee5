"""Only the changes through a real USB stack (tests/realusb/changes.py's run): the board's flash
after them is byte for byte what the whole file leaves, the data partition goes whole, a board
that did not hold the base is caught by its boot and gets the whole file, and with nothing to
check the boot the whole file goes. See docs/real-usb.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.realusb.changes import (
    BOARDS,
    INPUTS,
    NEW,
    NVS_SIZE,
    OLD,
    OTHER,
    SCENARIO,
    flash_after,
)
from tests.realusb.harness import GuestRun, boot

pytestmark = [pytest.mark.realusb, pytest.mark.timeout(900)]
NEW_BIN = INPUTS["new.dfu.bin"]


@pytest.fixture(scope="module")
def run(realusb: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestRun]:
    yield boot(SCENARIO, boards=BOARDS, inputs=INPUTS, workdir=tmp_path_factory.mktemp("changes"))


def result(run: GuestRun, name: str) -> dict[str, Any]:
    (line,) = run.step(name).stdout.splitlines()
    return dict(json.loads(line))


def files(download: dict[str, Any]) -> dict[str, int]:
    return {file["name"]: file["size"] for file in download["files"]}


def test_the_changes_leave_the_whole_files_flash_and_the_board_runs_it(run: GuestRun) -> None:
    said = result(run, "changes")
    assert said["ok"] and said["verified"], run.step("changes")
    sent = said["sent"]
    assert sent["mode"] == "delta" and sent["sent"] < sent["total"] / 4, sent
    board = run.boards[0]
    (download,) = board.downloads
    received = files(download)
    assert received["9000-nvs.bin"] == NVS_SIZE  # the data partition: whole, always
    assert sum(received.values()) == sent["sent"]
    assert not any(name.startswith(("1000-", "8000-")) for name in received)  # unchanged
    assert board.flash == flash_after(OLD, NEW_BIN)


def test_a_board_that_held_another_build_is_caught_and_gets_the_whole_file(
    run: GuestRun,
) -> None:
    said = result(run, "wrong_base")
    assert said["ok"] and said["verified"] and said["sent"]["mode"] == "full", said
    step = run.step("wrong_base")
    board = run.boards[1]
    assert f"{board.path}: after the changes only, NOT verified: " in step.stderr, step
    changes, whole = board.downloads
    assert "9000-nvs.bin" in files(changes) and "app.bin" in files(whole)
    assert board.flash == flash_after(OTHER, NEW_BIN)


def test_with_nothing_to_check_the_boot_the_whole_file_goes(run: GuestRun) -> None:
    said = result(run, "unchecked")
    assert said["ok"] and said["sent"]["mode"] == "full", run.step("unchecked")
    assert "nothing would check that the boards hold" in run.step("unchecked").stderr
    (download,) = run.boards[2].downloads
    assert set(files(download)) == {file.name for file in NEW}
    assert run.boards[2].flash == flash_after(OLD, NEW_BIN)


def test_the_whole_file_to_the_same_board_leaves_the_same_flash(run: GuestRun) -> None:
    said = result(run, "whole")
    assert said["verified"] and said["sent"]["mode"] == "full", run.step("whole")
    assert run.boards[3].flash == run.boards[0].flash
