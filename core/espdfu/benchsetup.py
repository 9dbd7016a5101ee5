"""The one path from configuration to the workbench, for every front end.

``espdfu-tui`` and ``espdfu watch`` both load :class:`~espdfu.config.Settings` (the files,
then their own flags as overrides) and turn them into :class:`WorkbenchSettings` here, so a
setting means the same in both and each default has one home.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from .config import Settings
from .flasher import FlashOptions
from .workbench import WorkbenchSettings


def workbench_settings(
    config: Settings,
    *,
    arm_only: Iterable[str] = (),
    labels: Mapping[str, str] | None = None,
    flash: FlashOptions | None = None,
) -> WorkbenchSettings:
    """The workbench ``config`` describes, with what only the front end knows.

    ``arm_only``: the port paths of the only boards armed as they appear (none: as
    ``config.arm_new_boards`` says). ``labels``: the board labels, when not the configured ones
    (the demo keeps its own). ``flash``: the flash options the configuration does not set; its
    ``detach_wait_s`` is the configuration's. Without a configured build folder, it is the
    project's ``build``, or the current folder's without a project.
    """
    project_dir = config.project_dir
    return WorkbenchSettings(
        build_dir=config.build_dir or (project_dir or Path.cwd()) / "build",
        project_dir=project_dir,
        build_command=config.build_argv,
        auto_flash=config.auto_flash,
        make_dfu=config.make_dfu,
        arm_new_boards=config.arm_new_boards,
        arm_only=frozenset(arm_only),
        labels=dict(config.labels if labels is None else labels),
        console_ports=dict(config.consoles),
        flash=replace(flash or FlashOptions(), detach_wait_s=config.detach_wait_s),
        monitor_interval_s=config.monitor_interval_s,
    )
