"""``rlm-sandbox doctor``: check the machine and say what to fix."""

from __future__ import annotations

from typing import Optional

import typer

from ..errors import RLMSandboxError
from ..redaction import redact


def doctor(model: Optional[str] = typer.Option(None, "--model", metavar="MODEL",
                                               help="Also ask MODEL once whether it sees the system message.")) -> None:
    """Check Docker, the sandbox image, gVisor and provider keys (names only); say what to fix."""
    failures = 0

    def report(ok: bool, what: str, fix: str = "", *, required: bool = True) -> None:
        nonlocal failures
        failures += required and not ok
        label, colour = ("ok  ", "green") if ok else (("FAIL", "red") if required else ("warn", "yellow"))
        typer.echo(typer.style(label, fg=colour) + redact(f" {what}" + (f"\n     -> {fix}" if fix and not ok else "")))

    from ..sandbox.client import docker_client

    try:
        client = docker_client()
        info = client.info()
        report(True, f"Docker {info.get('ServerVersion')} ({info.get('Driver')}, cgroup v{info.get('CgroupVersion', '?')})")
        from ..sandbox.image import default_image_tag

        tag = default_image_tag()
        report(bool(client.api.images(name=tag)), f"sandbox image {tag}",
               "run `rlm-sandbox image build` (or let the first sandbox build it)")
        report("runsc" in (info.get("Runtimes") or {}), "gVisor runtime (runsc) for runtime='runsc'",
               "apt-get install runsc and register it in /etc/docker/daemon.json (scripts/setup.sh does both)",
               required=False)
    except RLMSandboxError as exc:
        report(False, "Docker daemon", str(exc))
    from ..config import provider_keys

    keys = provider_keys()  # names only, never values
    report(bool(keys), "provider keys: " + (", ".join(f"{name} ({where})" for name, where in keys) or "none"),
           "export OPENAI_API_KEY=... or put it in ./.env (or another provider's key) to use real models; "
           "the demo runs without", required=False)
    if model:  # one call, through the settings' api_base, key and root model options
        from ..config import Settings
        from ..models.probe import check_system_message

        settings = Settings()
        try:
            seen = check_system_message(model, completion_kwargs={**settings.completion_kwargs(),
                                                                  **settings.model_options})
            report(seen.seen is not False, f"model {model} sees the system message: {seen.detail}",
                   "set supports_system_message=false (--set, RLM_SANDBOX_SUPPORTS_SYSTEM_MESSAGE or .env): the "
                   "system prompt is then folded into the first user message", required=False)
        except RLMSandboxError as exc:
            report(False, f"model {model}", str(exc))
    raise typer.Exit(1 if failures else 0)
