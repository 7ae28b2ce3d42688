"""``rlm-sandbox run``: answer a query about the context in a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import RLMSandboxError
from ..events.trace import write_jsonl
from .common import exit_code, fail, print_result


def _load_context(path: str, fmt: str) -> Any:
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        file = Path(path)
        if not file.is_file():
            raise fail(f"context file {path!r} does not exist (give a path, or - for stdin)", 2)
        data = file.read_bytes()
    if fmt == "auto":
        fmt = "json" if path.endswith(".json") else "text"
    if fmt == "bytes":
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise fail(f"{path} is not UTF-8 text; use --context-format bytes", 2) from None
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise fail(f"{path} is not valid JSON ({exc}); use --context-format text", 2) from None
    if fmt == "lines":
        return text.splitlines()
    return text


def _parse_settings(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise fail(f"--set takes NAME=VALUE, not {pair!r}", 2)
        options[name.strip()] = value
    return options


def run(
    query: str = typer.Option(..., "--query", "-q", help="The question to answer."),
    context_file: str = typer.Option(..., "--context-file", "-f", help="File holding the context, or - for stdin."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Root model as litellm names it (default gpt-4o-mini)."),
    sub_model: Optional[str] = typer.Option(None, "--sub-model", help="Model for llm_query (default: --model)."),
    context_format: str = typer.Option("auto", "--context-format",
                                       help="auto (json for .json files, else text), text, json, lines or bytes."),
    max_iterations: Optional[int] = typer.Option(None, "--max-iterations", min=1,
                                                 help="Root-model turns before a forced answer (default 20)."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="docker (default) or local (NOT a security boundary)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Progress on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result as JSON."),
    trace: Optional[Path] = typer.Option(None, "--trace", help="Write the trajectory as JSONL to this file."),
    settings: list[str] = typer.Option([], "--set", metavar="NAME=VALUE",
                                       help="Any setting, e.g. --set max_cost_usd=0.5 --set runtime=runsc "
                                            "(repeatable; see `Settings`)."),
) -> None:
    """Answer QUERY about the context in a file."""
    if context_format not in ("auto", "text", "json", "lines", "bytes"):
        raise fail(f"--context-format must be auto, text, json, lines or bytes, not {context_format!r}", 2)
    if sandbox not in (None, "docker", "local"):
        raise fail(f"--sandbox must be docker or local, not {sandbox!r}", 2)
    context = _load_context(context_file, context_format)
    from ..api import RLM

    flags = {"model": model, "sub_model": sub_model, "max_iterations": max_iterations, "sandbox": sandbox}
    try:
        options = {**_parse_settings(settings), **{k: v for k, v in flags.items() if v is not None}}  # flags win
        rlm = RLM(verbose=verbose, **options)
    except (TypeError, ValueError) as exc:  # an unknown or invalid --set
        raise fail(str(exc), 2) from None
    try:
        result = rlm.run(query, context)
    except RLMSandboxError as exc:
        raise fail(str(exc)) from None
    if trace:
        write_jsonl(trace, result.trajectory)
    print_result(result, as_json)
    raise typer.Exit(exit_code(result.status))
