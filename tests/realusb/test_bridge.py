"""The loop closed through a real USB stack: DevKits whose USB-UART bridge (a CDC-ACM on a USB
port of its own, read by the guest's cdc_acm and pyserial) resets them, from a board running its
old build to the new one verified running, with no button pressed; one test per outcome
(verified, did not boot, another build, no console). The scenario is tests/realusb/loop.py's;
see docs/real-usb.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from espdfu.files import dfufile
from tests.realusb.harness import GuestRun, boot
from tests.realusb.loop import BOARDS, INPUTS, NEW, OLD, SCENARIO, dfu_bin, parts

pytestmark = [pytest.mark.realusb, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def loop(realusb: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestRun]:
    yield boot(SCENARIO, boards=BOARDS, inputs=INPUTS, workdir=tmp_path_factory.mktemp("bridge"))


def lines(run: GuestRun, name: str) -> list[str]:
    """A step's stdout lines without their timestamps."""
    return [line.split(" ", 1)[1] for line in run.step(name).stdout.splitlines() if " " in line]


def result(run: GuestRun, name: str) -> dict[str, Any]:
    (line,) = run.step(name).stdout.splitlines()
    return dict(json.loads(line))


def test_a_board_in_its_app_is_reset_flashed_reset_and_verified_with_no_hands(
    loop: GuestRun,
) -> None:
    board = loop.boards[0]
    said = lines(loop, "watch")
    new_app = NEW[-1]
    elf = dfufile.parse(dfu_bin(NEW)).contents.app
    assert elf is not None
    verified = f"verified: it runs espdfu-demo 2.0 (ELF {elf.elf_prefix[:8]}…), the build flashed"
    assert f"{board.path}: {verified} here." in said, loop.step("watch")
    assert board.flash[new_app.address : new_app.address + len(new_app.data)] == new_app.data
    # into download mode, DETACH, DFU mode, then into the app: each through the bus
    bus = [e.get("mode") or e["event"] for e in board.report["events"] if e["event"] != "erasing"]
    assert bus[: bus.index("unplugged")] == [
        "app booted", "reset held", "rom", "detached", "dfu", "reset held", "app booted"
    ], bus  # fmt: skip


def test_the_loop_is_timed_part_by_part(loop: GuestRun) -> None:
    """The parts follow each other and make the whole (benchmarks/bench_loop_realusb.py)."""
    timed = parts(loop)
    whole = timed.pop("whole loop")
    assert all(seconds > 0 for seconds in timed.values()), timed
    assert abs(sum(timed.values()) - whole) < 1e-6, timed


def test_the_bridge_never_resets_a_board_it_only_reads(loop: GuestRun) -> None:
    """Opening the port (which Linux does with DTR and RTS raised) and reading it: EN stays
    high; it goes low twice, into download mode and back into the app."""
    lines_set = [tuple(pair) for pair in loop.boards[0].report["lines"]]
    en_low = [n for n, (dtr, rts) in enumerate(lines_set) if rts and not dtr]
    resets = [n for n in en_low if n == 0 or n - 1 not in en_low]
    assert len(resets) == 2, lines_set


def test_an_app_that_crashes_at_start_is_said_not_to_boot(loop: GuestRun) -> None:
    board = loop.boards[1]
    said = lines(loop, "watch")
    assert f"{board.path}: the build flashed here did not boot: LoadProhibited." in said, loop.step(
        "watch"
    )
    assert not any(line.startswith(f"{board.path}: verified") for line in said)


def test_another_build_running_is_named_and_exits_3(loop: GuestRun) -> None:
    """The file wrote its app at 0x10000; the board's partition table boots 0x20000, where the
    old build is."""
    step = loop.step("other")
    assert step.rc == 3, step
    verdict = result(loop, "other")["verdict"]
    old = dfufile.parse(dfu_bin(OLD)).contents.app
    assert old is not None
    assert verdict.startswith(f"NOT verified: runs another build (ELF {old.elf_prefix[:8]}…"), step


def test_a_board_with_no_console_is_not_verified_and_exits_3(loop: GuestRun) -> None:
    step = loop.step("no_console")
    assert step.rc == 3, step
    said = result(loop, "no_console")
    assert said["ok"] and not said["verified"], step
    assert said["verdict"] == "NOT verified: no console came for it within 5 s", step
    assert "press RESET on the board now" in step.stderr, step
