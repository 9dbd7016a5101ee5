"""The files espdfu reads and writes, without I/O to boards: dfu.bin, an ESP-IDF build folder's
flash images and target, and the app's ELF for a panic's backtrace."""
