"""``rlm-sandbox eval``: evaluation suites for CI (``run``), task files from the built-in
generators (``generate``), and what is built in (``list``). A thin layer over
:mod:`rlm_sandbox.eval`: ``run``'s flags map onto the fields of one ``SuiteConfig`` (which checks
them, and names the flag of a bad value), handed to ``run_suite`` as Python callers hand theirs.

Exit codes of ``eval run``: 0 the suite passed; 1 it failed (a task ended in error, unless
--fail-on-error allows it, or the mean score is below --min-score); 2 bad usage (an option, a
task file, a generator parameter); 4 stopped early by a provider error no retry can mend (a bad
or missing API key, an unknown model); 130 interrupted (finished tasks are kept; run again to
resume).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Optional

import typer

from ..untrusted import visible

from .common import EXIT_INTERRUPTED, EXIT_MODEL, EXIT_USAGE, fail, parse_set, say

if TYPE_CHECKING:
    from ..eval.suite_config import SuiteConfig
    from ..eval.summary import SuiteSummary

eval_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Evaluation suites: run task files or built-in generators, score them, report.")

EXIT_FAILED = 1
_TASK_BUDGETS = {"task_time": "max_wall_time_s", "task_tokens": "max_total_tokens", "task_cost": "max_cost_usd",
                 "task_sub_calls": "max_sub_calls"}


def _pairs(values: list[str], option: str) -> dict[str, str]:
    found = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name.strip():
            raise fail(f"{option} takes NAME=VALUE, not {value!r}")
        found[name.strip()] = text.strip()
    return found


@eval_app.command("list")
def list_builtins() -> None:
    """The built-in generators (with their parameters) and scorers."""
    from ..eval.generators import GENERATORS
    from ..eval.scorers import SCORERS

    for name, generator in GENERATORS.items():
        typer.echo(f"{name}: {generator.description}")
        for param_name, param in generator.params.items():
            choices = f" (one of {', '.join(map(str, param.choices))})" if param.choices else ""
            typer.echo(f"    -p {param_name}=...  {param.help}; default {param.default}{choices}")
    typer.echo(f"scorers: {', '.join(SCORERS)}, or a Python callable as module:function")


@eval_app.command()
def generate(
    name: str = typer.Argument(..., metavar="NAME", help="A built-in generator (`rlm-sandbox eval list`)."),
    n: int = typer.Option(10, "--n", min=1, help="How many tasks."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same tasks."),
    param: list[str] = typer.Option([], "--param", "-p", metavar="NAME=VALUE",
                                    help="A generator parameter, e.g. -p tokens=8192,65536 (a list is cycled over)."),
    output: str = typer.Option(..., "--output", "-o", metavar="FILE", help="The task file to write (JSONL)."),
) -> None:
    """Write tasks from a built-in generator to a task file. Contexts are not stored: each is
    rebuilt from its generator and seed when the task runs."""
    from ..eval.generators import GeneratorError
    from ..eval.tasks import generate_tasks, write_tasks

    try:
        tasks = generate_tasks(name, n=n, seed=seed, params=_pairs(param, "--param"))
        write_tasks(tasks, output)
    except (GeneratorError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"--output {output}: cannot be written ({exc.strerror or exc})") from None
    say(f"wrote {len(tasks)} {name} task(s) to {output}")


@eval_app.command()
def run(
    sources: list[str] = typer.Argument(..., metavar="TASKS_OR_GENERATOR...",
                                        help="Task files (JSONL) and/or built-in generator names."),
    model: str = typer.Option(..., "--model", "-m", metavar="MODEL", help="Root model (scripted/oracle: the "
                              "scripted oracle, for testing the pipeline)."),
    sub_model: Optional[str] = typer.Option(None, "--sub-model", metavar="MODEL", help="Model for llm_query."),
    out: str = typer.Option(..., "--out", "-o", metavar="DIR", help="Output directory (results are resumed from it)."),
    n: int = typer.Option(10, "--n", min=1, help="Tasks per generator named."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated tasks."),
    param: list[str] = typer.Option([], "--param", "-p", metavar="NAME=VALUE", help="Generator parameter."),
    limit: Optional[str] = typer.Option(None, "--limit", metavar="N|A-B", help="The first N tasks, or tasks A to B."),
    task_id: list[str] = typer.Option([], "--task-id", metavar="ID", help="Only this task (repeatable)."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Runs per task."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Tasks at once, each in its own "
                                              "sandbox (default 4; with --ray: every slot of the cluster)."),
    max_connections: Optional[int] = typer.Option(None, "--max-connections", min=1,
                                                  help="Sub-calls in flight at once across all tasks."),
    junit: Optional[str] = typer.Option(None, "--junit", metavar="FILE",
                                        help="JUnit XML here (default DIR/junit.xml)."),
    html: Optional[str] = typer.Option(None, "--html", metavar="FILE",
                                       help="HTML report here (default DIR/report.html)."),
    min_score: Optional[float] = typer.Option(None, "--min-score", metavar="X",
                                              help="Exit 1 if the mean score is below X (0-1)."),
    fail_on_error: Optional[float] = typer.Option(None, "--fail-on-error", metavar="P|N", help="Errors to tolerate "
                                                  "(by default any run that ends in error fails the suite): a share "
                                                  "of the runs from 0 to 1, or a count above 1."),
    no_fail_on_error: bool = typer.Option(False, "--no-fail-on-error", help="Never fail the suite for runs that "
                                          "ended in error (the mean score still counts them as 0)."),
    retry_on_error: int = typer.Option(0, "--retry-on-error", min=0, metavar="N",
                                       help="Rerun an errored task N times."),
    record: Optional[str] = typer.Option(None, "--record", metavar="DIR", help="Record all model traffic (one "
                                         "cassette per task) in DIR."),
    replay: Optional[str] = typer.Option(None, "--replay", metavar="DIR", help="Answer every model call from the "
                                         "cassettes in DIR: no network, no key."),
    baseline: Optional[str] = typer.Option(None, "--baseline", metavar="direct",
                                           help="Also ask the model directly, the whole context in its prompt."),
    baseline_model: Optional[str] = typer.Option(None, "--baseline-model", metavar="MODEL",
                                                 help="Model of the direct baseline (default: --model)."),
    force: bool = typer.Option(False, "--force", help="Rerun tasks whose results are already in DIR."),
    task_time: Optional[float] = typer.Option(None, "--task-time", metavar="S", help="Wall-time budget per task."),
    task_tokens: Optional[int] = typer.Option(None, "--task-tokens", metavar="N", help="Token budget per task."),
    task_cost: Optional[float] = typer.Option(None, "--task-cost", metavar="USD", help="Cost budget per task."),
    task_sub_calls: Optional[int] = typer.Option(None, "--task-sub-calls", metavar="N", help="Sub-calls per task."),
    settings: list[str] = typer.Option([], "--set", metavar="NAME=VALUE", help="Any setting of the runs."),
    label: list[str] = typer.Option([], "--label", metavar="KEY=VALUE", help="Extra label on the containers."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="auto|ADDRESS", help="Run the tasks on a Ray cluster "
                                      "(needs rlm-sandbox[ray]): 'auto' or the head's address."),
) -> None:
    """Run an evaluation suite: each task in its own sandbox, concurrently, scored, with
    results.jsonl, summary.json, report.md, JUnit XML, an HTML report and one trace per task in DIR.

    \b
    Exit codes: 0 passed; 1 failed: a run ended in error (beyond --fail-on-error)
    or the mean score is below --min-score; 2 bad usage; 4 stopped early by a
    provider error no retry can mend (bad or missing key, unknown model);
    130 interrupted (run again to resume)."""
    tolerated = _tolerated_errors(fail_on_error, no_fail_on_error)
    options = {**parse_set(settings), **_task_budgets(task_time=task_time, task_tokens=task_tokens,
                                                      task_cost=task_cost, task_sub_calls=task_sub_calls)}
    from ..eval.suite_config import SuiteConfig

    with _usage_errors():
        config = SuiteConfig(model=model, sub_model=sub_model, out=out, n=n, seed=seed,
                             params=_pairs(param, "--param"), limit=limit, task_ids=task_id or None, epochs=epochs,
                             concurrency=concurrency, max_connections=max_connections, retry_on_error=retry_on_error,
                             record=record, replay=replay, baseline=baseline,
                             baseline_model=baseline_model, force=force, min_score=min_score,
                             fail_on_error=tolerated, junit=junit, html=html, options=options,
                             labels=_pairs(label, "--label"), progress=not quiet, ray=ray)
    summary = _run_suite(sources, config)
    _print_summary(summary)
    raise typer.Exit(EXIT_MODEL if summary.stopped else EXIT_FAILED if summary.exit_reasons else 0)


def _tolerated_errors(fail_on_error: float | None, no_fail_on_error: bool) -> bool | float | None:
    """``--fail-on-error P|N`` and ``--no-fail-on-error`` as the one ``fail_on_error`` field."""
    if no_fail_on_error and fail_on_error is not None:
        raise fail("give --fail-on-error or --no-fail-on-error, not both")
    return False if no_fail_on_error else fail_on_error


def _task_budgets(**flags: float | None) -> dict[str, float]:
    """``--task-time`` and the like as the settings of every task's run."""
    return {_TASK_BUDGETS[flag]: value for flag, value in flags.items() if value is not None}


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """A bad value or input (a flag, a task file, a setting) exits 2 with its message."""
    from ..errors import SettingsError
    from ..eval.suite_config import EvalError
    from ..eval.tasks import TaskFileError

    try:
        yield
    except (TaskFileError, EvalError, SettingsError, ValueError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def _run_suite(sources: list[str], config: SuiteConfig) -> SuiteSummary:
    """Run the suite; Ctrl-C exits 130 (finished tasks are kept, a second run resumes)."""
    from ..eval.runner import run_suite

    try:
        with _usage_errors():
            return run_suite(sources, config)
    except KeyboardInterrupt:
        raise fail(f"interrupted; finished tasks are in {config.out}/results.jsonl (run again to resume)",
                   EXIT_INTERRUPTED) from None


def _print_summary(s: SuiteSummary) -> None:
    """The scores on stdout; where the reports are, and why the suite failed, on stderr."""
    from ..view.outline import cached_note

    cost = "unknown" if s.cost_usd is None else f"${s.cost_usd:.4f}"
    scripted = " [SCRIPTED models: not a real model's result]" if s.scripted else ""
    typer.echo(f"mean score {s.mean_score:.4f} ± {s.stderr:.4f} over {s.tasks} task(s); pass rate {s.pass_rate:.1%}; "
               f"errors {s.errors}; limits hit {s.limit_hits}; "
               f"tokens {s.input_tokens + s.output_tokens:,}{cached_note(s.cached_input_tokens)}; "
               f"cost {cost}{scripted}")
    say(f"reports: {', '.join(s.reports.values())}")
    if s.stopped:
        say(f"STOPPED: {s.not_run} task run(s) did not run; fix the cause and run again to resume", typer.colors.RED)
    for reason in s.exit_reasons:
        say(f"FAILED: {visible(reason, keep='')}", typer.colors.RED)


__all__ = ["eval_app"]
