"""Tests through a real USB stack: espdfu and dfu-util against emulated ESP ROMs in QEMU."""
