"""``rlm-sandbox doctor``: the one place that explains a broken setup.

It checks, in order: Docker reachable (its version, the DOCKER_HOST in use), its runtimes
(runc; runsc for gVisor), the image for this kernel, a real sandbox started with one cell
run over the transport the settings choose (the socket, on a local daemon), the memory and
pids limits as the container's cgroup enforces them, provider keys (names only, from the
environment and ``.env``, which it loads as ``run`` does, so ``--model`` finds a key kept
there) and every base URL a call may go to: ``api_base`` (``RLM_SANDBOX_API_BASE``) and the
providers' own variables litellm reads (``OPENAI_API_BASE``, ``OPENAI_BASE_URL``, ...), each
named with its URL (credentials in a URL masked). Every failed check prints the
one command that fixes it; ``--json`` prints the same as data; the exit code is 1 when a
required check failed. Nothing secret is printed (every line goes through ``redact``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal, Optional

import typer
from pydantic import BaseModel

from ..errors import RLMSandboxError
from ..redaction import redact
from ..untrusted import visible

#: What the cell prints: the limits the container's cgroup (v2, else v1) enforces.
_LIMITS_CELL = """
def _first(*paths):
    for path in paths:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            pass
    return 'unknown'
print(len(context), _first('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'),
      _first('/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max'))
"""


class Check(BaseModel):
    name: str
    status: Literal["ok", "fail", "warn", "skipped"]
    detail: str
    fix: str | None = None


class Checks:
    """The checks made so far, printed as they come (unless ``--json``)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.items: list[Check] = []

    def add(self, name: str, status: str, detail: str, fix: str | None = None) -> None:
        # a provider's or a server's error text may hold control sequences: shown, never obeyed
        check = Check(name=name, status=status, detail=visible(redact(detail)),
                      fix=visible(redact(fix)) if fix and status != "ok" else None)
        self.items.append(check)
        if not self.as_json:
            label, colour = {"ok": ("ok  ", "green"), "fail": ("FAIL", "red"), "warn": ("warn", "yellow"),
                             "skipped": ("skip", "yellow")}[check.status]
            typer.echo(typer.style(label, fg=colour) + f" {check.detail}"
                       + (f"\n     -> {check.fix}" if check.fix else ""))

    def report(self, ok: bool, what: str, fix: str = "", *, required: bool = True, name: str | None = None) -> None:
        """A yes/no check: ok, else failed (``required``) or a warning. ``name`` defaults to
        the first word of ``what``."""
        self.add(name or what.split()[0], "ok" if ok else ("fail" if required else "warn"), what, fix or None)

    @property
    def failed(self) -> bool:
        return any(check.status == "fail" for check in self.items)


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
           model: Optional[str] = typer.Option(None, "--model", metavar="MODEL",
                                               help="Also ask MODEL once whether it sees the system message.")) -> None:
    """Check Docker, its runtimes, the sandbox image, a real sandbox (a cell run, its memory
    and pids limits), provider keys (names only), api_base and (--model) whether a model sees
    the system message; each failure prints the command that fixes it. Exit code 1 when a
    required check failed."""
    from ..provider_env import load_provider_env

    checks = Checks(as_json)
    loaded = load_provider_env()  # as `run` does: a key or a base URL in .env works as if exported
    settings = _settings(checks)
    client = _docker(checks)
    if client is not None:
        image = _image(checks, client, settings)
        _sandbox(checks, client, settings, image)
    _keys(checks, loaded)
    if settings is not None and settings.api_base:
        _api_base(checks, settings.api_base, "RLM_SANDBOX_API_BASE")
    for variable, url in _provider_bases():
        _api_base(checks, url, variable, ".env" if variable in loaded else "environment")
    if model and settings is not None:
        _system_message(checks, model, settings)
    if as_json:
        typer.echo(json.dumps({"ok": not checks.failed, "checks": [c.model_dump() for c in checks.items]}, indent=2))
    raise typer.Exit(1 if checks.failed else 0)


