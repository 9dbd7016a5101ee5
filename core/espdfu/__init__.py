"""espdfu: flash ESP32-S2/S3 boards over native USB DFU (the core, without any UI)."""

__version__ = "0.1.0"
