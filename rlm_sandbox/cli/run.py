"""``rlm-sandbox run``: answer a question about the context in a file.

Everything the user gave is checked before a container starts or a model is called;
the trajectory is written as the run goes, so an interrupted run keeps what it did.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import RLMSandboxError
from .common import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    error_exit,
    exit_code,
    fail,
    make_rlm,
    parse_set,
    print_result,
    say,
)

_FORMATS = ("auto", "text", "json", "lines", "bytes")


def _read(path: str, option: str) -> bytes:
    """The bytes of ``path`` (``-``: stdin), or a one-line failure naming ``option``."""
    if path == "-":
        return sys.stdin.buffer.read()
    file = Path(path)
    if file.is_dir():
        raise fail(f"{option} {path}: is a directory; give a file (or - for stdin)")
    if not file.exists():
        raise fail(f"{option} {path}: does not exist (give a path, or - for stdin)")
    try:
        return file.read_bytes()
    except OSError as exc:
        raise fail(f"{option} {path}: cannot be read ({exc.strerror})") from None


def _load_query(query: str | None, query_file: str | None) -> str:
    if (query is None) == (query_file is None):
        raise fail("give the question with --query TEXT or --query-file PATH (one of them)")
    if query_file is not None:
        try:
            query = _read(query_file, "--query-file").decode("utf-8")
        except UnicodeDecodeError:
            raise fail(f"--query-file {query_file}: is not UTF-8 text") from None
    assert query is not None
    if not query.strip():
        raise fail(f"{'--query-file ' + str(query_file) if query_file else '--query'}: the question is empty; "
                   "give the question to answer")
    return query


def _load_context(path: str, fmt: str) -> Any:
    data = _read(path, "--context-file")
    if fmt == "auto":
        fmt = "json" if path.endswith(".json") else "text"
    if fmt == "bytes":
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise fail(f"--context-file {path}: is not UTF-8 text; use --context-format bytes") from None
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise fail(f"--context-file {path}: is not valid JSON ({exc}); use --context-format text") from None
    if fmt == "lines":
        return text.splitlines()
    return text


def _options(pairs: list[str], flag: str) -> dict[str, Any] | None:
    """``KEY=VALUE`` flags as a dict of litellm options (None when none were given)."""
    from ..models.options import parse_option_value

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"{flag} takes KEY=VALUE, e.g. {flag} top_p=0.9, not {pair!r}")
        options[key.strip()] = parse_option_value(value)
    return options or None


def _open_trace(path: str) -> Any:
    """The trajectory's writer, opened now: a path that cannot be written fails before the run."""
    from ..events.jsonl import JsonlWriter

    try:
        return JsonlWriter(path)
    except IsADirectoryError:
        raise fail(f"--trace {path}: is a directory; give a file name") from None
    except FileNotFoundError:
        raise fail(f"--trace {path}: the directory {str(Path(path).parent)!r} does not exist") from None
    except OSError as exc:
        raise fail(f"--trace {path}: cannot be written ({exc.strerror})") from None


def run(
    query: Optional[str] = typer.Option(None, "--query", "-q", metavar="TEXT", help="The question to answer."),
    query_file: Optional[str] = typer.Option(None, "--query-file", metavar="PATH",
                                             help="Read the question from this file (- for stdin), e.g. a long one."),
    context_file: str = typer.Option(..., "--context-file", "-f", metavar="PATH",
                                     help="File holding the context, or - for stdin."),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="MODEL",
                                        help="Root model as litellm names it (default gpt-4o-mini)."),
    sub_model: Optional[str] = typer.Option(None, "--sub-model", metavar="MODEL",
                                            help="Model for llm_query (default: --model)."),
    context_format: str = typer.Option("auto", "--context-format", metavar="FORMAT",
                                       help="auto (json for .json files, else text), text, json, lines or bytes."),
    max_iterations: Optional[str] = typer.Option(None, "--max-iterations", metavar="N",  # checked by Settings
                                                 help="Root-model turns before a forced answer (default 20)."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", metavar="docker|local",
                                          help="docker (default) or local (NOT a security boundary)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Progress on stderr."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result as JSON."),
    trace: Optional[str] = typer.Option(None, "--trace", metavar="PATH",
                                        help="Write the trajectory as JSONL to this file, as the run goes."),
    model_option: list[str] = typer.Option([], "--model-option", metavar="KEY=VALUE",
                                           help="A litellm option for the root model's calls, e.g. top_p=0.9 or "
                                                "stop='[\"END\"]' (VALUE is JSON or text; repeatable)."),
    sub_model_option: list[str] = typer.Option([], "--sub-model-option", metavar="KEY=VALUE",
                                               help="A litellm option for sub-calls and child runs (repeatable)."),
    settings: list[str] = typer.Option([], "--set", metavar="NAME=VALUE",
                                       help="Any setting, e.g. --set max_cost_usd=0.5 --set runtime=runsc "
                                            "(repeatable; `rlm-sandbox settings` lists them)."),
) -> None:
    """Answer a question (--query) about the context in a file (--context-file).

    The answer goes to stdout, progress and the summary to stderr.
    """
    if context_format not in _FORMATS:
        raise fail(f"--context-format {context_format}: not a format; use one of {', '.join(_FORMATS)}")
    if query_file == "-" and context_file == "-":
        raise fail("--query-file - and --context-file - cannot both read stdin; give one of them a file")
    text = _load_query(query, query_file)
    flags = {"model": ("--model", model), "sub_model": ("--sub-model", sub_model),
             "max_iterations": ("--max-iterations", max_iterations), "sandbox": ("--sandbox", sandbox),
             "verbose": ("--verbose", True if verbose else None),
             "model_options": ("--model-option", _options(model_option, "--model-option")),
             "sub_model_options": ("--sub-model-option", _options(sub_model_option, "--sub-model-option"))}
    rlm = make_rlm(flags, parse_set(settings))
    context = _load_context(context_file, context_format)
    writer = _open_trace(trace) if trace else None
    rlm.on_event = writer
    try:
        result = rlm.run(text, context)
    except KeyboardInterrupt:  # the run wrote its own run_interrupted event before it stopped
        raise fail("interrupted" + (f"; the trajectory so far is in {trace}" if writer else ""),
                   EXIT_INTERRUPTED) from None
    except RLMSandboxError as exc:
        raise error_exit(exc) from None
    finally:
        if writer is not None:
            writer.close()
    print_result(result, as_json)
    if writer is not None and writer.error is not None:
        say(f"the trajectory in {trace} is incomplete: writing it failed ({writer.error})", typer.colors.YELLOW)
    raise typer.Exit(exit_code(result.status))


run.__doc__ = f"{inspect.cleandoc(run.__doc__ or '')}\n\n{EXIT_CODES_HELP}"
