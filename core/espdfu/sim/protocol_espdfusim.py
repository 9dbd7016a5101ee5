"""pyserial's handler of ``espdfusim://`` URLs, found by its name: a virtual board's bridge."""

from .bridge import BridgeSerial as Serial

__all__ = ["Serial"]
