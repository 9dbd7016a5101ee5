"""USB and the ESP ROM's DFU: the protocol without I/O, the loop that drives it, pyusb, what
each device on the bus is, hot-plug, and the ROM's facts (each with its source)."""
