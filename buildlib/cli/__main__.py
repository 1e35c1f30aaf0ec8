"""`python -m buildlib.cli`: the same as the `distrokit` command."""

import sys

from . import main

sys.exit(main())
