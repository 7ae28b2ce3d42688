"""DSPy's ``CodeInterpreter`` on our hardened container.

    import dspy
    from rlm_sandbox.integrations.dspy import SandboxInterpreter

    rlm = dspy.RLM("context, question -> answer", interpreter_factory=SandboxInterpreter)

DSPy's default interpreter runs Pyodide under Deno on the host; this one runs each session in
one locked-down container (no network, read-only root, memory, process and CPU limits, a
non-root user, optionally gVisor), reached over our kernel protocol. What DSPy's protocol
asks (``dspy/primitives/code_interpreter.py``) and how it is met:

- ``tools`` is a plain dict DSPy may change at any time. Tools run on the host: the sandbox
  holds one stub per tool that calls back through the kernel's socket, so keys, clients and
  the tools' state never enter the container. A tool is looked up when it is called, so
  replacing one needs nothing; adding or removing one re-declares the stubs before the next
  cell (one extra round trip).
- ``execute(code, variables)`` injects ``variables`` without turning them into code: strings
  and bytes travel raw in one blob, the rest as JSON, and a big string sent again unchanged
  (DSPy re-sends its inputs before every cell) is not sent again. It returns
  ``FinalOutput(fields)`` when the cell called ``SUBMIT``, else the cell's stdout, or None.
- Errors: ``SyntaxError`` for code that does not parse; ``CodeExecutionError`` for an
  exception in the cell or in a tool (type, message, the cell's line and traceback) and for
  a cell stopped at its time limit with the kernel alive; ``CodeInterpreterError`` when the
  container or the protocol fails. After that the interpreter is finished and says so: it
  never carries on in a fresh session whose variables silently vanished.
- DSPy's sandbox ``dspy`` facade installs and works: the stubs are globals, and state
  persists across ``execute()`` calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import keyword
import threading
from collections.abc import Callable, Mapping
from typing import Any

try:
    from dspy.primitives.code_interpreter import CodeExecutionError, CodeInterpreterError, FinalOutput
    from dspy.utils.callback import BaseCallback, with_callbacks
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("rlm_sandbox.integrations.dspy needs DSPy 3.4: pip install 'rlm-sandbox[dspy]'") from exc
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..errors import RLMSandboxError
from ..kernel.dialects import SUBMIT_ALIAS
from ..redaction import redact
from ..sandbox import ExecResult, Host, SandboxLimits, SandboxPool, SandboxSpec
from ..sandbox.base import ExecError, Sandbox

#: The one host function the sandbox's tool stubs call: ``__rlm_tool__(name, *args, **kwargs)``.
TOOL_CALLBACK = "__rlm_tool__"
#: Our own loop's ways to finish, removed from a DSPy session: there only SUBMIT ends a task,
#: as in DSPy's interpreters, and a model that writes FINAL is told it is not defined.
LOOP_ONLY_NAMES = ("FINAL", "FINAL_VAR", "answer")
_RESERVED = frozenset({"SUBMIT", "__builtins__", TOOL_CALLBACK, SUBMIT_ALIAS})
_SIMPLE_TYPES = {"str": "str", "int": "int", "float": "float", "bool": "bool", "list": "list", "dict": "dict",
                 "NoneType": "type(None)"}


class SandboxInterpreter:
    """A DSPy ``CodeInterpreter`` whose code runs in one hardened rlm-sandbox container.

    ``runtime="runsc"`` runs it under gVisor; ``limits`` (a :class:`SandboxLimits`, or a dict of
    its fields such as ``{"memory": "512m", "cell_timeout_s": 30}``) bounds it; ``image`` picks
    another image with our kernel. ``spec`` (a :class:`SandboxSpec`) gives all of these at
    once, and ``pool`` (a :class:`SandboxPool`) hands out an already started container instead
    of starting one. ``labels`` are added to the container's labels.
    """

    execution_instructions = (
        "Python runs in a locked-down container: no network, a read-only filesystem except /tmp, and limits "
        "on memory, processes and the time one execution may take. State persists across executions. Tools, "
        "llm_query and SUBMIT are global functions that run on the host; only JSON-compatible values cross.")

    def __init__(self, tools: Mapping[str, Callable[..., Any]] | None = None,
                 output_fields: list[dict[str, Any]] | None = None, *, runtime: str | None = None,
                 limits: SandboxLimits | Mapping[str, Any] | None = None, image: str | None = None,
                 spec: SandboxSpec | None = None, pool: SandboxPool | None = None,
                 labels: Mapping[str, str] | None = None, callbacks: list[BaseCallback] | None = None) -> None:
        chosen = [name for name, value in (("runtime", runtime), ("limits", limits), ("image", image),
                                           ("labels", labels)) if value is not None]
        if (spec is not None or pool is not None) and chosen:
            raise TypeError(f"give {', '.join(chosen)} through spec= or the pool's own settings, not beside "
                            f"{'spec=' if spec is not None else 'pool='}")
        if spec is not None and pool is not None:
            raise TypeError("give spec= or pool=, not both: a pool's sandboxes are made from its own spec")
        if isinstance(limits, Mapping):
            limits = SandboxLimits(**limits)
        self.tools: dict[str, Callable[..., Any]] = dict(tools or {})
        self.output_fields = output_fields
        self.callbacks = list(callbacks or [])
        self._pool = pool
        self._spec = spec or SandboxSpec(runtime=runtime, image=image, limits=limits or SandboxLimits(),
                                         labels={"org.rlm-sandbox.integration": "dspy", **(labels or {})})
        self._sandbox: Any = None
        self._ended: str | None = None  # why the session is over, once it is
        self._declared: tuple[Any, ...] | None = None  # (tool names, output fields) the sandbox holds
        self._context: contextvars.Context | None = None  # the caller's, for tools (dspy.context)
        self._lock = threading.Lock()

    @classmethod
    def factory(cls, **options: Any) -> "SandboxInterpreterFactory":
        """A zero-argument factory for ``interpreter_factory=`` that makes interpreters with
        ``options`` (runtime, limits, pool, ...) and keeps ``execution_instructions``."""
        return SandboxInterpreterFactory(cls, options)

    # -- what a caller may read ---------------------------------------------------------

    @property
    def sandbox(self) -> Sandbox | None:
        """The sandbox this session runs in; None before start() and after shutdown()."""
        return self._sandbox

    @property
    def container_id(self) -> str | None:
        """The Docker container's id, while one runs."""
        return getattr(self._sandbox, "container_id", None)

    # -- lifecycle --------------------------------------------------------------------

    @with_callbacks
    def start(self) -> None:
        """Start the container (idempotent): call it ahead of time to have it warm."""
        if self._sandbox is not None and self._ended is None:
            return  # started: without waiting for a running execute() (a tool may call this)
        with self._lock:
            self._ensure_started()

    @with_callbacks
    def shutdown(self) -> None:
        """Remove the container and everything it made; the interpreter cannot be used after."""
        if self._ended is None:
            self._ended = "it was shut down"
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            sandbox.close()

    def __enter__(self) -> "SandboxInterpreter":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __call__(self, code: str, variables: dict[str, Any] | None = None) -> Any:
        return self.execute(code, variables)

    def _ensure_started(self) -> Any:
        self._check_usable()
        if self._sandbox is None:
            host = Host({TOOL_CALLBACK: self._call_tool})
            try:
                if self._pool is not None:
                    self._sandbox = self._pool.take(None, host)
                else:
                    self._sandbox = self._spec.create(None, host).start()
            except RLMSandboxError as exc:
                raise CodeInterpreterError(f"could not start the sandbox: {exc}") from exc
            if not callable(getattr(self._sandbox, "assign", None)):
                sandbox, self._sandbox = self._sandbox, None
                sandbox.close()
                raise CodeInterpreterError(f"{type(sandbox).__name__} cannot bind variables (it has no assign()); "
                                           "use the docker or local provider, whose sandboxes run our kernel")
        return self._sandbox

    def _check_usable(self) -> None:
        if self._ended is not None:
            raise CodeInterpreterError(f"this SandboxInterpreter is finished ({self._ended}); "
                                       "create a new one for a fresh session")

    def _finish(self, why: str) -> CodeInterpreterError:
        """End the session for good (its state is lost) and return the error to raise."""
        self._ended = why
        self.shutdown()
        return CodeInterpreterError(f"the sandbox failed: {why}. Its state is lost and this interpreter is "
                                    "finished; create a new one for a fresh session")

    # -- running code ------------------------------------------------------------------

    @with_callbacks
    def execute(self, code: str, variables: dict[str, Any] | None = None) -> Any:
        """Run ``code`` with ``variables`` bound first; see the module's docstring."""
        if not self._lock.acquire(blocking=False):
            raise CodeInterpreterError("this SandboxInterpreter is already running code; one execute() at a time")
        try:
            self._check_usable()
            if not isinstance(code, str):
                raise CodeInterpreterError(f"code must be a str, not {type(code).__name__}")
            values = self._variables(variables)
            sandbox = self._ensure_started()
            self._context = contextvars.copy_context()
            restarts = sandbox.restarts
            try:
                self._declare(sandbox)
                if values:
                    sandbox.assign(values)
                result = sandbox.exec(code)
            except RLMSandboxError as exc:
                raise self._finish(str(exc)) from exc
            if result.restarted or sandbox.restarts != restarts:
                raise self._finish(_lost_reason(result.error))
            return self._outcome(result)
        finally:
            self._lock.release()

    def _outcome(self, result: ExecResult) -> Any:
        error = result.error
        if error is None:
            final = result.final
            if final is not None and final.source == "SUBMIT":
                if final.truncated:
                    raise CodeExecutionError("SUBMIT was given more than the sandbox lets out at once "
                                             f"({len(final.answer):,}+ characters as JSON); submit less")
                return FinalOutput(final.submitted)
            return result.stdout or None
        if error.type == "SyntaxError":
            where = f" (line {error.lineno})" if error.lineno else ""
            raise SyntaxError(f"Invalid Python syntax{where}: {error.message}")
        if error.type == "ProtocolError":
            raise self._finish(f"the kernel broke the protocol ({error.message})")
        line = f" (line {error.lineno})" if error.lineno else ""
        trace = f"\n{error.traceback.rstrip()}" if error.traceback else ""
        raise CodeExecutionError(f"{error.type}: {error.message}{line}{trace}")

    def _variables(self, variables: dict[str, Any] | None) -> dict[str, Any]:
        """``variables`` checked and made JSON-ready (str and bytes stay as they are)."""
        if variables is None:
            return {}
        if not isinstance(variables, dict):
            raise CodeInterpreterError(f"variables must be a dict of name -> value, not {type(variables).__name__}")
        bad = [name for name in variables if not _usable_name(name) or name in self.tools]
        if bad:
            raise CodeInterpreterError(f"variable names must be Python identifiers that are not keywords, tools or "
                                       f"{sorted(_RESERVED)}: {bad!r}")
        values = {}
        for name, value in variables.items():
            if isinstance(value, (str, bytes)):
                values[name] = value
                continue
            try:
                values[name] = to_jsonable_python(value)
            except PydanticSerializationError:
                raise CodeInterpreterError(f"variable {name} is a {type(value).__name__}, which cannot cross into "
                                           "the sandbox; pass str, bytes, numbers, lists, dicts or pydantic "
                                           "models") from None
        return values

    # -- tools and SUBMIT --------------------------------------------------------------

    def _declare(self, sandbox: Any) -> None:
        """Define the tool stubs and the typed SUBMIT in the sandbox when they changed."""
        fields = _checked_fields(self.output_fields)
        bad = [name for name in self.tools if not _usable_name(name) or not callable(self.tools[name])]
        if bad:
            raise CodeInterpreterError(f"tools must map Python identifiers (not keywords or {sorted(_RESERVED)}) "
                                       f"to callables: {bad!r}")
        wanted = (tuple(self.tools), json.dumps(fields))
        if wanted == self._declared:
            return
        before = set(self._declared[0]) if self._declared else set(LOOP_ONLY_NAMES)
        result = sandbox.exec(_declarations(self.tools, fields, sorted(before - set(self.tools))))
        if result.restarted:
            raise self._finish(_lost_reason(result.error))
        if result.error is not None:
            raise CodeInterpreterError(f"could not define the tools and SUBMIT in the sandbox: {result.error}")
        self._declared = wanted

    def _call_tool(self, tool_name: str, /, *args: Any, **kwargs: Any) -> Any:
        """What the sandbox's stubs call (on a callback thread): the tool, in the caller's context.

        A tool's error reaches the cell by its class name and message; a secret in the message
        (a provider echoing its key) is masked first, since the model reads it."""
        context = self._context or contextvars.copy_context()
        try:
            return context.copy().run(self.invoke_tool, tool_name, list(args), kwargs)
        except Exception as exc:
            masked = redact(str(exc))
            if masked == str(exc):
                raise
            raise type(type(exc).__name__, (Exception,), {})(masked) from None

    @with_callbacks
    def invoke_tool(self, tool_name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Call one of ``tools`` on the host, as a stub in the sandbox asked."""
        tool = self.tools.get(tool_name)
        if tool is None:
            raise CodeInterpreterError(f"there is no tool {tool_name!r} any more; available: {sorted(self.tools)}")
        call_args, call_kwargs = _by_name(tool, args, kwargs)
        value = tool(*call_args, **call_kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(_awaited(value))  # callback threads run no event loop
        return to_jsonable_python(value, fallback=str)


class SandboxInterpreterFactory:
    """``SandboxInterpreter.factory(...)``: makes interpreters with fixed options; DSPy reads
    its ``execution_instructions`` like the class's."""

    def __init__(self, cls: type[SandboxInterpreter], options: dict[str, Any]) -> None:
        self._cls, self._options = cls, options
        self.execution_instructions = cls.execution_instructions

    def __call__(self) -> SandboxInterpreter:
        return self._cls(**self._options)


# -- helpers ------------------------------------------------------------------------------

def _usable_name(name: Any) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) and name not in _RESERVED


