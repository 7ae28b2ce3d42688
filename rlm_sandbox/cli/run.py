"""``rlm-sandbox run``: answer a question about the context in files, a directory or stdin.

Everything the user gave is checked before a container starts or a model is called;
the trajectory is written as the run goes, so an interrupted run keeps what it did, and
``--html`` renders whatever happened, even when the run was cut short.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer

from ..errors import RLMSandboxError
from ..events import types as ev
from ..events.stream import Listener
from ..redaction import redact
from .common import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    error_exit,
    exit_code,
    fail,
    make_rlm,
    parse_set,
    prepare_output,
    print_result,
    say,
)
from .contexts import load_context, load_query
from .display import RunDisplay, listeners

if TYPE_CHECKING:
    from ..api import RLM
    from ..config import Settings
    from ..core.result import RLMResult
    from ..events.jsonl import JsonlWriter


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


def _open_trace(path: str) -> JsonlWriter:
    """The trajectory's writer, opened now: a path that cannot be written fails before the run."""
    from ..events.jsonl import JsonlWriter

    prepare_output(path, "--trace")
    try:
        return JsonlWriter(path)
    except OSError as exc:
        raise fail(f"--trace {path}: cannot be written ({exc.strerror})") from None


def _refuse_scripted(settings: Settings) -> None:
    """``scripted/...`` models live inside a Python process (the eval's oracle, tests'
    ScriptedModel): ``run`` cannot reach one, so say so instead of litellm's "provider prefix"."""
    for flag, name in (("--model", settings.model), ("--sub-model", settings.sub_model)):
        if not str(name).startswith("scripted/"):
            continue
        from ..eval.oracle import ORACLE_MODEL

        if name == ORACLE_MODEL:
            raise fail(f"{flag} {name}: the scripted oracle is only for evaluation; it answers the built-in "
                       f"generators' tasks: rlm-sandbox eval run sniah --model {ORACLE_MODEL}. Give run a real "
                       "model, or try `rlm-sandbox demo` (offline)")
        raise fail(f"{flag} {name}: scripted models exist only inside a Python process (rlm_sandbox.testing) "
                   "and in `rlm-sandbox eval` (scripted/oracle); give run a real model, or try `rlm-sandbox demo`")


def _tape(rlm: Any, record: str | None, replay: str | None) -> None:
    """Wrap the run's model client to record into, or replay from, DIR/cassette.jsonl."""
    from ..models.cassette import CassetteError
    from ..models.replay import cassette_path, taped

    if record:
        prepare_output(record, "--record", directory=True)
    try:
        rlm.llm = taped(rlm.llm, record=cassette_path(record) if record else None,
                        replay=cassette_path(replay) if replay else None)
    except CassetteError as exc:
        raise fail(f"--{'record' if record else 'replay'} {record or replay}: {exc}") from None


def _refuse_contradictions(*, verbose: bool, quiet: bool, query_file: str | None, context_files: list[str],
                           record: str | None, replay: str | None) -> None:
    """Flags that cannot go together fail first, before any file is read."""
    if verbose and quiet:
        raise fail("--verbose and --quiet contradict each other; give one")
    if query_file == "-" and "-" in context_files:
        raise fail("--query-file - and --context-file - cannot both read stdin; give one of them a file")
    if record and replay:
        raise fail("give --record or --replay, not both")


def _load_rlm(flags: dict[str, tuple[str, Any]], set_pairs: list[str], record: str | None,
              replay: str | None) -> RLM:
    """The RLM the flags and ``--set`` describe, its model client recording or replaying if asked."""
    rlm = make_rlm(flags, parse_set(set_pairs))
    if not replay:
        _refuse_scripted(rlm.settings)
    _tape(rlm, record, replay)
    return rlm


