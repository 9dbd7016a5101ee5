"""What an app process behind ``espdfu-tui --serve`` (``serve``) needs: one per browser tab."""

from __future__ import annotations

import os
import signal
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.drivers.web_driver import WebDriver
from textual.widgets import Static


class BrowserDriver(WebDriver):
    """Textual's driver for a browser tab, which also ends the app when its server is gone.

    The server writes the tab's keys to the app's stdin. When that ends with no quit first (the
    server killed, or crashed), Textual's driver would leave the app running, holding the boards
    and writing to nobody. A hang-up signal ends it the way a closed terminal ends the app.
    """

    def run_input_thread(self) -> None:
        super().run_input_thread()
        if not self.exit_event.is_set() and hasattr(signal, "SIGHUP"):
            os.kill(os.getpid(), signal.SIGHUP)


class AlreadyRunningApp(App[None]):
    """What a second tab shows when another app owns the boards: the sentence, not a blank."""

    TITLE = "espdfu-tui"
    CSS = """
    Screen { align: center middle; }
    #message { width: 80; max-width: 100%; height: auto; padding: 1 2; border: heavy $error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Close")]

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(driver_class=BrowserDriver)
        self.message = message
        self.hint = hint

    def compose(self) -> ComposeResult:
        yield Static(
            f"{self.message}\n\n{self.hint}\n\nThen reload this page. (q closes this one.)",
            id="message",
        )
