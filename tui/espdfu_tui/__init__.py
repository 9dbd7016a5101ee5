"""espdfu_tui: the terminal app for espdfu, built with Textual."""

from espdfu import __version__

__all__ = ["__version__"]
