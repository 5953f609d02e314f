"""``python -m detector``: see :mod:`detector.cli`."""

from detector.cli import exit_now, main

exit_now(main())
