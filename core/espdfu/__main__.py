"""``python -m espdfu``: the same as the ``espdfu`` command."""

import sys

from .cli import main

sys.exit(main())
