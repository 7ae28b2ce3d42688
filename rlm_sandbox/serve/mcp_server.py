"""``rlm-sandbox mcp``: an RLM and a Python sandbox offered as tools over the Model Context Protocol.

Built on the official ``mcp`` SDK, 2.x, whose server class is ``MCPServer`` (1.x called it
``FastMCP``). Two tools:

- ``rlm_answer`` runs an RLM through the public API (``RLM(...).arun``) over files under
  the server's root and/or text, reports each root iteration as an MCP progress
  notification and notable events as MCP log messages, keeps a JSONL trace per call, and
  returns the answer with its status, where it came from, the cost (or "unknown"), the
  iterations and the trace's path.
- ``python_run`` runs code in a hardened sandbox per session id (see ``mcp_sessions``).

On stdio the protocol owns stdout: the SDK points file descriptor 1 at stderr while it
serves, so a stray ``print`` (ours, litellm's, a library's) cannot corrupt the channel; our
own messages go through MCP logging or Python logging (stderr). Every text a model or its
code wrote is passed through :func:`~rlm_sandbox.untrusted.visible` before it is returned.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from .. import RLM, RLMSandboxError, SandboxSpec, __version__
from ..sandbox import Host, Sandbox
from ..events import EventBase, JsonlWriter
from ..redaction import redact
from ..untrusted import visible
from .mcp_paths import TEXT_KEY, FileLimits, PathRefused, read_files
from .mcp_sessions import PythonSessions

__all__ = ["McpConfig", "build_server", "serve"]

log = logging.getLogger(__name__)

CLEANUP_WAIT_S = 60.0  # how long a cancelled call waits for its run to close its sandbox and say so

INSTRUCTIONS = ("rlm_answer answers a question about files under this server's root (or text you give) with a "
                "Recursive Language Model: the content is never put in a prompt; a model explores it with code in a "
                "locked-down container. python_run runs Python in a locked-down container (no network); variables "
                "persist per session id.")


@dataclass(frozen=True)
class McpConfig:
    """What the server was started with; the same for every call."""

    root: Path
    trace_dir: Path
    sandbox_spec: SandboxSpec
    options: dict[str, Any] = field(default_factory=dict)  # RLM options (--set and flags)
    max_cost_usd: float | None = None  # the cap a call's max_cost_usd may not pass
    files: FileLimits = field(default_factory=FileLimits)
    session_idle_s: float = 600.0
    max_sessions: int = 4
    labels: dict[str, str] = field(default_factory=dict)  # on every container this server starts

    def sandbox_factory(self, spec: SandboxSpec, context: Any, host: Host) -> Sandbox:
        """The runs' sandbox seam: the run's own spec, with this server's labels added."""
        return spec.model_copy(update={"labels": {**spec.labels, **self.labels}}).create(context, host)


def _shown(text: str | None) -> str | None:
    """Model- or code-written text, safe to hand to a client that may print it."""
    return None if text is None else visible(redact(text))


