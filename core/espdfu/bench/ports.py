"""The workbench's ports by path, and what they ask done: the hot-plug monitor's news and the
consoles' news routed to each port, and each port's effects carried out (its events posted, its
console read or released, a timer for the look for it)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

from ..config import is_port_path
from ..consoles import bridge
from ..consoles.lines import Line
from ..consoles.ports import serial_ports
from ..errors import EspdfuError
from ..files.backtrace import project_elf
from ..files.dfufile import DfuImage
from ..loops import Alarms
from ..usb.hotplug import BoardEvent, Change, HotPlug
from ..usb.transport import Usb
from .artifacts import Artifact
from .feed import ConsoleFeed, ConsoleView
from .port import (
    Effect,
    FlashWhole,
    Hide,
    LookFor,
    Policy,
    Port,
    ReadConsole,
    ResetIntoApp,
    Say,
    Show,
)
from .settings import WorkbenchSettings, board_setting, bridged, console_at
from .views import BoardChanged, BoardRemoved, BoardView, ConsoleOutput, Outbox


class Ports:
    """Every port the workbench knows, each with its life; used inside the model's lock."""

    def __init__(
        self,
        usb_world: Usb,
        settings: WorkbenchSettings,
        changes: Outbox,
        image: Callable[[], DfuImage | None],
    ) -> None:
        self.usb = usb_world
        self.settings = settings
        self._changes = changes
        self._image = image
        """The usable artifact's image now, for whether it fits each board."""
        self._ports: dict[str, Port] = {}
        self._alarms = Alarms()
        self._closed = False
        self._suggested: set[str] = set()
        """The ports whose bridge beside them was said (once a run)."""
        self.flash_whole: Callable[[str, Artifact], object] = lambda path, artifact: None
        """Flash the whole of an artifact to a port now (the flashes set it)."""
        for path, label in settings.labels.items():
            self.label(self.get(path), label)
        self.hotplug = HotPlug(usb_world, self._on_board_event, settings.monitor_interval_s)
        self.feed = ConsoleFeed(
            self.console_finder, self._on_console, elf=lambda: project_elf(settings.build_dir)
        )

    def get(self, path: str) -> Port:
        """The port at ``path``, known from now on."""
        port = self._ports.get(path)
        if port is None:
            settings = self.settings
            arm = path in settings.arm_only if settings.arm_only else settings.arm_new_boards
            policy = Policy(
                consoles=settings.consoles, arm=arm, away_s=settings.away_s,
                trust_base=settings.trust_base,
            )  # fmt: skip
            port = self._ports[path] = Port(path, policy=policy)
            port.bridged = self._bridged(port)
        return port

    def link_consoles(self) -> None:
        """Read, from the start, each console the settings link to a board (by its port path,
        or its label): a board whose app runs off the bus is seen there (:meth:`Port.linked`)."""
        by_label = {label: path for path, label in self.settings.labels.items() if label}
        for board in self.settings.console_ports:
            path = board if is_port_path(board) else by_label.get(board)
            if path is not None:
                port = self.get(path)
                self.apply(port, port.linked())

    def label(self, port: Port, label: str) -> None:
        """Name the board at ``port``: what the settings give a label (its console, its
        resets) follows."""
        port.label = label
        port.bridged = self._bridged(port)

    def __iter__(self) -> Iterator[Port]:
        return iter(list(self._ports.values()))

    def shown(self) -> dict[str, BoardView]:
        return {path: self.view(port) for path, port in self._ports.items() if port.shown}

    def view(self, port: Port) -> BoardView:
        return port.view(self._image(), self.settings.flash.force)

    def tell(self, path: str, news: Callable[[Port], list[Effect]]) -> None:
        """What happened to the port at ``path`` (a transition of it), from any thread."""
        with self._changes:
            if not self._closed:
                port = self.get(path)
                self.apply(port, news(port))

    def apply(self, port: Port, effects: list[Effect]) -> None:
        """Do what the port asks (inside the model's lock)."""
        for effect in effects:
            if isinstance(effect, Show):
                self._changes.post(BoardChanged(self.view(port)))
            elif isinstance(effect, Hide):
                self._changes.post(BoardRemoved(port.path))
            elif isinstance(effect, Say):
                self._changes.log(effect.text, level=effect.level)
            elif isinstance(effect, ReadConsole):
                self.feed.read(port.path, effect.on and not self._closed)
            elif isinstance(effect, FlashWhole) and not self._closed:
                self.flash_whole(port.path, effect.artifact)
            elif isinstance(effect, ResetIntoApp) and not self._closed:
                done = functools.partial(self._reset_done, port.path)
                self.feed.act(port.path, bridge.into_app, done)
            elif isinstance(effect, LookFor) and not self._closed:
                timed_out = functools.partial(Port.timed_out, look=effect.look)
                ring = functools.partial(self.tell, port.path, timed_out)
                self._alarms.set(port.path, effect.seconds, ring)

    def show(self, port: Port) -> None:
        """Report the board as it is now (an arm, a label, a new artifact changed its view)."""
        if port.shown:
            self.apply(port, [Show()])

    def close(self) -> None:
        """From now on nothing is done for any port; the threads the ports used are joined."""
        with self._changes:
            self._closed = True
        self._alarms.close()
        self.feed.close()
        self.hotplug.stop()

    # --- news from the bus and the consoles ---------------------------------------------------

    def _on_board_event(self, event: BoardEvent) -> None:
        path = event.board.path
        if event.change is Change.REMOVED:
            self.tell(path, Port.left)
            return
        self.tell(path, functools.partial(Port.seen, board=event.board))
        if path not in self._suggested:  # this thread's alone
            self._suggested.add(path)
            self._suggest_bridge(path)

    def _suggest_bridge(self, path: str) -> None:
        """Say once, for a board whose console is not linked, that a USB-UART bridge sits
        beside it on its hub: likely its DevKit's, which espdfu would reset it through once
        linked. Not linked here: that would take opening a serial port not known to be a
        DevKit's, and its lines reset whatever is there (an Arduino Uno resets as its port
        opens), or resetting the board through it; the user says."""
        with self._changes:
            port = self.get(path)
            linked = board_setting(self.settings.console_ports, path, port.label) is not None
            if self._closed or linked:
                return
            board = port.label or path
        beside = serial_ports(self.usb).bridges_beside(path)  # sysfs: outside the lock
        if len(beside) != 1:
            return  # none, or one of several: a guess
        ((bridge_path, what),) = beside
        self._changes.log(
            f"{path}: a USB-UART bridge ({what}) is at {bridge_path}, beside it on its hub. If it "
            f'is this DevKit\'s, link them ([consoles] "{board}" = "{bridge_path}"): espdfu '
            "then reads its console there and resets it itself, into download mode and back "
            "into its app."
        )

    def _on_console(self, path: str, view: ConsoleView, lines: tuple[Line, ...]) -> None:
        """A batch from the consoles' thread."""
        with self._changes:
            port = self._ports.get(path)
            if self._closed or port is None or port.console is None:
                return  # no longer read (a flash started): what it said before is moot
            if lines:  # before the state they brought about
                self._changes.post(ConsoleOutput(path, lines))
            self.apply(port, port.console_changed(view))

    def _reset_done(self, path: str, error: EspdfuError | None) -> None:
        """On a console reader's thread: how the reset into the app went."""
        self.tell(path, functools.partial(Port.reset_into_app_done, error=error))

    def console_finder(self, path: str) -> Callable[[], str | None]:
        """Where the console of the board at ``path`` is (:func:`console_at`): a bridged
        board's is its bridge's port."""
        port = self.get(path)
        return console_at(self.settings, path, port.label, self.usb)

    def _bridged(self, port: Port) -> bool:
        return bridged(self.settings, port.path, port.label)
