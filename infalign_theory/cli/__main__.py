"""``python -m infalign_theory.cli``: the ``infalign`` command."""

import sys

from . import main

sys.exit(main())
