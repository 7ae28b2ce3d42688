"""``python_run``'s sandboxes: one hardened container per session id, kept between calls.

An agent uses ``python_run`` as a notebook, so a session's variables must outlive a call;
but a server that lives for days must not pile up containers. So sessions are bounded twice:
one idle for ``idle_s`` is closed (by a watcher, even when no call comes), and at most
``max_sessions`` live at once (a new one closes the longest-idle first; when every one is
busy, the call is refused rather than queued). Calls on one session run one at a time, in
order. Every container is made from the public ``SandboxSpec`` and closed on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import RLMSandboxError
from ..sandbox import ExecResult, Sandbox, SandboxSpec
from ..untrusted import visible

__all__ = ["DEFAULT_SESSION", "PythonSessions", "SessionRefused"]

log = logging.getLogger(__name__)

DEFAULT_SESSION = "default"
CLOSE_WAIT_S = 30.0  # how long shutdown waits for the containers to be removed
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class SessionRefused(RLMSandboxError):
    """A ``python_run`` call cannot get a session: a bad id, every session busy, the sandbox
    would not start, or the server is shutting down. The message says what to do."""


@dataclass(eq=False)
class _Session:
    id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sandbox: Sandbox | None = None
    users: int = 0  # calls running or waiting on this session: it is not idle while any are
    last_used: float = field(default_factory=time.monotonic)


def check_session_id(session: str | None) -> str:
    """The session id to use (``default`` when none is given), or SessionRefused."""
    if session is None:
        return DEFAULT_SESSION
    if not _SESSION_ID.fullmatch(session):
        raise SessionRefused(f"session {visible(session)[:80]!r}: give 1 to 64 letters, digits, '_', '.' or '-', "
                             "starting with a letter or digit")
    return session


def outcome(session: str, result: ExecResult) -> dict[str, Any]:
    """What ``python_run`` returns for one cell: its output, made safe to show."""
    error = None
    if result.error is not None:
        error = visible(result.error.traceback or str(result.error))
    notes = []
    if result.restarted:
        notes.append("the cell ran past its time limit and the sandbox was restarted: every variable of this "
                     "session was lost")
    if result.stdout_truncated or result.stderr_truncated:
        notes.append("output was cut to the sandbox's per-cell cap")
    return {"session": session, "stdout": visible(result.stdout), "stderr": visible(result.stderr),
            "error": error, "timed_out": result.timed_out, "notes": notes}


class PythonSessions:
    """The live sessions of one server. ``await run(code, session)``; ``watch()`` closes idle
    ones while it runs; ``close_all()`` ends them all."""

    def __init__(self, spec: SandboxSpec, *, idle_s: float, max_sessions: int) -> None:
        if idle_s <= 0 or max_sessions < 1:
            raise ValueError("idle_s must be > 0 and max_sessions >= 1")
        self.spec = spec
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, _Session] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def live(self) -> list[str]:
        """The ids of the sessions open now, oldest first."""
        return list(self._sessions)

    async def run(self, code: str, session: str | None = None) -> dict[str, Any]:
        """Run ``code`` in the session's sandbox (started on its first call)."""
        sid = check_session_id(session)
        evicted: list[_Session] = []
        async with self._lock:
            if self._closed:
                raise SessionRefused("the server is shutting down; start it again")
            entry = self._sessions.get(sid)
            if entry is None:
                evicted = self._make_room()
                entry = self._sessions[sid] = _Session(sid)
            entry.users += 1
        await self._close(evicted, "closed to make room for a new session (--max-sessions)")
        try:
            async with entry.lock:
                if entry.sandbox is None:
                    entry.sandbox = await self._start(sid)
                result = await asyncio.to_thread(entry.sandbox.exec, code)
        finally:
            entry.users -= 1
            entry.last_used = time.monotonic()
        return outcome(sid, result)

    def _make_room(self) -> list[_Session]:
        """Take the longest-idle sessions out until one more fits (the pool lock is held)."""
        evicted: list[_Session] = []
        while len(self._sessions) >= self.max_sessions:
            idle = [s for s in self._sessions.values() if s.users == 0]
            if not idle:
                raise SessionRefused(f"all {self.max_sessions} sessions are busy running code; wait for one to "
                                     "finish, reuse a session id, or start the server with a larger --max-sessions")
            oldest = min(idle, key=lambda s: s.last_used)
            evicted.append(self._sessions.pop(oldest.id))
        return evicted

    async def _start(self, sid: str) -> Sandbox:
        sandbox = self.spec.create(None)
        try:
            return await asyncio.to_thread(sandbox.start)
        except RLMSandboxError as exc:
            async with self._lock:
                if self._sessions.get(sid) is not None and self._sessions[sid].sandbox is None:
                    del self._sessions[sid]
            await asyncio.to_thread(sandbox.close)
            raise SessionRefused(f"session {sid!r}: the sandbox did not start: {exc}") from None

    async def _close(self, sessions: list[_Session], why: str) -> None:
        for session in sessions:
            log.info("python_run session %r %s", session.id, why)
        await asyncio.gather(*(asyncio.to_thread(s.sandbox.close) for s in sessions if s.sandbox is not None))

    async def close_idle(self) -> list[str]:
        """Close every session idle for ``idle_s`` or longer; their ids."""
        now = time.monotonic()
        async with self._lock:
            expired = [s for s in self._sessions.values() if s.users == 0 and now - s.last_used >= self.idle_s]
            for session in expired:
                del self._sessions[session.id]
        await self._close(expired, f"closed after {self.idle_s:g} s idle (--session-idle-s)")
        return [s.id for s in expired]

    async def watch(self) -> None:
        """Close idle sessions until cancelled (run it beside the server)."""
        interval = min(max(self.idle_s / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval)
            await self.close_idle()

    def close_all(self) -> None:
        """End every session now, blocking until their containers are gone; later calls are
        refused. Synchronous on purpose: it runs as the server stops, where an await can be
        cancelled (a second Ctrl-C, uvicorn re-raising SIGINT) and a container left behind.
        Nothing awaits between reading and clearing the table, so no call slips in."""
        self._closed = True
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            log.info("python_run session %r closed: the server is shutting down", session.id)
        closers = [threading.Thread(target=s.sandbox.close, name=f"close-session-{s.id}", daemon=True)
                   for s in sessions if s.sandbox is not None]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(CLOSE_WAIT_S)
