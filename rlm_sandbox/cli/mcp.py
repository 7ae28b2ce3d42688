"""``rlm-sandbox mcp``: serve ``rlm_answer`` and ``python_run`` to MCP clients (stdio or HTTP).

Every option is checked (and the settings validated) before the server starts, so a
client sees a failed start with a message on stderr rather than a server that fails
each call. The ``mcp`` SDK is an optional extra, imported only here when the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .common import fail, make_rlm, parse_set, say


def _default_trace_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "rlm-sandbox" / "mcp-traces"


def _positive(value: float | None, flag: str) -> None:
    if value is not None and value <= 0:
        raise fail(f"{flag} {value:g}: give a number above 0")


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--label takes KEY=VALUE, e.g. --label team=search, not {pair!r}")
        labels[key.strip()] = value
    return labels


def mcp(
    root: Optional[str] = typer.Option(None, "--root", metavar="DIR",
                                       help="rlm_answer reads files only below this directory, symlinks followed "
                                            "(default: the working directory)."),
    http: Optional[int] = typer.Option(None, "--http", metavar="PORT",
                                       help="Serve streamable HTTP on 127.0.0.1:PORT (path /mcp) instead of stdio."),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="MODEL",
                                        help="rlm_answer's default root model, as litellm names it."),
    sub_model: Optional[str] = typer.Option(None, "--sub-model", metavar="MODEL",
                                            help="Model for llm_query (default: the root model)."),
    max_cost_usd: Optional[float] = typer.Option(None, "--max-cost-usd", metavar="USD",
                                                 help="Cap on one rlm_answer call's spend: a call asking for more is "
                                                      "refused, a call asking for none gets this (needs priced "
                                                      "models; default: the max_cost_usd setting, if any)."),
    max_bytes: int = typer.Option(64 * 1024 * 1024, "--max-bytes", metavar="N",
                                  help="Most bytes of files and text one rlm_answer call may read (default 64 MiB).",
                                  show_default=False),
    max_files: int = typer.Option(1000, "--max-files", metavar="N",
                                  help="Most files one rlm_answer call may read (default 1000).", show_default=False),
    trace_dir: Optional[str] = typer.Option(None, "--trace-dir", metavar="DIR",
                                            help="Where each rlm_answer call's JSONL trace is kept (default "
                                                 "$XDG_STATE_HOME/rlm-sandbox/mcp-traces, else "
                                                 "~/.local/state/rlm-sandbox/mcp-traces)."),
    session_idle_s: float = typer.Option(600.0, "--session-idle-s", metavar="SECONDS",
                                         help="Close a python_run session idle this long (default 600).",
                                         show_default=False),
    max_sessions: int = typer.Option(4, "--max-sessions", metavar="N",
                                     help="Most python_run sessions live at once; a new one closes the longest idle "
                                          "(default 4).", show_default=False),
    label: list[str] = typer.Option([], "--label", metavar="KEY=VALUE",
                                    help="A label on every container this server starts, to find them with "
                                         "docker ps --filter label=KEY=VALUE (repeatable)."),
    settings: list[str] = typer.Option([], "--set", metavar="NAME=VALUE",
                                       help="Any setting, for every run and python_run's sandbox, e.g. --set "
                                            "max_iterations=10 --set memory=2g (repeatable)."),
) -> None:
    """Serve an RLM (rlm_answer) and a Python sandbox (python_run) as MCP tools.

    stdio by default (what desktop and coding agents start); --http PORT for streamable
    HTTP on 127.0.0.1. Stdout carries only the protocol: messages go to stderr and MCP logging.
    """
    base = Path(root) if root is not None else Path.cwd()
    if not base.is_dir():
        raise fail(f"--root {root}: " + ("is not a directory" if base.exists() else "does not exist"))
    if http is not None and not 0 < http < 65536:
        raise fail(f"--http {http}: give a TCP port from 1 to 65535")
    _positive(max_cost_usd, "--max-cost-usd")
    _positive(session_idle_s, "--session-idle-s")
    for value, flag in ((max_bytes, "--max-bytes"), (max_files, "--max-files"), (max_sessions, "--max-sessions")):
        _positive(value, flag)
    labels = _labels(label)
    traces = Path(trace_dir) if trace_dir is not None else _default_trace_dir()
    try:
        traces.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise fail(f"--trace-dir {traces}: cannot be created ({exc.strerror})") from None
    if not os.access(traces, os.W_OK):
        raise fail(f"--trace-dir {traces}: cannot be written; give another directory")
    set_options = parse_set(settings)
    flags = {"model": ("--model", model), "sub_model": ("--sub-model", sub_model)}
    rlm = make_rlm(flags, set_options)  # validates every setting now, naming where a bad one came from
    if rlm.settings.sandbox == "local":
        raise fail("sandbox=local is not a security boundary, and MCP clients run code on a model's say-so: "
                   "rlm-sandbox mcp runs only in containers; drop --set sandbox=local")
    try:
        import anyio

        from ..serve.mcp_paths import FileLimits
        from ..serve.mcp_server import McpConfig, serve
    except ImportError as exc:
        raise fail(f"the MCP server needs the mcp extra ({exc.name or exc} is missing): "
                   "pip install 'rlm-sandbox[mcp]'") from None
    given = {name: value for name, (_, value) in flags.items() if value is not None}
    cap = max_cost_usd if max_cost_usd is not None else rlm.settings.max_cost_usd  # a configured budget is a cap
    spec = rlm.settings.sandbox_spec()
    spec = spec.model_copy(update={"labels": {**spec.labels, **labels}})
    config = McpConfig(root=base.resolve(), trace_dir=traces.resolve(), sandbox_spec=spec, labels=labels,
                       options={**set_options, **given}, max_cost_usd=cap,
                       files=FileLimits(max_bytes=max_bytes, max_files=max_files),
                       session_idle_s=session_idle_s, max_sessions=max_sessions)
    where = "stdio" if http is None else f"http://127.0.0.1:{http}/mcp"
    say(f"MCP server (pid {os.getpid()}) on {where}; files under {config.root}; traces in {config.trace_dir}")
    try:
        anyio.run(serve, config, http)
    except KeyboardInterrupt:
        pass
