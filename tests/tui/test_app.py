"""The app starts, shows its empty state and quits."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from textual.widgets import Footer, Header, Static

from espdfu import __version__
from espdfu_tui.__main__ import build_parser, main
from espdfu_tui.app import DEMO_HINT, DOWNLOAD_MODE_HINT, NO_BOARDS_TEXT, EspdfuApp, make_app

SIZE = (80, 24)


def visible_text(app: EspdfuApp, selector: str) -> str:
    """The text of a Static that is laid out inside the screen."""
    widget = app.query_one(selector, Static)
    assert widget.display
    assert widget.region.area > 0
    assert app.screen.region.contains_region(widget.region)
    return str(widget.content)


async def test_starts_with_no_boards_and_the_download_mode_hint() -> None:
    app = make_app(demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.title == "espdfu-tui"
        assert app.query_one(Header) is not None
        assert app.query_one(Footer) is not None
        assert visible_text(app, "#no-boards") == NO_BOARDS_TEXT
        assert visible_text(app, "#hint") == DOWNLOAD_MODE_HINT


async def test_demo_mode_says_so() -> None:
    app = make_app(demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.demo
        assert "demo" in app.sub_title
        assert visible_text(app, "#no-boards") == NO_BOARDS_TEXT
        assert visible_text(app, "#hint") == DEMO_HINT


@pytest.mark.parametrize("key", ["q", "ctrl+q"])
async def test_key_quits(key: str) -> None:
    app = make_app(demo=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0


def test_quit_binding_has_an_id() -> None:
    ids = {b.id for b in EspdfuApp.BINDINGS if not isinstance(b, tuple) and b.id}
    assert "quit" in ids


def test_parser() -> None:
    assert build_parser().parse_args(["--demo"]).demo is True
    assert build_parser().parse_args([]).demo is False


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"espdfu-tui {__version__}"


def test_console_script_is_installed() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("espdfu-tui") == "espdfu_tui.__main__:main"
    assert scripts.get("espdfu") == "espdfu.cli:main"