def _settings(checks: Checks) -> Any:
    from ..config import Settings
    from ..errors import SettingsError

    try:
        return Settings()
    except SettingsError as exc:
        checks.add("settings", "fail", f"settings: {exc}", "rlm-sandbox settings  # shows each value and where it "
                   "comes from: fix or unset the one named")
        return None


def _docker(checks: Checks) -> Any:
    from ..sandbox.client import DEFAULT_DOCKER_HOST, docker_client

    host = os.environ.get("DOCKER_HOST")
    where = f"DOCKER_HOST={host}" if host else f"DOCKER_HOST not set: {DEFAULT_DOCKER_HOST}"
    try:
        client = docker_client()
        info = client.info()
    except RLMSandboxError as exc:
        fix = ("unset DOCKER_HOST  # or start the daemon it names" if host and host != DEFAULT_DOCKER_HOST else
               "sudo systemctl start docker" if Path("/run/systemd/system").is_dir() else "sudo dockerd &")
        checks.add("docker", "fail", f"Docker daemon ({where}): {str(exc).split(': ', 1)[-1][:300]}", fix)
        return None
    checks.add("docker", "ok", f"Docker {info.get('ServerVersion')} ({where}; {info.get('Driver')}, "
               f"cgroup v{info.get('CgroupVersion', '?')})")
    runtimes = sorted(info.get("Runtimes") or {})
    checks.report("runc" in runtimes, f"runtimes: {', '.join(runtimes) or 'none'} (runc is the default)",
                  "sudo apt-get install -y runc && sudo systemctl restart docker", name="runc")
    checks.report("runsc" in runtimes, "gVisor runtime (runsc) for runtime='runsc'"
                  + ("" if "runsc" in runtimes else ": not registered"),
                  "sudo bash scripts/setup.sh  # installs runsc and registers it in /etc/docker/daemon.json",
                  required=False, name="runsc")
    return client


def _image(checks: Checks, client: Any, settings: Any) -> str | None:
    from ..sandbox.image import default_image_tag

    tag = (settings.image if settings is not None else None) or default_image_tag()
    present = bool(client.api.images(name=tag))
    checks.add("image", "ok" if present else "fail", f"sandbox image {tag}" + ("" if present else ": not present"),
               None if present else ("rlm-sandbox image build" if tag == default_image_tag() else
                                     f"docker pull {tag}  # or unset RLM_SANDBOX_IMAGE to use the built one"))
    return tag if present else None


def _sandbox(checks: Checks, client: Any, settings: Any, image: str | None) -> None:
    """Start a real sandbox, run a cell, and read the limits its cgroup enforces."""
    if settings is None or image is None:
        checks.add("sandbox", "skipped", "sandbox start: skipped (needs " + ("valid settings" if settings is None
                                                                               else "the image") + ")")
        checks.add("limits", "skipped", "memory and pids limits: skipped (needs a sandbox)")
        return
    from docker.utils import parse_bytes

    from ..sandbox.docker import DockerSandbox

    limits = settings.limits()
    sandbox = DockerSandbox("doctor", image=image, limits=limits, runtime=settings.runtime,
                            transport=settings.transport, client=client)
    transport = sandbox.resolved_transport()
    what = f"a sandbox started and ran a cell ({transport} transport, runtime {settings.runtime or 'runc'})"
    try:
        with sandbox:
            result = sandbox.exec(_LIMITS_CELL)
    except (RLMSandboxError, OSError) as exc:
        checks.add("sandbox", "fail", f"sandbox start ({transport} transport): {exc}",
                   "export RLM_SANDBOX_TRANSPORT=stdio  # the socket cannot be shared with this daemon"
                   if transport == "socket" else "rlm-sandbox gc && rlm-sandbox image build")
        checks.add("limits", "skipped", "memory and pids limits: skipped (needs a sandbox)")
        return
    if result.error or len(result.stdout.split()) != 3:
        checks.add("sandbox", "fail", f"{what}, but the cell failed: {result.error or result.stdout!r}",
                   "rlm-sandbox image build  # the image's kernel does not answer as expected")
        return
    checks.add("sandbox", "ok", what)
    _, memory, pids = result.stdout.split()
    want_memory, want_pids = parse_bytes(limits.memory), limits.pids
    enforced = memory == str(want_memory) and pids == str(want_pids)
    checks.add("limits", "ok" if enforced else "fail",
               f"limits enforced in the container: memory {memory} (want {want_memory}), pids {pids} "
               f"(want {want_pids})",
               None if enforced else "enable the memory and pids cgroup controllers (boot with "
                                     "systemd.unified_cgroup_hierarchy=1), then restart dockerd; `docker info` "
                                     "lists what it cannot enforce")