class _Outputs:
    """Where the run is written as it goes: the ``--trace`` file (opened now, so a path that
    cannot be written fails before the run), the events kept for ``--html``, and the latest
    event (whether the run wrote anything before a Ctrl-C)."""

    def __init__(self, trace: str | None, html: str | None) -> None:
        if html:
            prepare_output(html, "--html")
        self.trace, self.html = trace, html
        self.writer: JsonlWriter | None = _open_trace(trace) if trace else None
        self.events: list[ev.EventBase] = []
        self.written: list[ev.EventBase] = []  # the latest event, once there is one

    def listener(self, display: RunDisplay) -> Listener | None:
        return listeners(self.writer, display.listener, self.events.append if self.html else None,
                         functools.partial(_keep_last, self.written))

    def interrupted(self) -> typer.Exit:
        """After Ctrl-C: the trace ends with run_interrupted, the HTML shows the run so far."""
        if self.writer is not None and not self.written:  # stopped before the run began: the trace says so too
            _interrupted_before_start(self.writer)
        if self.html:
            _write_html(self.html, self.events)
        return fail("interrupted" + (f"; the trajectory so far is in {self.trace}" if self.writer else "")
                    + (f"; the run so far is in {self.html}" if self.html else ""), EXIT_INTERRUPTED)

    def failed(self, exc: RLMSandboxError, settings: Settings, as_json: bool) -> typer.Exit:
        """The run could not go on (e.g. its sandbox did not start): the HTML of what happened,
        and for a script the result as JSON (status error)."""
        if self.html and self.events:
            _write_html(self.html, self.events)
        if as_json and exc.result is not None:
            from .result_json import result_json

            typer.echo(redact(result_json(exc.result, settings, trace=self.trace, html=self.html)))
        return error_exit(exc)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _answer(rlm: RLM, query: str, context: Any, outputs: _Outputs, *, verbose: bool, quiet: bool,
            as_json: bool) -> RLMResult:
    """Run the query with the live display (or plain lines) on stderr, the outputs written as it goes."""
    try:
        # The command draws progress itself (live on a terminal, plain lines otherwise).
        display = RunDisplay(verbose=verbose or rlm.settings.verbose, quiet=quiet)
        rlm.settings = rlm.settings.model_copy(update={"verbose": False})
        rlm.on_event = outputs.listener(display)
        with display:
            return rlm.run(query, context)
    except KeyboardInterrupt:  # the run wrote its own run_interrupted event before it stopped
        raise outputs.interrupted() from None
    except RLMSandboxError as exc:
        raise outputs.failed(exc, rlm.settings, as_json) from None
    finally:
        outputs.close()


def _show(result: RLMResult, settings: Settings, outputs: _Outputs, *, as_json: bool, quiet: bool) -> int:
    """The answer on stdout, the summary and warnings on stderr, the HTML file; the exit code."""
    if outputs.html:
        _write_html(outputs.html, result.trajectory)
    print_result(result, as_json, quiet=quiet, settings=settings, trace=outputs.trace, html=outputs.html)
    if outputs.writer is not None and outputs.writer.error is not None:
        say(f"the trajectory in {outputs.trace} is incomplete: writing it failed ({outputs.writer.error})",
            typer.colors.YELLOW)
    return exit_code(result.status)


def _write_html(path: str, events: list[Any]) -> None:
    from ..view.html import write_html

    try:
        write_html(events, path)
    except OSError as exc:
        say(f"--html {path}: could not be written ({exc.strerror or exc})", typer.colors.YELLOW)


def _keep_last(kept: list[Any], event: Any) -> None:
    kept[:] = [event]


def _interrupted_before_start(writer: JsonlWriter) -> None:
    """A Ctrl-C that came before the run wrote anything still ends its trace with run_interrupted."""
    from ..events.stream import EventLog

    EventLog([writer]).recorder().emit(ev.RunInterrupted, iterations=0)


