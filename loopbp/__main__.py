"""``python -m loopbp`` runs the ``loopbp`` command line."""

import sys

from .cli import main

sys.exit(main())