def _keys(checks: Checks, loaded: list[str]) -> None:
    from ..provider_env import provider_keys

    # names only, never values; those doctor loaded from .env into its environment are still .env's
    keys = [(name, ".env" if name in loaded else where) for name, where in provider_keys()]
    names = ", ".join(f"{name} ({where})" for name, where in keys) or "none"
    checks.report(bool(keys), f"provider keys: {names}", "export OPENAI_API_KEY=...  # or put it (or another "
                  "provider's key) in ./.env; the demo runs without", required=False, name="provider_keys")


#: The providers' own base-URL variables, as litellm reads them (OPENAI_API_BASE, OPENAI_BASE_URL, ...).
_PROVIDER_BASE = re.compile(r"^(?!RLM_SANDBOX_)[A-Z0-9_]+_(?:API_BASE|BASE_URL)$")


def _provider_bases() -> list[tuple[str, str]]:
    """``(variable, url)`` of each provider base-URL variable set (after ``.env`` was loaded)."""
    return sorted((name, value) for name, value in os.environ.items() if value and _PROVIDER_BASE.match(name))


def shown_url(url: str) -> str:
    """``url`` with any user name or password in it masked: a base URL may carry a key."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[-1]).geturl()


def _api_base(checks: Checks, api_base: str, variable: str, source: str = "environment") -> None:
    """Any HTTP answer (even 401 or 404) proves the server is there; no key is sent."""
    import urllib.error
    import urllib.request

    url = api_base.rstrip("/") + "/models"
    shown = shown_url(api_base)
    name = "api_base" if variable == "RLM_SANDBOX_API_BASE" else variable.lower()
    what = "api_base" if variable == "RLM_SANDBOX_API_BASE" else f"{variable} (from the {source})"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=10) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        checks.add(name, "fail", f"{what} {shown}: unreachable ({reason})",
                   f"start the server that should answer at {shown}, or unset {variable}"
                   + (" (in .env)" if source == ".env" else ""))
        return
    checks.add(name, "ok", f"{what} {shown}: answers (HTTP {status} for GET /models)")


def _model_base(model: str, settings: Any) -> str:
    """Where a call to ``model`` goes, for a failure message: ``api_base``, else the
    provider's own base variable litellm reads, else its default endpoint."""
    if settings.api_base:
        return f"{shown_url(settings.api_base)} (api_base)"
    try:
        from ..models.runtime import load_litellm

        provider = load_litellm().get_llm_provider(model)[1]
    except Exception:  # noqa: BLE001 - an unknown model: the call's own error says so
        return "the provider's default endpoint"
    for variable in (f"{provider.upper()}_API_BASE", f"{provider.upper()}_BASE_URL"):
        if os.environ.get(variable):
            return f"{shown_url(os.environ[variable])} ({variable})"
    return f"the {provider} default endpoint"


def _system_message(checks: Checks, model: str, settings: Any) -> None:
    """One call, through the settings' api_base, key and root model options."""
    from ..models.probe import check_system_message

    try:
        seen = check_system_message(model, completion_kwargs={**settings.completion_kwargs(),
                                                              **settings.model_options})
    except RLMSandboxError as exc:
        checks.add("system_message", "fail", f"model {model} at {_model_base(model, settings)}: {exc}",
                   "check the model name, the base URL named and the key: rlm-sandbox settings")
        return
    checks.report(seen.seen is not False, f"model {model} sees the system message: {seen.detail}",
                  "rlm-sandbox run --set supports_system_message=false ...  # or RLM_SANDBOX_SUPPORTS_SYSTEM_MESSAGE="
                  "false: the system prompt is then folded into the first user message", required=False,
                  name="system_message")
