"""``python -m groupserver``."""

import sys

from groupserver.cli import main

sys.exit(main())