def _checked_fields(output_fields: Any) -> list[dict[str, str]] | None:
    """DSPy's output fields ({"name", "type"?} dicts) as SUBMIT's parameters; a type that is not
    one of DSPy's simple ones is left off, as DSPy does."""
    if output_fields is None:
        return None
    names = [field.get("name") if isinstance(field, dict) else None for field in output_fields]
    if not all(_usable_name(name) for name in names) or len(set(names)) != len(names):
        raise CodeInterpreterError(f"output fields need unique names that are Python identifiers: {names!r}")
    return [{"name": field["name"], **({"type": field["type"]} if field.get("type") in _SIMPLE_TYPES else {})}
            for field in output_fields]


def _declarations(tools: Mapping[str, Callable[..., Any]], fields: list[dict[str, str]] | None,
                  removed: list[str]) -> str:
    """The cell that defines the stubs and SUBMIT. Every name in it was checked to be an
    identifier, and every other text is a repr, so it is code we wrote, not code we were given.

    It is compiled under its own file name, so an error raised through a stub is reported at
    the line of the cell that called it, with the stub as a frame of its own."""
    lines = [f"globals().pop({name!r}, None)" for name in removed]
    for name, tool in tools.items():
        doc = (inspect.getdoc(tool) or f"{name}(...): runs on the host.")[:2000]
        lines += [f"def {name}(*args, **kwargs):",
                  f"    return {TOOL_CALLBACK}({name!r}, *args, **kwargs)",
                  f"{name}.__doc__ = {doc!r}"]
    names = [field["name"] for field in fields] if fields else ["output"]
    params = [f"{field['name']}: {_SIMPLE_TYPES[field['type']]}" if "type" in field else field["name"]
              for field in fields] if fields else ["output"]
    lines += [f"def SUBMIT({', '.join(params)}):",
              '    """Finish with these output fields; nothing after it in the cell runs."""',
              f"    {SUBMIT_ALIAS}({{{', '.join(f'{name!r}: {name}' for name in names)}}})"]
    source = "\n".join(lines) + "\n"
    return f"exec(compile({source!r}, '<dspy-tools>', 'exec'), globals())\n"


def _by_name(tool: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Positional arguments as keywords where the signature allows: DSPy's tools take keywords
    (dspy.RLM wraps each as ``invoke(**kwargs)``), while sandbox code often calls ``search("x")``."""
    if not args:
        return args, kwargs
    try:
        parameters = list(inspect.signature(tool).parameters.values())
    except (TypeError, ValueError):
        return args, kwargs
    leading = []
    for parameter in parameters:
        if parameter.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            break
        leading.append(parameter.name)
    if len(args) > len(leading) or set(leading[:len(args)]) & kwargs.keys():
        return args, kwargs  # the call raises its own TypeError
    return [], {**dict(zip(leading, args, strict=False)), **kwargs}


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _lost_reason(error: ExecError | None) -> str:
    """Why the kernel was lost, without the sandbox's "it was restarted" (this session ends)."""
    if error is None:
        return "the kernel was replaced"
    return error.message.split(", so the sandbox was restarted")[0].split("; the sandbox was restarted")[0]
