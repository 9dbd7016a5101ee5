"""Virtual ESP32-S2/S3 boards under pyusb, for tests, benchmarks and the demo (``--sim``).

``SimBackend(SimBus.from_spec("esp32s2*3,esp32s3"))`` is a ``usb.backend.IBackend``: pass it to
``usb.core.find`` and the real discovery and flashing code talks to boards that behave like
the ESP ROM, with faults on demand; ``virtual_usb(bus)`` is the whole USB world of a bus, its
boards' consoles included. Only the entry points name the simulator (:mod:`espdfu.worlds`).
"""

from .backend import SimBackend, SimBus
from .board import BoardKind, Fault, FaultAction, VirtualBoard
from .descriptors import BusMode
from .receiver import ReceivedFile
from .spec import parse_spec
from .timing import TimeModel
from .world import VirtualSerial, virtual_usb

__all__ = [
    "BoardKind",
    "BusMode",
    "Fault",
    "FaultAction",
    "ReceivedFile",
    "SimBackend",
    "SimBus",
    "TimeModel",
    "VirtualBoard",
    "VirtualSerial",
    "parse_spec",
    "virtual_usb",
]
