"""``python -m detector``: see :mod:`detector.cli`."""

import sys

from detector.cli import main

sys.exit(main())