def _interruptible(command: Callable[..., None]) -> Callable[..., None]:
    """Ctrl-C at any moment of the command (before the run, after it) is one line and exit
    130, as it is during the run; not click's "Aborted!" and exit 1."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None

    return wrapper


@_interruptible
def run(
    query: Optional[str] = typer.Option(None, "--query", "-q", metavar="TEXT", help="The question to answer."),
    query_file: Optional[str] = typer.Option(None, "--query-file", metavar="PATH",
                                             help="Read the question from this file (- for stdin), e.g. a long one."),
    context_files: list[str] = typer.Option([], "--context-file", "-f", metavar="PATH",
                                            help="A file holding the context, - for stdin. Repeat it for several "
                                                 "files: they become a list (or a dict, --context-as dict). "
                                                 "Without -f or --context-dir, piped stdin is the context."),
    context_dir: Optional[str] = typer.Option(None, "--context-dir", metavar="DIR",
                                              help="Every file of DIR matching --glob, in name order, as a list "
                                                   "(or a dict keyed by path, --context-as dict)."),
    glob: str = typer.Option("*", "--glob", metavar="PATTERN",
                             help="Which files of --context-dir (default *; **/*.md for every .md below it)."),
    context_as: str = typer.Option("auto", "--context-as", metavar="SHAPE",
                                   help="auto (one file: its content; several: a list), list, or dict "
                                        "(keyed by file name)."),
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
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Every event on stderr (above the live "
                                                                "display on a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", help="Print the answer alone: no live display, no summary "
                                                      "(warnings and errors still go to stderr)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (schema in the README)."),
    trace: Optional[str] = typer.Option(None, "--trace", metavar="PATH",
                                        help="Write the trajectory as JSONL to this file, as the run goes."),
    html: Optional[str] = typer.Option(None, "--html", metavar="PATH",
                                       help="Write the run as one self-contained HTML file (also when cut short)."),
    model_option: list[str] = typer.Option([], "--model-option", metavar="KEY=VALUE",
                                           help="A litellm option for the root model's calls, e.g. top_p=0.9 or "
                                                "stop='[\"END\"]' (VALUE is JSON or text; repeatable)."),
    sub_model_option: list[str] = typer.Option([], "--sub-model-option", metavar="KEY=VALUE",
                                               help="A litellm option for sub-calls and child runs (repeatable)."),
    settings: list[str] = typer.Option([], "--set", metavar="NAME=VALUE",
                                       help="Any setting, e.g. --set max_cost_usd=0.5 --set runtime=runsc "
                                            "(repeatable; `rlm-sandbox settings` lists them)."),
    record: Optional[str] = typer.Option(None, "--record", metavar="DIR",
                                         help="Keep every model request and reply in DIR/cassette.jsonl."),
    replay: Optional[str] = typer.Option(None, "--replay", metavar="DIR",
                                         help="Answer every model call from DIR/cassette.jsonl: no network, no key."),
) -> None:
    """Answer a question (--query) about a context (-f FILE..., --context-dir DIR, or stdin).

    The answer goes to stdout. On a terminal, stderr shows a live display of the run (and
    every event above it with -v); elsewhere, one line per event with -v, and a one-line
    summary at the end.
    """
    _refuse_contradictions(verbose=verbose, quiet=quiet, query_file=query_file, context_files=context_files,
                           record=record, replay=replay)
    text = load_query(query, query_file)
    flags = {"model": ("--model", model), "sub_model": ("--sub-model", sub_model),
             "max_iterations": ("--max-iterations", max_iterations), "sandbox": ("--sandbox", sandbox),
             "model_options": ("--model-option", _options(model_option, "--model-option")),
             "sub_model_options": ("--sub-model-option", _options(sub_model_option, "--sub-model-option"))}
    rlm = _load_rlm(flags, settings, record, replay)
    piped = query_file != "-" and not sys.stdin.isatty()
    context = load_context(context_files, context_dir, glob, context_format, context_as, piped)
    outputs = _Outputs(trace, html)
    result = _answer(rlm, text, context, outputs, verbose=verbose, quiet=quiet, as_json=as_json)
    raise typer.Exit(_show(result, rlm.settings, outputs, as_json=as_json, quiet=quiet))


run.__doc__ = f"{inspect.cleandoc(run.__doc__ or '')}\n\n{EXIT_CODES_HELP}"
