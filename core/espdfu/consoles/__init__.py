"""Boards' consoles: bytes read as lines, the app's health read from them, serial ports found
by the board's USB port path and read on a thread each."""
