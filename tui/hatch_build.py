"""The app's requirements at the version being built: hatchling runs this hook as it builds.

The app and the core are released together, at the one version of core/espdfu/__init__.py, so
the app requires the core at exactly that version. A requirement cannot name the version in
pyproject.toml (hatchling's context fields are folders and environment variables), so the list
there, in [tool.hatch.metadata.hooks.custom], says ``{version}`` and this fills it in.
"""

from __future__ import annotations

from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface


class VersionedRequirements(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        version = metadata["version"]
        requirements: list[str] = self.config["dependencies"]
        metadata["dependencies"] = [req.replace("{version}", version) for req in requirements]
