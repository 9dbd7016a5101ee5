"""The Textual application: for now a single screen saying that no board is connected."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Header, Static

from espdfu import __version__

NO_BOARDS_TEXT = "No boards connected."
DOWNLOAD_MODE_HINT = "Hold BOOT, tap RESET, release BOOT to put a board in download mode."
DEMO_HINT = "Demo mode: virtual boards will appear here."


class EspdfuApp(App[None]):
    """The espdfu-tui application."""

    TITLE = "espdfu-tui"

    CSS = """
    #boards {
        align: center middle;
    }
    #boards > Static {
        width: 100%;
        text-align: center;
    }
    #no-boards {
        text-style: bold;
    }
    #hint {
        color: $text-muted;
    }
    """

    # Every binding has an id, so that users can remap keys with App.set_keymap.
    # ctrl+q (quit) and ctrl+p (command palette) come from textual.app.App.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, *, demo: bool = False) -> None:
        super().__init__()
        self.demo = demo
        self.sub_title = f"demo · {__version__}" if demo else __version__

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="boards"):
            yield Static(NO_BOARDS_TEXT, id="no-boards")
            yield Static(DEMO_HINT if self.demo else DOWNLOAD_MODE_HINT, id="hint")
        yield Footer()


def make_app(demo: bool = False) -> EspdfuApp:
    """Build the application, the same way for the command line and the tests."""
    return EspdfuApp(demo=demo)
