"""Virtual boards as a USB world: the pyusb backend, and where their apps' consoles are.

The same two seams as real boards: discovery and flashing go through the backend, consoles
through :class:`~espdfu.usb.transport.SerialPorts`; nothing above asks which world it is.
"""

from __future__ import annotations

from ..usb.transport import Usb
from .backend import SimBackend, SimBus


class VirtualSerial:
    """Each virtual board's app console: the pseudo-terminal it prints to while it runs."""

    def __init__(self, bus: SimBus) -> None:
        self._bus = bus

    def at(self, usb_path: str) -> str | None:
        board = self._bus.boards.get(usb_path)
        return board.console_port if board is not None else None

    def espressif(self) -> list[str]:
        return list(self._bus.boards)

    def bridges_beside(self, usb_path: str) -> list[tuple[str, str]]:
        """None: a virtual board's bridge has no port of its own (espdfusim://BOARD reaches it)."""
        return []


def virtual_usb(bus: SimBus, description: str = "virtual boards") -> Usb:
    """The USB world of ``bus``'s boards."""
    return Usb(SimBackend(bus), description, VirtualSerial(bus))
