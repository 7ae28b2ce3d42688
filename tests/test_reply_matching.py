"""A kernel's reply is taken only for the request the host is waiting for (issue 17, item 7).

Cell code owns its kernel: it can find the kernel's channel to the host in
``/proc/self/fd`` and write protocol lines into it. Forged replies for requests the host
has not sent yet used to be taken as the replies to those requests, so one cell decided
what the next cells "printed". Request ids are now drawn at random (a cell cannot know one
before the host sends it) and any other reply is dropped, counted on the sandbox and
logged once. Runs under both runtimes and over both transports; the control puts the old
counting ids back and the same attack takes the next cells over.
"""

from __future__ import annotations

import itertools
import logging
import select
import time
from typing import Any

import pytest

from rlm_sandbox.sandbox import DockerSandbox
from rlm_sandbox.sandbox.connection import KernelConnection
from tests.conftest import fast_limits
from tests.test_security import CTX, attack, make_docker_sandbox, runtime  # noqa: F401 - fixtures

pytestmark = pytest.mark.docker

TRANSPORTS = ("socket", "stdio")
FORGED = 5

#: A cell that finds the kernel's channel in /proc/self/fd (its socket, or over stdio the
#: write end of a pipe that is not fd 1's or 2's: those are the output capture's; gVisor shows
#: a descriptor of the host's as "host:[N]") and, from
#: a thread that outlives the cell, writes replies for the next FORGED request ids, guessed
#: from its own (found in the kernel's memory), once its own reply has gone.
FORGE_NEXT_REPLIES = r'''
import fcntl, gc, json, os, threading, time
def kernel_channel():
    captured = {os.readlink(f"/proc/self/fd/{fd}") for fd in (1, 2)}
    for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            writable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
        except OSError:
            continue
        if target.startswith("socket:") or (fd > 2 and target.startswith(("pipe:", "host:"))
                                             and target not in captured and writable):
            return fd, target
    raise RuntimeError("no channel found in /proc/self/fd")
fd, target = kernel_channel()
own_id = next(o for o in gc.get_objects() if type(o).__name__ == "KernelServer")._running_exec
forged = b"".join(json.dumps({"type": "reply", "id": own_id + k, "ok": True, "stdout": f"forged {k}\n"}).encode()
                  + b"\n" for k in range(1, FORGED + 1))
def forge():
    time.sleep(0.3)  # this cell's own reply goes first
    os.write(fd, forged)
threading.Thread(target=forge).start()
print("RESULT:" + json.dumps({"fd": fd, "target": target}))
'''


class CountingIdsConnection(KernelConnection):
    """The control arm: request ids counted up from 1, as before the fix."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counter = itertools.count(1)

    def _new_id(self) -> int:
        return next(self._counter)


class CountingIdsSandbox(DockerSandbox):
    connection_class = CountingIdsConnection


def _forge_and_wait(sb: DockerSandbox) -> dict[str, Any]:
    """Run the forging cell, then wait (no request outstanding) until the forged lines are in
    the channel, so the next request is sent after they were written."""
    out = attack(sb, FORGE_NEXT_REPLIES, FORGED=FORGED)
    assert select.select([sb._conn._sock.fileno()], [], [], 30)[0], "the forged replies never arrived"
    time.sleep(0.3)  # the rest of the write, if the transport split it
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_replies_forged_for_requests_not_yet_sent_are_dropped(make_docker_sandbox, transport, caplog):
    sb = make_docker_sandbox(CTX, transport=transport, limits=fast_limits(cell_timeout_s=10))
    assert sb.exec("kept = 41").ok
    out = _forge_and_wait(sb)
    assert out["target"].startswith("socket:" if transport == "socket" else ("pipe:", "host:")), out
    with caplog.at_level(logging.WARNING, logger="rlm_sandbox.sandbox.connection"):
        outputs = [sb.exec(f"print('mine {k}', kept + {k})").stdout for k in range(1, FORGED + 1)]
    assert outputs == [f"mine {k} {41 + k}\n" for k in range(1, FORGED + 1)]
    assert sb.unmatched_replies == FORGED
    warnings = [record for record in caplog.records if "not waiting for" in record.getMessage()]
    assert len(warnings) == 1, [record.getMessage() for record in caplog.records]  # once, then counted


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_control_with_counting_ids_the_forged_replies_take_the_next_cells_over(make_docker_sandbox, transport):
    """Control: with ids counted up from 1 (the old host) the same cell decides what the
    next cells printed, and the real replies are dropped as stale."""
    sb = make_docker_sandbox(CTX, transport=transport, sandbox_class=CountingIdsSandbox,
                             limits=fast_limits(cell_timeout_s=10))
    _forge_and_wait(sb)
    outputs = [sb.exec(f"print('mine {k}')").stdout for k in range(1, FORGED + 1)]
    assert outputs == [f"forged {k}\n" for k in range(1, FORGED + 1)]
