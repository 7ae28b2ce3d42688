"""LocalSandbox: the same kernel as a plain subprocess.

NOT A SECURITY BOUNDARY. The code runs as you, with your files, network and
environment variables within reach. It exists for developing and testing without
Docker; never give it code you do not trust.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .kernel_sandbox import SOCKET_NAME, KernelSandbox

_KERNEL_PARENT = Path(__file__).resolve().parent.parent  # the rlm_sandbox package directory
_BOOT = ("import sys, runpy; sys.path.insert(0, sys.argv[1]); "
         "runpy.run_module('kernel', run_name='__main__', alter_sys=True)")


class LocalSandbox(KernelSandbox):
    """Runs cells in a local subprocess. Unsafe: see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._process: subprocess.Popen[bytes] | None = None

    def _launch(self, socket_dir: Path, token: str) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1",
               "RLM_KERNEL_SOCKET": str(socket_dir / SOCKET_NAME), "RLM_KERNEL_TOKEN": token}
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, str(_KERNEL_PARENT)], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, cwd=socket_dir)

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        if process.stderr:
            process.stderr.close()

    def _death_reason(self) -> str:
        if self._process is None:
            return "the kernel is not running"
        try:
            code = self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the kernel stopped answering"
        if code < 0:
            return f"the kernel was killed by {signal.Signals(-code).name}"
        return f"the kernel exited with code {code}"

    def _startup_diagnostics(self) -> str:
        if self._process is None or self._process.poll() is None or not self._process.stderr:
            return ""
        return "Kernel stderr: " + self._process.stderr.read()[-2000:].decode("utf-8", "replace")
