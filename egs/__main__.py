"""`python -m egs`: the `egs` command, for where the console script is not on PATH."""

import sys

from egs.cli import main

sys.exit(main())
