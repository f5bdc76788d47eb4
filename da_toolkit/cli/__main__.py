"""``python -m da_toolkit.cli ...`` = the ``da-toolkit`` console script."""

import sys

from da_toolkit.cli import main

sys.exit(main())