class _Reporter:
    """An ``on_event`` listener that turns a run's events into MCP progress and log messages.

    Events may be emitted from worker threads, and MCP messages are sent from the event
    loop, so events are queued thread-safely and ``pump`` sends them in order.
    """

    def __init__(self, ctx: Context, max_iterations: int) -> None:
        self.ctx = ctx
        self.max_iterations = max_iterations
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()

    def __call__(self, event: EventBase) -> None:
        item = self._describe(event)
        if item is not None:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _describe(self, event: EventBase) -> tuple[str, Any] | None:
        kind, root = event.get("event"), event.depth == 0
        if kind == "iteration" and root:
            n = event.get("iteration")
            answer_now = event.get("purpose") == "answer_now"
            what = "asking for the best answer" if answer_now else f"asking {event.get('model')}"
            return "progress", (n, self.max_iterations, f"iteration {n} of {self.max_iterations}: {what}")
        if kind == "run_start" and root:
            return "info", (f"run {event.run_id} started: model {event.get('model')}, context "
                            f"{event.get('context_type')} of length {event.get('context_length')}")
        if kind == "sandbox_restart":
            return "warning", f"the sandbox was restarted ({_shown(event.get('reason'))}); its variables were lost"
        if kind == "model_retry":
            return "warning", (f"{event.get('model')} call failed ({_shown(event.get('cause'))}); retrying in "
                               f"{event.get('wait_s'):.1f} s")
        if kind == "budget_exhausted":
            return "warning", f"budget {event.get('limit')} exhausted ({event.get('used')} of {event.get('allowed')})"
        if kind == "stalled":
            return "warning", f"the model made no progress ({event.get('setting')})"
        if kind == "final" and root:
            return "info", f"run {event.run_id} ended: {event.get('status')} after {event.get('iterations')} iterations"
        return None

    async def pump(self) -> None:
        """Send queued reports in order until ``finish`` is called (or the task is cancelled).
        A client that went away is not an error here: the run goes on to its result."""
        while True:
            item = await self.queue.get()
            if item is None:
                return
            kind, payload = item
            try:
                if kind == "progress":
                    await self.ctx.report_progress(*payload)
                else:
                    await self.ctx.log(kind, payload, logger_name="rlm-sandbox")  # type: ignore[arg-type]  # a level
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return  # the client went away: the run goes on to its result and trace
            except Exception as exc:  # noqa: BLE001 - a report that cannot be sent must not fail the run
                log.warning("could not send an MCP %s message: %s", kind, redact(str(exc)))

    def finish(self) -> None:
        """Let ``pump`` stop after everything queued so far (callbacks run in the order queued)."""
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)


def _context(paths: list[str] | None, text: str | None, config: McpConfig) -> Any:
    """The run's context: one source as itself, several as {name: text}."""
    sources: dict[str, str] = read_files(paths, config.root, config.files) if paths else {}
    if text is not None:
        used = sum(len(value.encode("utf-8")) for value in sources.values())
        if used + len(text.encode("utf-8")) > config.files.max_bytes:
            raise PathRefused(f"text: with the files given it passes the server's cap of {config.files.max_bytes:,} "
                              "bytes; give less (or start the server with a larger --max-bytes)")
        sources[TEXT_KEY] = text
    if not sources:
        return None
    return next(iter(sources.values())) if len(sources) == 1 else sources


def _cost_cap(asked: float | None, config: McpConfig) -> float | None:
    if asked is not None and asked <= 0:
        raise ToolError(f"max_cost_usd={asked}: give a positive amount in USD (or leave it out)")
    if asked is not None and config.max_cost_usd is not None and asked > config.max_cost_usd:
        raise ToolError(f"max_cost_usd={asked} is above this server's cap of {config.max_cost_usd} USD; give at most "
                        f"{config.max_cost_usd} (the server's --max-cost-usd, else its max_cost_usd setting)")
    return asked if asked is not None else config.max_cost_usd


def _trace_path(config: McpConfig) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    config.trace_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return config.trace_dir / f"mcp-{stamp}-{uuid.uuid4().hex[:8]}.jsonl"


async def _run(rlm: RLM, query: str, context: Any, reporter: _Reporter) -> Any:
    """``rlm.arun`` with its events reported as they happen, and a cancellation that lets the
    run clean up. The run is a task of its own: the SDK cancels a call through anyio, which
    cancels again at every await and would cut the run's cleanup short (its container
    removed, but no run_interrupted in the trace); here the run is cancelled once, and
    waited for."""
    pump = asyncio.create_task(reporter.pump())
    run = asyncio.ensure_future(rlm.arun(query, context))
    try:
        result = await asyncio.shield(run)
    except BaseException as exc:  # cancelled by the client, or refused at the start
        if not run.done():
            run.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([run], timeout=CLEANUP_WAIT_S)
        pump.cancel()
        if isinstance(exc, RLMSandboxError):
            raise ToolError(_shown(str(exc)) or type(exc).__name__) from None
        raise
    reporter.finish()
    await pump
    return result


