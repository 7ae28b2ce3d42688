"""The ``rlm-sandbox`` command: a thin layer over the library.

Exit codes: 0 the run completed; 1 error; 3 the run ended without completing
(max_iterations, budget_exhausted, timeout) but printed its best answer; 2 bad usage.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .errors import RLMSandboxError
from .trace import write_jsonl

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run Recursive Language Models whose code runs in a locked-down Docker container.")
image_app = typer.Typer(no_args_is_help=True, help="Build or inspect the sandbox image.")
app.add_typer(image_app, name="image")

#: Provider key variables litellm reads, and a model to use when only that key is set.
_KEY_DEFAULT_MODELS = {"OPENAI_API_KEY": "gpt-4o-mini", "ANTHROPIC_API_KEY": "anthropic/claude-3-5-haiku-latest",
                       "GEMINI_API_KEY": "gemini/gemini-1.5-flash", "MISTRAL_API_KEY": "mistral/mistral-small-latest"}


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"rlm-sandbox: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _load_context(path: str, fmt: str) -> Any:
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        file = Path(path)
        if not file.is_file():
            raise _fail(f"context file {path!r} does not exist (give a path, or - for stdin)", 2)
        data = file.read_bytes()
    if fmt == "auto":
        fmt = "json" if path.endswith(".json") else "text"
    if fmt == "bytes":
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{path} is not UTF-8 text; use --context-format bytes", 2) from None
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(f"{path} is not valid JSON ({exc}); use --context-format text", 2) from None
    if fmt == "lines":
        return text.splitlines()
    return text


def _parse_settings(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise _fail(f"--set takes NAME=VALUE, not {pair!r}", 2)
        options[name.strip()] = value
    return options


def _print_result(result: Any, as_json: bool) -> None:
    if as_json:
        data = result.to_dict()
        data.pop("trajectory", None)
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        typer.echo(result.answer)
    summary = (f"status={result.status} iterations={result.iterations} code_executions={result.code_executions} "
               f"sub_calls={result.sub_calls} tokens={result.total_input_tokens}+{result.total_output_tokens} "
               f"cost=${result.cost_usd:.4f} time={result.duration_s:.1f}s")
    typer.secho(summary, err=True, dim=True)
    if result.error:
        typer.secho(f"rlm-sandbox: {result.error}", fg=typer.colors.YELLOW, err=True)


def _exit_code(status: str) -> int:
    return {"completed": 0, "error": 1}.get(status, 3)


@app.command()
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
        raise _fail(f"--context-format must be auto, text, json, lines or bytes, not {context_format!r}", 2)
    if sandbox not in (None, "docker", "local"):
        raise _fail(f"--sandbox must be docker or local, not {sandbox!r}", 2)
    context = _load_context(context_file, context_format)
    from .engine import RLM

    flags = {"model": model, "sub_model": sub_model, "max_iterations": max_iterations, "sandbox": sandbox}
    try:
        options = {**_parse_settings(settings), **{k: v for k, v in flags.items() if v is not None}}  # flags win
        rlm = RLM(verbose=verbose, **options)
    except (TypeError, ValueError) as exc:  # an unknown or invalid --set
        raise _fail(str(exc), 2) from None
    try:
        result = rlm.run(query, context)
    except RLMSandboxError as exc:
        raise _fail(str(exc)) from None
    if trace:
        write_jsonl(trace, result.trajectory)
    _print_result(result, as_json)
    raise typer.Exit(_exit_code(result.status))


@app.command()
def demo(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Use this real model instead of the scripted one."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="docker (default) or local."),
    verbose: bool = typer.Option(True, "--verbose/--quiet", help="Show each step on stderr."),
) -> None:
    """Run an RLM over a bundled 160 KB report (a scripted model offline; --model for a real one).

    With --model, RLM_SANDBOX_MODEL or a provider key (OPENAI_API_KEY, ...) it uses that
    real model; otherwise a scripted demo model that writes real code, labelled as such.
    """
    from .demo import QUERY, demo_report, scripted_root, scripted_sub
    from .engine import RLM

    report, truth = demo_report()
    model = model or os.environ.get("RLM_SANDBOX_MODEL") or next(
        (default for key, default in _KEY_DEFAULT_MODELS.items() if os.environ.get(key)), None)
    scripted = []
    if model is None:
        from .testing import ScriptedModel

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
        raise _fail(str(exc)) from None
    finally:
        for scripted_model in scripted:
            scripted_model.close()
    _print_result(result, as_json=False)
    verdict = "correct" if result.answer.replace("$", "").replace(",", "").strip() == str(truth) else "WRONG"
    typer.secho(f"expected ${truth:,}: {verdict}", err=True)
    raise typer.Exit(_exit_code(result.status) or (0 if verdict == "correct" else 1))


@image_app.command("build")
def image_build(
    base: Optional[str] = typer.Option(None, "--base", help="Base image with python3 >= 3.11 (default: official slim, "
                                                            "else one built from Debian packages)."),
) -> None:
    """Build the sandbox image for this kernel version (no registry needed)."""
    from .sandbox.image import ensure_image

    try:
        typer.echo(ensure_image(base=base))
    except RLMSandboxError as exc:
        raise _fail(str(exc)) from None


@image_app.command("show")
def image_show() -> None:
    """Print the image tag this kernel version uses."""
    from .sandbox.image import default_image_tag

    typer.echo(default_image_tag())


@app.command()
def gc(images: bool = typer.Option(False, "--images", help="Also remove images built for older kernels.")) -> None:
    """Remove sandbox containers whose owner process is gone (and, with --images, stale images)."""
    from .sandbox.image import prune_stale_images
    from .sandbox.reaper import reap_orphans

    try:
        removed = reap_orphans()
        typer.echo(f"removed {len(removed)} orphaned sandbox container(s)")
        if images:
            pruned = prune_stale_images()
            typer.echo(f"removed {len(pruned)} stale image(s)" + "".join(f"\n  {tag}" for tag in pruned))
    except RLMSandboxError as exc:
        raise _fail(str(exc)) from None


@app.command()
def doctor() -> None:
    """Check Docker, the sandbox image, gVisor and model keys; say what to fix."""
    failures = 0

    def report(ok: bool, what: str, fix: str = "", *, required: bool = True) -> None:
        nonlocal failures
        failures += required and not ok
        label, colour = ("ok  ", "green") if ok else (("FAIL", "red") if required else ("warn", "yellow"))
        typer.echo(typer.style(label, fg=colour) + f" {what}" + (f"\n     -> {fix}" if fix and not ok else ""))

    from .sandbox.client import docker_client

    try:
        client = docker_client()
        info = client.info()
        report(True, f"Docker {info.get('ServerVersion')} ({info.get('Driver')}, cgroup v{info.get('CgroupVersion', '?')})")
        from .sandbox.image import default_image_tag

        tag = default_image_tag()
        report(bool(client.api.images(name=tag)), f"sandbox image {tag}",
               "run `rlm-sandbox image build` (or let the first sandbox build it)")
        report("runsc" in (info.get("Runtimes") or {}), "gVisor runtime (runsc) for runtime='runsc'",
               "apt-get install runsc and register it in /etc/docker/daemon.json (scripts/setup.sh does both)",
               required=False)
    except RLMSandboxError as exc:
        report(False, "Docker daemon", str(exc))
    keys = [key for key in _KEY_DEFAULT_MODELS if os.environ.get(key)]
    report(bool(keys), f"provider keys: {', '.join(keys) or 'none'}",
           "export OPENAI_API_KEY=... (or another provider's key) to use real models; the demo runs without",
           required=False)
    raise typer.Exit(1 if failures else 0)


if __name__ == "__main__":  # pragma: no cover
    app()
