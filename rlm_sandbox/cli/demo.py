"""``rlm-sandbox demo``: the bundled demo, offline with a scripted model unless given a real one."""

from __future__ import annotations

import os
from typing import Any, Optional

import typer

from ..errors import RLMSandboxError
from .common import KEY_DEFAULT_MODELS, exit_code, fail, print_result


def demo(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Use this real model instead of the scripted one."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="docker (default) or local."),
    verbose: bool = typer.Option(True, "--verbose/--quiet", help="Show each step on stderr."),
) -> None:
    """Run an RLM over a bundled 160 KB report (a scripted model offline; --model for a real one).

    With --model, RLM_SANDBOX_MODEL or a provider key (OPENAI_API_KEY, ...) it uses that
    real model; otherwise a scripted demo model that writes real code, labelled as such.
    """
    from ..api import RLM
    from .demo_task import QUERY, demo_report, scripted_root, scripted_sub

    report, truth = demo_report()
    model = model or os.environ.get("RLM_SANDBOX_MODEL") or next(
        (default for key, default in KEY_DEFAULT_MODELS.items() if os.environ.get(key)), None)
    scripted = []
    if model is None:
        from ..testing import ScriptedModel

        scripted = [ScriptedModel(responder=scripted_root, name="demo-root"),
                    ScriptedModel(responder=scripted_sub, name="demo-sub")]
        typer.secho("model: SCRIPTED demo model (offline; pass --model or set OPENAI_API_KEY for a real one)",
                    fg=typer.colors.CYAN, err=True)
        options: dict[str, Any] = {"model": scripted[0].model, "sub_model": scripted[1].model}
    else:
        typer.secho(f"model: {model}", fg=typer.colors.CYAN, err=True)
        options = {"model": model}
    typer.secho(f"query: {QUERY}\ncontext: a generated report of {len(report):,} characters "
                "(only its description reaches the model)", err=True)
    try:
        result = RLM(verbose=verbose, sandbox=sandbox, **options).run(QUERY, report)
    except RLMSandboxError as exc:
        raise fail(str(exc)) from None
    finally:
        for scripted_model in scripted:
            scripted_model.close()
    print_result(result, as_json=False)
    verdict = "correct" if result.answer.replace("$", "").replace(",", "").strip() == str(truth) else "WRONG"
    typer.secho(f"expected ${truth:,}: {verdict}", err=True)
    raise typer.Exit(exit_code(result.status) or (0 if verdict == "correct" else 1))