async def rlm_answer_call(config: McpConfig, ctx: Context, query: str, paths: list[str] | None, text: str | None,
                          model: str | None, max_cost_usd: float | None) -> dict[str, Any]:
    """One ``rlm_answer`` call: every argument is checked before a file is read or a run starts."""
    if not query.strip():
        raise ToolError("query is empty; give the question to answer")
    cost = _cost_cap(max_cost_usd, config)
    try:
        context = await asyncio.to_thread(_context, paths, text, config)
    except PathRefused as exc:  # names the client's own paths: shown as escapes if they hold controls
        raise ToolError(visible(str(exc))) from None
    options = dict(config.options)
    if model is not None:
        options["model"] = model
    if cost is not None:
        options["max_cost_usd"] = cost
    try:
        writer = JsonlWriter(_trace_path(config))
    except OSError as exc:
        raise ToolError(f"the trace directory {str(config.trace_dir)!r} cannot be written ({exc.strerror}); "
                        "start the server with another --trace-dir") from None
    try:
        try:
            rlm = RLM(**options, sandbox_factory=config.sandbox_factory)
        except (RLMSandboxError, TypeError, ValueError) as exc:
            raise ToolError(_shown(str(exc)) or "bad settings") from None
        reporter = _Reporter(ctx, rlm.settings.max_iterations)

        def listen(event: EventBase) -> None:
            writer(event)
            reporter(event)

        rlm.on_event = listen
        result = await _run(rlm, query, context, reporter)
    finally:
        writer.close()
    return {"answer": _shown(result.answer), "status": result.status, "answer_from": result.answer_from,
            "error": _shown(result.error), "iterations": result.iterations,
            "cost_usd": "unknown" if result.cost_usd is None else result.cost_usd,
            "trace": str(writer.path)}


def build_server(config: McpConfig, sessions: PythonSessions) -> MCPServer:
    """The MCP server with its two tools; ``serve`` runs it."""
    server: MCPServer = MCPServer("rlm-sandbox", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    @server.tool()
    async def rlm_answer(
        query: Annotated[str, Field(description="the question to answer")],
        ctx: Context,
        paths: Annotated[list[str] | None, Field(description="files, directories (every file below) or globs, "
                                                 "relative to the server's root")] = None,
        text: Annotated[str | None, Field(description="text to answer about, with or instead of files")] = None,
        model: Annotated[str | None, Field(description="the root model, as litellm names it (default: the "
                                           "server's)")] = None,
        max_cost_usd: Annotated[float | None, Field(description="spend limit in USD for this call (at most the "
                                                    "server's cap)")] = None,
    ) -> dict[str, Any]:
        """Answer a question about files and/or text with a Recursive Language Model: the content stays in a
        locked-down sandbox and a model explores it with code. Returns the answer, status (completed,
        max_iterations, budget_exhausted, timeout, stalled or error), answer_from (final means the model gave a
        FINAL answer), cost_usd (or "unknown"), iterations and the path of the run's JSONL trace."""
        return await rlm_answer_call(config, ctx, query, paths, text, model, max_cost_usd)

    @server.tool()
    async def python_run(
        code: Annotated[str, Field(description="Python source to run")],
        session: Annotated[str | None, Field(description="a session id; variables persist per session (default: "
                                             "'default')")] = None,
    ) -> dict[str, Any]:
        """Run Python in a locked-down container (no network, read-only root, /tmp writable, limited memory and
        time). Variables persist between calls with the same session id. Returns stdout, stderr and the error's
        traceback (null when the code ran cleanly)."""
        try:
            return await sessions.run(code, session)
        except RLMSandboxError as exc:
            raise ToolError(_shown(str(exc)) or type(exc).__name__) from None

    return server


async def serve(config: McpConfig, http_port: int | None = None) -> None:
    """Serve on stdio (or streamable HTTP on 127.0.0.1:``http_port``) until the client or a
    signal ends it; every python_run session is closed on the way out."""
    sessions = PythonSessions(config.sandbox_spec, idle_s=config.session_idle_s, max_sessions=config.max_sessions)
    server = build_server(config, sessions)
    async with anyio.create_task_group() as group:
        group.start_soon(sessions.watch)
        try:
            if http_port is None:
                await server.run_stdio_async()
            else:
                # The SDK's default body limit (4 MiB) would cut text far below --max-bytes.
                await server.run_streamable_http_async(host="127.0.0.1", port=http_port,
                                                       max_request_body_size=config.files.max_bytes + (1 << 20))
        finally:
            group.cancel_scope.cancel()
            sessions.close_all()
    log.info("rlm-sandbox mcp stopped (pid %d)", os.getpid())
