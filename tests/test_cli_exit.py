"""An interrupted command ends, even if a worker thread is still blocked.

By the time a command exits 130 it has saved what it keeps and said so; the interpreter's
own exit would then join every worker thread, and one blocked in a call the interrupt could
not cut short (a provider request, a callback) held `rlm-sandbox run` after Ctrl-C until CI
gave up on it. The command's app ends the process itself, after running the exit handlers
(which remove any sandbox still live). Real processes, no mocks: a command of our own app
class leaves a non-daemon executor thread blocked forever, then exits 130.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading
    from concurrent.futures import ThreadPoolExecutor
    import typer
    from rlm_sandbox.cli import _App
    from rlm_sandbox.cli.common import EXIT_INTERRUPTED

    app = _App()
    atexit.register(lambda: print("exit handlers ran", flush=True))

    @app.command()
    def stuck(code: int = EXIT_INTERRUPTED) -> None:
        ThreadPoolExecutor(1).submit(threading.Event().wait)  # blocked for good, joined at exit
        print("saved", flush=True)
        raise typer.Exit(code)

    app()
""")


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_an_interrupted_command_ends_although_a_worker_thread_is_blocked():
    done = _run(timeout=120)  # before: the exit joined the blocked thread, forever
    assert done.returncode == 130, done.stderr
    assert done.stdout.splitlines() == ["saved", "exit handlers ran"]


def test_other_exits_keep_the_interpreters_own_end():
    """Control: only an interrupt ends early; any other exit code still waits for its threads
    (the blocked one here), as a normal program end must."""
    try:
        _run("--code", "0", timeout=15)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError("an exit 0 did not wait for its worker threads")
