"""``python -m reclaimlab``: the command line."""

import sys

from reclaimlab.cli import main

sys.exit(main())
