"""A Ctrl-C is never lost while a synchronous call waits for its run (CI once hung here).

A process-directed SIGINT is taken by any thread that does not block it. When that is not
the main thread, CPython's handler only flags the signal; the main thread raises
KeyboardInterrupt at its next bytecode. ``run_sync`` must therefore never sleep without a
timeout. The test makes the case certain instead of likely: the main thread blocks SIGINT,
so the kernel must hand it to another thread, as it sometimes did on its own in CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import asyncio, signal, sys, threading
    from rlm_sandbox.core.sync_bridge import run_sync

    ready = threading.Event()
    def other_thread():           # started before the main thread blocks SIGINT: it may take it
        ready.wait()
        threading.Event().wait(600)
    threading.Thread(target=other_thread, daemon=True).start()

    async def long_run():
        print("running", flush=True)
        await asyncio.sleep(600)
        return "finished"

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # the main thread cannot take it
    ready.set()
    try:
        print(run_sync(long_run()), flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
""")


def test_a_ctrl_c_another_thread_took_still_interrupts_the_waiting_call():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)  # the run sleeps 600 s: a lost Ctrl-C fails here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out.strip() == "interrupted"
