"""``python -m detector``: see :mod:`detector.cli`."""

from detector.allocator import restart_with_tcmalloc

restart_with_tcmalloc()  # first: a process gets another allocator only as it starts

from detector.cli import exit_now, main  # noqa: E402

exit_now(main())
