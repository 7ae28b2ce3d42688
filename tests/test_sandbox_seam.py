"""One seam for making sandboxes, ``(spec, context, host) -> Sandbox`` (issue 18, part 3):
providers, ``RLM(sandbox_factory=)`` and a pool's ``sandbox_factory`` all have it; an old
4-argument factory is refused up front; one exception-name walk; one preview default.

The runs here use the local sandbox (the same kernel and protocol as Docker's)."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.config import Settings
from rlm_sandbox.core.broker import CELL_EXCEPTIONS, _cell_name
from rlm_sandbox.errors import LLMAuthenticationError
from rlm_sandbox.kernel.protocol import PREVIEW_CHARS
from rlm_sandbox.kernel.repl import Repl
from rlm_sandbox.sandbox import Host, LocalSandbox, Sandbox, SandboxPool, SandboxSpec, provider_names, register_provider
from rlm_sandbox.sandbox.host import catchable_name
from rlm_sandbox.sandbox.kernel_sandbox import KernelSandbox
from rlm_sandbox.testing import ScriptedModel

MODEL = "openai/gpt-4o-mini"  # never called: these RLMs are only constructed


def old_factory(context: Any, callbacks: Any, exceptions: tuple[str, ...], settings: Any) -> Any:
    """The factory signature before issue 18."""
    raise AssertionError("never called")


def test_an_old_four_argument_factory_is_refused_naming_the_new_signature() -> None:
    with pytest.raises(TypeError) as refused:
        RLM(model=MODEL, sandbox_factory=old_factory)
    message = str(refused.value)
    assert "old_factory(context, callbacks, exceptions, settings)" in message
    assert "cannot be called as (spec, context, host)" in message
    assert "spec.create(context, host)" in message and "settings.sandbox_spec() is spec" in message


def test_a_factory_of_the_seam_is_accepted_however_it_is_written() -> None:
    class Callable_:
        def __call__(self, spec: SandboxSpec, context: Any, host: Host) -> Sandbox:
            return spec.create(context, host)

    def spread(*args: Any) -> Sandbox:
        return SandboxSpec(provider="local").create(args[1], args[2])

    def extra(spec: SandboxSpec, context: Any, host: Host, labels: dict[str, str] | None = None) -> Sandbox:
        return spec.create(context, host)

    for factory in (lambda spec, context, host: spec.create(context, host), Callable_(), spread, extra,
                    functools.partial(extra, labels={})):
        assert RLM(model=MODEL, sandbox_factory=factory).sandbox_factory is factory


def test_something_not_callable_is_refused_as_a_factory() -> None:
    with pytest.raises(TypeError, match="sandbox_factory must be a function .spec, context, host. -> Sandbox, "
                                        "not a str"):
        RLM(model=MODEL, sandbox_factory="docker")  # type: ignore[arg-type]  # wrong on purpose


def test_register_provider_refuses_an_old_four_argument_provider() -> None:
    with pytest.raises(TypeError, match=r"sandbox provider 'old_style' old_factory\(context, callbacks, "
                                        r"exceptions, settings\) cannot be called as \(spec, context, host\)"):
        register_provider("old_style", old_factory)
    assert "old_style" not in provider_names()


class Base(Exception):
    pass


class Sub(Base):
    pass


def test_one_walk_names_a_host_error_as_the_cell_catches_it() -> None:
    assert catchable_name(Sub("x"), ("Base",)) == "Base"
    assert catchable_name(Sub("x"), ("Base", "Sub")) == "Sub"  # the nearest class wins
    assert catchable_name(Sub("x"), ()) == "Sub"
    assert Host({}, ("Base",)).error_name(Sub("x")) == "Base"
    assert "LLMError" in CELL_EXCEPTIONS
    assert _cell_name(LLMAuthenticationError("no key", model="m", transient=False)) == "LLMError"


def test_a_callbacks_error_reaches_the_cell_by_its_declared_base() -> None:
    def boom() -> None:
        raise Sub("it failed")

    with LocalSandbox(host=Host({"boom": boom}, ("Base",))) as sandbox:
        result = sandbox.exec("try:\n    boom()\nexcept Base as exc:\n    print(type(exc).__name__, exc)")
    assert result.ok, result.error
    assert result.stdout.strip() == "Base it failed"


def test_a_callback_that_raises_systemexit_still_answers_the_cell() -> None:
    """A host function that calls sys.exit() (or is cancelled) raised past the reply, so the
    cell waited for an answer that never came, until its time limit."""
    def leave() -> None:
        raise SystemExit("a tool called sys.exit")

    with LocalSandbox(host=Host({"leave": leave})) as sandbox:
        result = sandbox.exec("leave()", timeout=30)
    assert not result.timed_out
    assert result.error is not None and result.error.type == "SystemExit"
    assert "a tool called sys.exit" in str(result.error)


def test_a_host_checks_what_it_is_given_and_keeps_a_copy() -> None:
    with pytest.raises(ValueError, match="callback name 'context' must be a Python identifier other than"):
        Host({"context": len})
    with pytest.raises(ValueError, match="callback name 'not a name'"):
        Host({"not a name": len})
    with pytest.raises(TypeError, match="callback 'f' is a int, not a function"):
        Host({"f": 3})  # type: ignore[dict-item]  # wrong on purpose
    with pytest.raises(TypeError, match="Host exceptions must be a tuple of class names"):
        Host({}, "LLMError")  # type: ignore[arg-type]  # wrong on purpose
    callbacks = {"f": len}
    host = Host(callbacks)
    callbacks["g"] = len
    assert list(host.callbacks) == ["f"] and Host().callbacks == {} and Host().exceptions == ()
    with pytest.raises(TypeError, match="host must be a Host"):
        LocalSandbox(host={"f": len})  # type: ignore[arg-type]  # wrong on purpose


def test_runs_and_sessions_hand_the_factory_their_spec_and_host() -> None:
    root = ScriptedModel(["```repl\nFINAL(len(context))\n```"] * 2)
    seen: list[tuple[SandboxSpec, Host]] = []

    def factory(spec: SandboxSpec, context: Any, host: Host) -> Sandbox:
        seen.append((spec, host))
        return spec.create(context, host)

    rlm = RLM(model=root.model, sandbox="local", memory="512m", tools={"lookup": len}, sandbox_factory=factory)
    assert rlm.run("q", "four").answer == "4"
    with rlm.session("abc") as session:
        assert session.ask("q").answer == "3"
    assert len(seen) == 2
    for spec, host in seen:
        assert spec == rlm.settings.sandbox_spec() and spec.provider == "local" and spec.limits.memory == "512m"
        assert host.exceptions == CELL_EXCEPTIONS
        assert {"llm_query", "lookup"} <= set(host.callbacks)


def test_a_pools_factory_is_the_seam_and_runs_take_from_it() -> None:
    root = ScriptedModel(["```repl\nFINAL(len(context))\n```"])
    spec = RLM(model=root.model, sandbox="local").settings.sandbox_spec()
    with SandboxPool(size=1, spec=spec) as pool:
        rlm = RLM(model=root.model, sandbox="local", sandbox_factory=pool.sandbox_factory)
        assert rlm.run("q", "four").answer == "4"
        assert (pool.cold_takes, pool.mismatched_takes) == (0, 0)
    assert list(inspect.signature(pool.sandbox_factory).parameters) == ["spec", "context", "host"]


def test_the_preview_default_is_one_constant_kept_by_the_kernel() -> None:
    assert Settings.model_fields["preview_chars"].default == PREVIEW_CHARS
    for function in (Sandbox.exec, KernelSandbox.exec, Repl.run_cell):
        assert inspect.signature(function).parameters["preview_chars"].default == PREVIEW_CHARS


def test_the_seam_stays_acyclic_a_spec_import_from_below_breaks_its_contract(tmp_path: Any) -> None:
    """The registry used to import the spec and the spec the registry; the layers contract
    (spec over base over host) fails if a lower module reaches up again."""
    from tests.test_layering import copy_of_the_package, lint_imports

    root = copy_of_the_package(tmp_path)
    host = root / "rlm_sandbox" / "sandbox" / "host.py"
    host.write_text(host.read_text() + "\nfrom .spec import SandboxSpec  # forbidden: host -> spec\n")
    done = lint_imports(root)
    assert done.returncode != 0 and "1 broken" in done.stdout, done.stdout
    assert "rlm_sandbox.sandbox.host -> rlm_sandbox.sandbox.spec" in done.stdout
