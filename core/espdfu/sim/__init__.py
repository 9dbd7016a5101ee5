"""Virtual ESP32-S2/S3 boards under pyusb, for tests, benchmarks and the demo (``--sim``).

``SimBackend(SimBus.from_spec("esp32s2*3,esp32s3"))`` is a ``usb.backend.IBackend``: pass it to
``usb.core.find`` and the real discovery and flashing code talks to boards that behave like
the ESP ROM, with faults on demand.
"""

from .backend import SimBackend, SimBus
from .board import BoardKind, Fault, FaultAction, VirtualBoard
from .descriptors import BusMode
from .receiver import ReceivedFile
from .spec import parse_spec
from .timing import TimeModel

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
    "parse_spec",
]
