"""``rlm-sandbox demo``: the bundled demo, offline with a scripted model unless given a real one."""

from __future__ import annotations

import os
from typing import Any, Optional

import typer

from ..errors import RLMSandboxError
from .common import (
    EXIT_INTERRUPTED,
    EXIT_WRONG,
    KEY_DEFAULT_MODELS,
    error_exit,
    exit_code,
    fail,
    make_rlm,
    print_result,
)
from .display import RunDisplay


def demo(
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="MODEL",
                                        help="Use this real model instead of the scripted one."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", metavar="docker|local",
                                          help="docker (default) or local (NOT a security boundary)."),
    verbose: bool = typer.Option(True, "--verbose/--quiet", help="Show each step on stderr (live on a terminal) "
                                                                 "or (--quiet) only the answer and the verdict."),
) -> None:
    """Run an RLM over a bundled 160 KB report (a scripted model offline; --model for a real one).

    With --model, RLM_SANDBOX_MODEL or a provider key (OPENAI_API_KEY, ...) it uses that
    real model; otherwise a scripted demo model that writes real code, labelled as such.
    Exit codes are those of `run`, and 1 when the run completed with a wrong answer.
    """
    from ..config import setting_variables
    from ..provider_env import load_provider_env
    from .demo_task import QUERY, demo_report, scripted_root, scripted_sub

    report, truth = demo_report()
    load_provider_env()  # a key in .env counts as set
    if model is None and "model" not in setting_variables():  # else RLM_SANDBOX_MODEL (environment or .env)
        model = next((default for key, default in KEY_DEFAULT_MODELS.items() if os.environ.get(key)), None)
        real = model is not None
    else:
        real = True
    scripted = []
    options: dict[str, Any] = {"model": model}
    if not real:
        from ..models.scripted import ScriptedModel

        scripted = [ScriptedModel(responder=scripted_root, name="demo-root"),
                    ScriptedModel(responder=scripted_sub, name="demo-sub")]
        if verbose:
            typer.secho("model: SCRIPTED demo model (offline; pass --model or set OPENAI_API_KEY for a real one)",
                        fg=typer.colors.CYAN, err=True)
        options = {"model": scripted[0].model, "sub_model": scripted[1].model}
    try:
        rlm = make_rlm({"model": ("--model", options["model"]), "sub_model": ("--sub-model", options.get("sub_model")),
                        "sandbox": ("--sandbox", sandbox)}, {})
        if verbose:  # --quiet: the answer and the verdict only
            if real:
                typer.secho(f"model: {rlm.settings.model}", fg=typer.colors.CYAN, err=True)
            typer.secho(f"query: {QUERY}\ncontext: a generated report of {len(report):,} characters "
                        "(only its description reaches the model)", err=True)
        display = RunDisplay(verbose=verbose, quiet=not verbose)  # it draws progress, not the library
        rlm.settings = rlm.settings.model_copy(update={"verbose": False})
        rlm.on_event = display.listener
        with display:
            result = rlm.run(QUERY, report)
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_INTERRUPTED) from None
    except RLMSandboxError as exc:
        raise error_exit(exc) from None
    finally:
        for scripted_model in scripted:
            scripted_model.close()
    print_result(result, as_json=False, quiet=not verbose)
    if result.status != "completed":
        typer.secho(f"expected ${truth:,}: no verdict, the run did not complete (status={result.status})", err=True)
        raise typer.Exit(exit_code(result.status))
    correct = result.answer.replace("$", "").replace(",", "").strip() == str(truth)
    label = "" if real or verbose else " (SCRIPTED demo model)"  # quiet: the verdict still says whose it is
    typer.secho(f"expected ${truth:,}: {'correct' if correct else 'WRONG'}{label}", err=True)
    raise typer.Exit(0 if correct else EXIT_WRONG)
