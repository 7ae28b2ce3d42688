"""What every command shares: exit codes, one-line failures, building an RLM from the
command line's options, and printing a result. Everything printed has its secrets masked,
and every message on stderr (which may quote a model's or a provider's text) shows control
and bidi characters as escapes (``untrusted.visible``). The answer on stdout is written
byte-exact when stdout is not a terminal (scripts read it), and made visible the same way
when it is.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import typer

from ..errors import (
    BudgetNotEnforceable,
    ContextTypeError,
    DockerUnavailable,
    LLMError,
    RLMSandboxError,
    SettingsError,
)
from ..redaction import redact
from ..untrusted import visible

if TYPE_CHECKING:
    from ..api import RLM
    from ..config import Settings
    from ..core.result import RLMResult

#: Provider key variables litellm reads, and a model to use when only that key is set.
KEY_DEFAULT_MODELS = {"OPENAI_API_KEY": "gpt-4o-mini", "ANTHROPIC_API_KEY": "anthropic/claude-3-5-haiku-latest",
                      "GEMINI_API_KEY": "gemini/gemini-1.5-flash", "MISTRAL_API_KEY": "mistral/mistral-small-latest"}

EXIT_COMPLETED, EXIT_WRONG, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_MODEL, EXIT_SANDBOX = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130
EXIT_CODES_HELP = """\b
Exit codes:
  0    the run completed (FINAL)
  2    bad usage: an option, a setting or an input file is wrong (also a
       budget that cannot be enforced, e.g. max_cost_usd for an unpriced model)
  3    the run ended without completing (max_iterations, budget_exhausted,
       timeout, stalled); its best answer is printed and stderr says where
       it came from
  4    model or provider error (authentication, unknown model, unreachable)
  5    sandbox error (Docker unreachable, image missing, ...); no model call
       is made, --json still prints the result (status error)
  130  interrupted (Ctrl-C, at any moment): the container is removed first;
       the trajectory so far is kept, ending with run_interrupted"""

LOCAL_WARNING = ("WARNING: --sandbox local is NOT a security boundary: the model's code runs as you, on this "
                 "machine, with your files, network and environment. Use it only with inputs and models you trust.")
DOCKER_HINT = ("start Docker (`rlm-sandbox doctor` checks it), or run without it with --sandbox local, which is "
               "NOT a security boundary (the model's code runs as you, with your files and network)")


def say(message: str, colour: str | None = None, *, dim: bool = False) -> None:
    """One message on stderr, secrets masked, control characters shown as escapes."""
    typer.secho(visible(redact(f"rlm-sandbox: {message}")), fg=colour, dim=dim, err=True)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    say(message, typer.colors.RED)
    return typer.Exit(code)


def prepare_output(path: str, flag: str, *, directory: bool = False) -> None:
    """The one rule for every place a command writes (``--trace``, ``--html``, ``trace html
    --output``, and ``--record DIR`` with ``directory=True``): the file (or DIR) itself is
    made, its parent directory must exist. A typo then fails now (exit 2), before any work
    is done, instead of leaving a stray tree of directories behind."""
    from pathlib import Path

    target = Path(path)
    if target.is_dir() and not directory:
        raise fail(f"{flag} {path}: is a directory; give a file name")
    if directory and target.exists() and not target.is_dir():
        raise fail(f"{flag} {path}: is a file; give a directory (it holds {path}/cassette.jsonl)")
    parent = target.parent
    if not parent.is_dir():
        raise fail(f"{flag} {path}: the directory {str(parent)!r} does not exist; make it first "
                   f"(mkdir -p {parent})")


def show_logs() -> None:
    """Our log lines (e.g. unknown RLM_SANDBOX_* names) on stderr, one line each, secrets masked."""
    logger = logging.getLogger("rlm_sandbox")
    if not any(getattr(handler, "_rlm_cli", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("rlm-sandbox: warning: %(message)s"))
        handler.addFilter(_Redacting())
        handler._rlm_cli = True  # type: ignore[attr-defined]  # our mark, to find our handler again
        logger.addHandler(handler)
        logger.propagate = False


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def parse_set(pairs: list[str]) -> dict[str, str]:
    """``--set NAME=VALUE`` pairs; unknown names fail here, with a suggestion."""
    from ..config import Settings, suggest

    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise fail(f"--set takes NAME=VALUE, not {pair!r}")
        if name not in Settings.model_fields:
            raise fail(f"--set {pair}: unknown option {name!r}{suggest(name, Settings.model_fields)}; "
                       "`rlm-sandbox settings` lists every setting")
        options[name] = value
    return options


def make_rlm(flags: dict[str, tuple[str, Any]], set_options: dict[str, str]) -> RLM:
    """An RLM from ``--set`` options and flags (``{setting: (flag, value)}``; flags win, None is
    "not given"); a bad value fails with one line per setting naming where it came from."""
    from ..api import RLM
    from ..config import setting_variables

    given = {name: value for name, (_, value) in flags.items() if value is not None}
    try:
        rlm = RLM(**{**set_options, **given})
    except SettingsError as exc:
        variables = setting_variables()
        lines = []
        for name, value, reason in exc.problems:
            shown = "***" if value is None else value
            if name in given:
                where = f"{flags[name][0]} {shown}"
            elif name in set_options:
                where = f"--set {name}={shown}"
            elif name in variables:
                variable, source = variables[name]
                where = f"{variable}={shown} (from the {'environment' if source == 'environment' else '.env file'})"
            else:
                where = f"{name}={shown}"
            lines.append(f"{where}: {reason}")
        for line in lines[:-1]:
            say(line, typer.colors.RED)
        raise fail(lines[-1]) from None
    if rlm.settings.sandbox == "local":
        say(LOCAL_WARNING, typer.colors.YELLOW)
    return rlm


def error_exit(exc: RLMSandboxError) -> typer.Exit:
    """The message and exit code for an error that ended a command."""
    if isinstance(exc, LLMError):
        return fail(str(exc), EXIT_MODEL)
    if isinstance(exc, (SettingsError, ContextTypeError, BudgetNotEnforceable)):
        return fail(str(exc), EXIT_USAGE)
    if isinstance(exc, DockerUnavailable):
        return fail(f"{exc}\n  -> {DOCKER_HINT}", EXIT_SANDBOX)
    return fail(str(exc), EXIT_SANDBOX)


def exit_code(status: str) -> int:
    return {"completed": EXIT_COMPLETED, "error": EXIT_MODEL}.get(status, EXIT_INCOMPLETE)


#: Where a non-FINAL answer came from (``RLMResult.answer_from``), as the CLI says it.
_SOURCES = {"answer_now": "the model's reply to one last answer-now request",
            "last_reply": "the model's last reply"}


def print_result(result: RLMResult, as_json: bool, *, quiet: bool = False, settings: Settings | None = None,
                 trace: str | None = None, html: str | None = None) -> None:
    """The answer (or the result as JSON, see ``result_json``) on stdout; the summary, and how
    the run ended, on stderr. ``quiet`` leaves out the summary, never the warnings.

    A fallback answer never passes for a FINAL one: stderr says where it came from.
    """
    terminal = sys.stdout.isatty()
    if as_json:
        from .result_json import result_json, terminal_json

        text = redact(result_json(result, settings, trace=trace, html=html))
        typer.echo(terminal_json(text) if terminal else text)
    elif result.answer:  # no answer: nothing on stdout, not an empty line
        answer = redact(result.answer)
        # color=True: click would strip ESC [ ... sequences from a pipe, and scripts read the answer
        typer.echo(visible(answer) if terminal else answer, color=True)
    from ..view.outline import cached_note

    cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"  # unknown is never $0
    summary = (f"status={result.status} iterations={result.iterations} code_executions={result.code_executions} "
               f"sub_calls={result.sub_calls} tokens={result.total_input_tokens}+{result.total_output_tokens}"
               f"{cached_note(result.total_cached_input_tokens)} cost={cost} time={result.duration_s:.1f}s "
               f"answer_from={result.answer_from}")
    if not quiet:
        typer.secho(redact(summary), err=True, dim=True)
    if result.error:
        say(result.error, typer.colors.YELLOW)
    if result.answer_from == "final":
        return
    ended = "the run did not complete" if result.status != "completed" else "the run ended"
    source = _SOURCES.get(result.answer_from)
    if source is None or not result.answer.strip():
        say(f"NO ANSWER: {ended} (status={result.status}) without one", typer.colors.YELLOW)
    else:
        say(f"NOT A FINAL ANSWER: {ended} (status={result.status}) without FINAL; the answer printed is "
            f"{source}, not a FINAL answer", typer.colors.YELLOW)
