"""The Linux udev rule that lets users open Espressif boards without root, and no more."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .chips import ESPRESSIF_VID
from .errors import EspdfuError
from .fsutil import atomic_write

RULE_PATH = Path("/etc/udev/rules.d/70-espdfu.rules")
"""Numbered below 73 so that systemd's ``uaccess`` tag is seen by its seat rules."""
GROUP = "plugdev"
APPLY = (
    ["udevadm", "control", "--reload-rules"],
    ["udevadm", "trigger", "--subsystem-match=usb", f"--attr-match=idVendor={ESPRESSIF_VID:04x}"],
)
APPLY_COMMAND = " && ".join("sudo " + " ".join(command) for command in APPLY)


def rule_text(group: str | None = GROUP) -> str:
    """Only Espressif's vendor ID; the logged-in user (uaccess) and ``group``; never 0666."""
    owner = f', GROUP="{group}"' if group else ""
    return (
        "# espdfu: let the logged-in user (and the plugdev group) flash Espressif boards\n"
        "# over USB DFU without root. Vendor ID 303a only; not world-writable.\n"
        f'SUBSYSTEM=="usb", ATTR{{idVendor}}=="{ESPRESSIF_VID:04x}", '
        f'MODE="0660"{owner}, TAG+="uaccess"\n'
    )


def install(path: Path = RULE_PATH) -> list[str]:
    """Write the rule (root only) and apply it; return what was done, in sentences."""
    if not sys.platform.startswith("linux"):
        raise EspdfuError("udev rules exist on Linux only.")
    if os.geteuid() != 0:
        raise EspdfuError(
            f"Installing {path} needs root.", 'Run: sudo "$(command -v espdfu)" udev-rule --install'
        )
    import grp

    try:
        grp.getgrnam(GROUP)
        group: str | None = GROUP
    except KeyError:
        group = None  # uaccess alone then: the logged-in user
    atomic_write(path, rule_text(group).encode())
    done = [f"Installed {path}."]
    if shutil.which("udevadm") is None:
        return [*done, f"udevadm was not found: apply the rule with {APPLY_COMMAND}."]
    import subprocess  # here: every espdfu command loads this module, only this runs udevadm

    for command in APPLY:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        outcome = "done" if result.returncode == 0 else f"failed: {result.stderr.strip()}"
        done.append(f"{' '.join(command)}: {outcome}")
    return done
