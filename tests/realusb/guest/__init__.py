"""What runs inside the QEMU guest: init, boot and scenario scripts, and the emulated ESP ROM.

The guest runs the gadget as `python3 -m guest.gadget` from the folder above this one, with
the venv that setup.sh made; the host imports rom.py from here for its own tests.
"""
