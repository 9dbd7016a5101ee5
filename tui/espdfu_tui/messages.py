"""The workbench's events as Textual messages, named as the model names them.

The workbench reports on its own threads; ``post_message`` is the thread-safe way into the app,
so each event travels in the message of its name and is handled on the UI thread by
``on_<name>``. A newer state of a board, or of the summary, replaces an older one still queued.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from espdfu.bench import views
from espdfu.bench.views import BoardView, Summary
from espdfu.consoles.lines import Line


@dataclass
class BoardChanged(Message):
    view: BoardView

    def can_replace(self, message: Message) -> bool:
        """A board's newer state makes its older one, still queued, pointless."""
        return isinstance(message, BoardChanged) and message.view.path == self.view.path


@dataclass
class BoardRemoved(Message):
    path: str


@dataclass
class SummaryChanged(Message):
    """The artifact, the build, auto-flash and the running flashes as they are now."""

    summary: Summary

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SummaryChanged)


@dataclass
class ConsoleOutput(Message):
    """A board's app printed these lines."""

    path: str
    lines: tuple[Line, ...]


@dataclass
class Logged(Message):
    text: str
    source: str
    level: str


def message_for(event: views.BenchEvent) -> Message | None:
    """The message that carries ``event`` (None: nothing the app shows)."""
    if isinstance(event, views.BoardChanged):
        return BoardChanged(event.view)
    if isinstance(event, views.BoardRemoved):
        return BoardRemoved(event.path)
    if isinstance(event, views.SummaryChanged):
        return SummaryChanged(event.summary)
    if isinstance(event, views.ConsoleOutput):
        return ConsoleOutput(event.path, event.lines)
    if isinstance(event, views.Logged):
        return Logged(event.text, event.source, event.level)
    return None
