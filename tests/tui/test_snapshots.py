"""Snapshots of the main screens (Textual pinned; nothing time-dependent on them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from espdfu_tui.panels import BoardPanel
from tests.helpers.harness import make_app, until

Compare = Callable[..., bool]


@pytest.fixture(autouse=True)
def _same_place_every_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESPDFU_DEMO_BUILD_S", "0")
    monkeypatch.chdir(tmp_path)


async def _boards_shown(pilot: Pilot[int]) -> None:
    await until(pilot, lambda: len(pilot.app.query(BoardPanel)) == 5, "the panels")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_boards_at_start(snap_compare: Compare, tmp_path: Path, size: tuple[int, int]) -> None:
    app, _ = make_app(tmp_path, spec="esp32s2*2,esp32s3,esp32s3-jtag,esp32s2-noaccess")
    assert snap_compare(app, terminal_size=size, run_before=_boards_shown)


def test_help_screen(snap_compare: Compare, tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, spec="esp32s2*2,esp32s3,esp32s3-jtag,esp32s2-noaccess")
    assert snap_compare(app, press=["question_mark"], run_before=_boards_shown)
