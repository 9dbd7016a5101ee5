"""The one choice the entry points make: real USB, or virtual boards.

Everything below the entry points (the flasher, the workbench, the consoles) is handed a
:class:`~espdfu.usb.transport.Usb` and never asks which it is: the virtual boards of
:mod:`espdfu.sim` come in through the same seams as real ones, a pyusb backend and their
serial ports. ``--sim`` and ``$ESPDFU_SIM`` name them; the demo makes its own.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import InputError
from .usb.transport import Usb, open_libusb

if TYPE_CHECKING:
    from .sim import SimBus

SIM_ENV = "ESPDFU_SIM"
SIM_TIME_ENV = "ESPDFU_SIM_TIME"
"""How fast virtual boards run: 1 is real time (the default), 0 instant, 0.1 ten times faster."""


def sim_spec(sim: str | None = None) -> str:
    """The virtual boards asked for: ``sim`` if given, else ``$ESPDFU_SIM`` ("": none)."""
    return sim if sim is not None else os.environ.get(SIM_ENV, "")


def open_usb(sim: str | None = None) -> Usb:
    """The USB world to use: virtual boards for a ``sim`` spec (or ``$ESPDFU_SIM``), else libusb."""
    spec = sim_spec(sim)
    return virtual_world(spec)[0] if spec else open_libusb()


def virtual_world(spec: str) -> tuple[Usb, SimBus]:
    """Virtual boards as ``spec`` names them, running as fast as ``$ESPDFU_SIM_TIME`` says: the
    world to hand on, and the bus whose boards a demo's finger may press."""
    from .sim import SimBus, TimeModel, virtual_usb

    bus = SimBus.from_spec(spec, time=TimeModel.scaled(_sim_time_scale()))
    return virtual_usb(bus, f"virtual boards ({spec})"), bus


def _sim_time_scale() -> float:
    text = os.environ.get(SIM_TIME_ENV, "1")
    try:
        scale = float(text)
    except ValueError:
        scale = -1.0
    if not 0 <= scale <= 100:
        raise InputError(f"{SIM_TIME_ENV}={text!r} is not a time scale from 0 (instant) to 100.")
    return scale
