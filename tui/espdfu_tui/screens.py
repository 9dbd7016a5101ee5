"""The modal screens: help, a board's label, and "really quit?"."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class HelpScreen(ModalScreen[None]):
    """Every key, and the facts a user asks about (config files, USB library)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="close_help")
    ]

    def __init__(self, keys: list[tuple[str, str]], facts: list[str]) -> None:
        super().__init__()
        self.keys = keys
        self.facts = facts

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static("Keys", classes="title")
            keys = Table.grid(padding=(0, 2))  # a long line wraps under its own column
            keys.add_column(justify="right", no_wrap=True)
            keys.add_column()
            for key, what in self.keys:
                keys.add_row(key, what)
            yield Static(keys)
            yield Static("Setup", classes="title")
            yield Static("\n".join(self.facts))
            yield Static("Press Esc, q or ? to close.", classes="hint")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class LabelScreen(ModalScreen[str | None]):
    """Name a board; the name is kept by port path in the user's config."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, path: str, label: str) -> None:
        super().__init__()
        self.path = path
        self.label = label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Label for the board at {self.path} (empty to remove):")
            yield Input(value=self.label, placeholder="e.g. left jig", id="label-input")
            yield Static("Enter to save, Esc to cancel.", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; y and n answer it from the keyboard."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="yes"),
        Binding("n,escape", "answer(False)", "No", id="no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question)
            with Horizontal(id="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
