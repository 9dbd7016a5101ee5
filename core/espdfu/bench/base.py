"""What a board holds, as far as its boots confirm it (its base), and so what a flash sends it:
the whole artifact, or only its sectors changed since that base (:mod:`espdfu.files.delta`).

A base is the file last flashed at a port *and then seen running*: a boot named its build (the
app's ELF SHA-256). Nothing else is one: a board never verified, one flashed by another tool or
swapped (its boot names another build), one gone from its port. The port keeps it
(:class:`~espdfu.bench.port.Port`); after a flash of changes only, the boot check confirms it
again, and a boot that names another build, or none, means the base was wrong: the whole file
goes at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..files.delta import Delta, compose, incomparable
from ..files.dfufile import DfuImage
from .artifacts import Artifact


@dataclass(frozen=True)
class Base:
    """The whole file a board holds, and when it was flashed there (time.time())."""

    image: DfuImage
    at: float

    @property
    def since(self) -> str:
        """``12:03``: when, for the log's line."""
        return time.strftime("%H:%M", time.localtime(self.at))


@dataclass(frozen=True)
class Sending:
    """A flash's item: ``artifact``, of which ``image`` goes (the whole of it, or the changes
    ``delta`` since ``base``)."""

    artifact: Artifact
    image: DfuImage
    delta: Delta | None = None
    base: Base | None = None

    @property
    def digest(self) -> str:
        return self.artifact.digest

    @property
    def words(self) -> str:
        """``sending 84 KB of 1.1 MB (12 sectors changed since 12:03)``, or "" when whole."""
        if self.delta is None or self.base is None:
            return ""
        return self.delta.words(self.base.since)


def sending(artifact: Artifact, base: Base | None, changes_only: bool) -> Sending:
    """What goes of ``artifact`` to a board that holds ``base`` (None: not known)."""
    image = artifact.image
    assert image is not None, "only a valid artifact is flashed"
    if base is None or not changes_only or incomparable(image, base.image):
        return Sending(artifact, image)
    delta = compose(image, base.image)
    return Sending(artifact, delta.image, delta, base)
