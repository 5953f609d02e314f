"""The allocator the entry points start with (detector/allocator.py): tcmalloc when the machine
has it, the system's otherwise, never twice, never against the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from detector import allocator
from detector.settings import PROJECT_ROOT

TCMALLOC = allocator.find_tcmalloc()
needs_tcmalloc = pytest.mark.skipif(
    TCMALLOC is None or not sys.platform.startswith("linux"),
    reason="libtcmalloc-minimal4 is not installed (make install installs it where apt can)",
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFAKE_ALLOCATOR")}
    env.pop("LD_PRELOAD", None)
    return {**env, **extra}


def _python(*args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """This interpreter run on ``args`` in the project, with a fresh shell's allocator setup."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        cwd=PROJECT_ROOT,
        timeout=60,
        check=check,
    )


def test_find_tcmalloc_looks_in_the_given_directories(tmp_path):
    assert allocator.find_tcmalloc([str(tmp_path)]) is None
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    assert allocator.find_tcmalloc([str(tmp_path / "missing"), str(tmp_path)]) == lib


def test_environment_respects_the_setting_and_an_existing_preload(monkeypatch, tmp_path):
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    monkeypatch.setattr(allocator, "SEARCH_DIRS", (str(tmp_path),))
    monkeypatch.setattr(sys, "platform", "linux")
    env = allocator.environment({"PATH": "/bin", "LD_PRELOAD": "/opt/libother.so"})
    assert env is not None
    assert env["LD_PRELOAD"] == f"{lib} /opt/libother.so"  # the user's preload is kept
    assert env["PATH"] == "/bin"
    assert env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"] == str(1 << 40)
    assert allocator.environment({allocator.SETTING: "system"}) is None
    assert allocator.environment({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}) is None
    assert allocator.environment({"LD_PRELOAD": str(lib)}) is None
    monkeypatch.setattr(allocator, "SEARCH_DIRS", (str(tmp_path / "none"),))
    assert allocator.environment({}) is None
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(allocator, "SEARCH_DIRS", (str(tmp_path),))
    assert allocator.environment({}) is None


PRINT_IN_USE = (
    "from detector.allocator import restart_with_tcmalloc, in_use\n"
    "print('start', flush=True)\n"
    "restart_with_tcmalloc()\n"
    "print(in_use())\n"
)


@needs_tcmalloc
def test_restart_gives_the_process_tcmalloc_once():
    out = _python("-c", PRINT_IN_USE)
    assert out.stdout.split() == ["start", "start", "tcmalloc"]  # restarted once, not twice


@needs_tcmalloc
def test_restart_keeps_flags_arguments_and_sets_the_quiet_setting():
    code = (
        "import os, sys\n"
        "from detector.allocator import restart_with_tcmalloc, in_use\n"
        "restart_with_tcmalloc()\n"
        "print(in_use(), sys.flags.dev_mode, sys.argv[1:],"
        " os.environ.get('TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD'))\n"
    )
    out = _python("-X", "dev", "-c", code, "a", "b c")
    assert out.stdout.strip() == f"tcmalloc True ['a', 'b c'] {1 << 40}"


def test_a_library_that_does_not_load_restarts_once_only(tmp_path):
    """An unusable file where tcmalloc should be: the loader ignores it, the guard stops a second
    restart, and the program goes on with the system allocator."""
    (tmp_path / "libtcmalloc_minimal.so.4").write_bytes(b"not a library")
    code = (
        "import detector.allocator as a\n"
        f"a.SEARCH_DIRS = ({str(tmp_path)!r},)\n"
        "print('start', flush=True)\n"
        "a.restart_with_tcmalloc()\n"
        "print(a.in_use())\n"
    )
    out = _python("-c", code)
    if sys.platform.startswith("linux"):
        assert out.stdout.split() == ["start", "start", "system"]
        assert "cannot be preloaded" in out.stderr  # the loader says so; nothing is hidden
    else:
        assert out.stdout.split() == ["start", "system"]


def test_restart_keeps_the_system_allocator_when_asked():
    out = _python("-c", PRINT_IN_USE, **{allocator.SETTING: "system"})
    assert out.stdout.split() == ["start", "system"]


@needs_tcmalloc
def test_launcher_runs_a_command_with_tcmalloc_and_its_exit_code():
    code = "from detector.allocator import in_use; import sys; print(in_use()); sys.exit(3)"
    out = _python("-m", "detector.allocator", sys.executable, "-c", code, check=False)
    assert out.returncode == 3
    assert out.stdout.strip() == "tcmalloc"


def test_launcher_says_when_the_command_does_not_exist():
    out = _python("-m", "detector.allocator", "no-such-command-here", check=False)
    assert out.returncode == 127
    assert "cannot run no-such-command-here" in out.stderr and "Traceback" not in out.stderr
