"""``espdfu udev-rule``: print or install the rule that grants access to Espressif boards."""

from __future__ import annotations

import argparse

from .. import udev
from .common import Commands, Exit, add_command, add_flag

DESCRIPTION = (
    f"Print the least-privilege udev rule for Espressif boards (VID 303a: the logged-in user "
    f"and the plugdev group, mode 0660), or install it with --install (as root) to "
    f"{udev.RULE_PATH}."
)


def add_commands(commands: Commands) -> None:
    summary = "print (or install) the Linux udev rule for Espressif boards"
    rule = add_command(commands, "udev-rule", _udev_rule, summary, DESCRIPTION)
    add_flag(rule, "--install", help=f"write it to {udev.RULE_PATH}")


def _udev_rule(args: argparse.Namespace) -> int:
    if not args.install:
        print(udev.rule_text(), end="")
        print(f"# Save it as {udev.RULE_PATH}, then apply it: {udev.APPLY_COMMAND}")
        return Exit.OK
    for line in udev.install():
        print(line)
    print("Unplug and replug your boards for the rule to take effect.")
    return Exit.OK
