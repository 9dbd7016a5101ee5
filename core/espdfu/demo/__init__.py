"""``espdfu-tui --demo``: a throw-away project whose build really makes a dfu.bin, and a virtual
finger that presses the virtual boards' buttons as a person would."""
