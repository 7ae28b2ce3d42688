"""``rlm-sandbox serve``: an OpenAI-compatible HTTP server whose models are RLMs.

Everything is checked before the server listens (the address and key, the directories, the
runs' settings); litellm is imported and the warm pool filled once, at start, not per
request. The key is never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .common import EXIT_USAGE, fail, make_rlm, parse_set, say


def serve(
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS",
                             help="Address to bind. Any non-loopback address needs --api-key."),
    port: int = typer.Option(8000, "--port", metavar="PORT", help="Port to listen on."),
    api_key: Optional[str] = typer.Option(None, "--api-key", metavar="KEY", show_default=False,
                                          help="Require 'Authorization: Bearer KEY' on every request (default: "
                                               "$RLM_SANDBOX_SERVER_KEY; none on loopback)."),
    max_concurrent: int = typer.Option(4, "--max-concurrent", metavar="N", help="Runs at once."),
    max_queue: int = typer.Option(16, "--max-queue", metavar="M",
                                  help="Requests that may wait for a run; beyond them a 429 with Retry-After."),
    pool: Optional[int] = typer.Option(None, "--pool", metavar="N",
                                       help="Warm sandboxes kept ready (default: --max-concurrent; 0: none)."),
    trace_dir: Optional[str] = typer.Option(None, "--trace-dir", metavar="DIR",
                                            help="Keep each request's JSONL trace as DIR/<id>.jsonl, served at "
                                                 "GET /v1/rlm/traces/<id> (?format=html for the viewer)."),
    max_cost_usd: Optional[str] = typer.Option(None, "--max-cost-usd", metavar="USD",
                                               help="Cap of each request's spend (requests may ask for less)."),
    max_wall_time_s: Optional[str] = typer.Option(None, "--max-wall-time-s", metavar="SECONDS",
                                                  help="Cap of each request's wall time."),
    max_body_mb: float = typer.Option(64.0, "--max-body-mb", metavar="MB",
                                      help="Largest request body (the context travels in it); larger is a 413."),
    heartbeat_s: float = typer.Option(15.0, "--heartbeat-s", metavar="SECONDS",
                                      help="Longest silence on a stream before a keep-alive comment."),
    settings: list[str] = typer.Option([], "--set", metavar="NAME=VALUE",
                                       help="Any run setting, e.g. --set model=gpt-4o-mini --set max_iterations=10 "
                                            "(repeatable; `rlm-sandbox settings` lists them)."),
) -> None:
    """Serve RLMs as an OpenAI-compatible API: POST /v1/chat/completions with model rlm/<model>.

    The last user message is the question, the messages before it the context. Requests
    may lower budgets (extra_body={"rlm": {...}}), never raise them past the server's caps
    or change its endpoints, keys or sandbox. Stop it with Ctrl-C: runs still going are
    interrupted and their containers removed.
    """
    try:
        import uvicorn

        from ..serve.app import create_app
        from ..serve.auth import InsecureBind, check_bind
        from ..serve.config import KEY_VARIABLE, ServerConfig
    except ImportError as exc:
        raise fail(f"`rlm-sandbox serve` needs the serve extra ({exc.name} is missing): "
                   "pip install 'rlm-sandbox[serve]'") from None
    from ..redaction import remember_secret

    key = api_key or os.environ.get(KEY_VARIABLE) or None
    remember_secret(key, KEY_VARIABLE)  # masked wherever our output could show it
    try:
        check_bind(host, key)
    except InsecureBind as exc:
        raise fail(str(exc)) from None
    options: dict[str, str] = parse_set(settings)
    for name, value in (("max_cost_usd", max_cost_usd), ("max_wall_time_s", max_wall_time_s)):
        if value is not None:
            options[name] = value
    make_rlm({}, options)  # every setting checked now, with the CLI's messages, before listening
    try:
        config = ServerConfig(host=host, port=port, api_key=key, max_concurrent=max_concurrent,
                              max_queue=max_queue, trace_dir=Path(trace_dir) if trace_dir else None,
                              heartbeat_s=heartbeat_s, pool=pool, max_body_mb=max_body_mb,
                              options=options)
    except ValueError as exc:
        raise fail(str(exc)) from None
    app = create_app(config)
    say(f"serving http://{host}:{port}/v1 (models: {', '.join(app.state.runner.models())}; "
        f"{'key required' if key else 'no key: loopback only'}); Ctrl-C stops it")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=30)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE) from None
