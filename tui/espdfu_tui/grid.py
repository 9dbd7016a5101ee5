"""The boards: one panel per board in port order, as many a row as the width allows, and the
selection's moves on the grid as it is drawn."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from espdfu.bench.views import BoardView
from espdfu.usb.transport import port_order

from .panels import PANEL_WIDTH, BoardPanel, panel_id

NO_BOARDS_TEXT = "No boards connected."
DOWNLOAD_MODE_HINT = "Hold BOOT, tap RESET, release BOOT to put a board in download mode."


class BoardGrid(VerticalScroll, can_focus=False, inherit_bindings=False):
    """The panels, as many per row as the width allows.

    Not focusable itself: focus is the board selection, so tab goes from board to board (the
    grid scrolls to the focused panel). Without the scroll keys of its base, whose bindings
    would take the arrows from the app's board selection as soon as the panels overflow; the
    mouse wheel still scrolls it."""

    def compose(self) -> ComposeResult:
        yield Static(f"{NO_BOARDS_TEXT}\n{DOWNLOAD_MODE_HINT}", id="no-boards")

    @property
    def columns(self) -> int:
        """Panels a row, as drawn now."""
        return self.styles.grid_size_columns or 1

    def on_resize(self) -> None:
        self.styles.grid_size_columns = max(1, self.size.width // PANEL_WIDTH)

    def show(self, view: BoardView, now: float) -> bool:
        """Show ``view``: its panel, or a new one in port order (the first one selected).
        Whether what the keys depend on may have changed (the footer's keys are redrawn then
        only: not for each console line)."""
        panel = next(self.query(f"#{panel_id(view.path)}").results(BoardPanel), None)
        if panel is not None:
            before = panel.keys_depend_on()
            panel.show(view, now)
            return panel.keys_depend_on() != before
        self.query_one("#no-boards").display = False
        panels = list(self.query(BoardPanel))
        place = port_order(view.path)
        later = [p for p in panels if port_order(p.view.path) > place]
        new = BoardPanel(view, now)
        self.mount(new, before=later[0] if later else None)
        if not panels:
            new.focus()
        return True

    def remove_board(self, path: str) -> None:
        for panel in self.query(f"#{panel_id(path)}"):
            panel.remove()
        if len(self.query(BoardPanel)) <= 1:  # the one being removed
            self.query_one("#no-boards").display = True

    def move(self, selected: BoardPanel | None, across: int, down: int) -> None:
        """From ``selected``, ``across`` panels in its row and ``down`` rows, on the grid as
        drawn; nothing past the row's ends, the top or the last board below."""
        panels = list(self.query(BoardPanel))
        if not panels:
            return
        # Focused at once (focus() would wait for the next idle): a key that follows at once,
        # as with a held arrow, moves on from the new board, not again from the old one.
        if selected not in panels:
            self.screen.set_focus(panels[0])
            return
        row, column = divmod(panels.index(selected), self.columns)
        row, column = row + down, column + across
        index = row * self.columns + column
        if 0 <= column < self.columns and row >= 0 and index < len(panels):
            self.screen.set_focus(panels[index])
