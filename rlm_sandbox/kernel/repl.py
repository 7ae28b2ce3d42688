"""The persistent namespace and the running of one cell in it.

A cell behaves like a REPL entry: statements run in order and, when the last statement
is an expression, its value is printed (``context[:100]`` shows something). Whatever
happens inside (exceptions, ``sys.exit()``, ``KeyboardInterrupt``) becomes part of the
result; nothing a cell raises ends the kernel.
"""

from __future__ import annotations

import ast
import builtins
import itertools
import json
import linecache
import os
import sys
import time
import traceback
from typing import Any, Callable

from .capture import FdCapture, OutputBuffer, StreamRouter, clip_middle
from .dialects import ANSWER_NAME, SUBMIT_ALIAS, Submitted, as_json, new_answer_slot, ready_answer, submitted_value
from .memory import Memory, reads_offloaded
from .protocol import PREVIEW_CHARS

CONTEXT_NAME = "context"
_KERNEL_DIR = os.path.dirname(os.path.abspath(__file__))


def decode_context(kind: str, blob: bytes | bytearray | memoryview) -> Any:
    if kind == "str":
        return str(blob, "utf-8", "surrogatepass")
    if kind == "bytes":
        return bytes(blob)
    if kind == "json":
        return json.loads(str(blob, "utf-8", "surrogatepass"))
    raise ValueError(f"unknown context kind {kind!r}")


def render_value(value: Any) -> str:
    """The text form of an answer: strings as they are, data as JSON, the rest by repr."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


class Repl:
    def __init__(self, routers: dict[int, StreamRouter], fd_capture: FdCapture) -> None:
        self._routers = routers
        self._fd_capture = fd_capture
        self._cell_numbers = itertools.count(1)
        self.context: Any = None
        self.namespace: dict[str, Any] = {}
        self.memory = Memory(self.namespace, self._protected_names)
        self.helpers: dict[str, Any] = {"FINAL": self._final, "FINAL_VAR": self._final_var,
                                        "SUBMIT": self._submit, SUBMIT_ALIAS: self._submit,
                                        "memory_status": self.memory.status,
                                        "forget": self.memory.forget}
        self.answer_slot: dict[str, Any] = new_answer_slot()
        self.kept: dict[str, Any] = {}  # values assign() was asked to keep, by name
        self.final: dict[str, Any] | None = None
        self.max_output_chars = 100_000  # sent back per stream (head and tail)
        self.max_capture_chars = 10_000_000  # kept per stream, e.g. to offload whole
        self.max_final_chars = 1_000_000
        self.owner_pid = os.getpid()
        self.reset()

    # -- namespace ------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every variable; keep ``context`` and the helper functions."""
        self.namespace.clear()
        self.namespace.update({"__name__": "__main__", "__builtins__": builtins})
        self.namespace.update(self.helpers)
        self.namespace[CONTEXT_NAME] = self.context
        self.answer_slot = self.namespace[ANSWER_NAME] = new_answer_slot()
        self.kept.clear()

    def set_context(self, value: Any) -> None:
        self.context = value
        self.namespace[CONTEXT_NAME] = value

    def _protected_names(self) -> set[str]:
        """Names memory_status() does not list and forget() keeps: context, the helpers, and
        ``answer`` while it is still the kernel's own dict."""
        own_answer = self.namespace.get(ANSWER_NAME) is self.answer_slot
        return {CONTEXT_NAME, *self.helpers, *([ANSWER_NAME] if own_answer else [])}

    def add_helpers(self, helpers: dict[str, Any]) -> None:
        self.helpers.update(helpers)
        self.namespace.update(helpers)

    def lookup(self, name: str) -> Any:
        if name not in self.namespace or name.startswith("__"):
            raise NameError(f"name {name!r} is not defined")
        return self.namespace[name]

    # -- cells ----------------------------------------------------------------------

    def run_cell(self, code: str, run: Callable[[Callable[[], None]], None], *,
                 offload_threshold: int | None = None, preview_chars: int = PREVIEW_CHARS) -> dict[str, Any]:
        """Run ``code`` and describe what happened. ``run`` marks the interruptible span.

        With ``offload_threshold``, stdout longer than that is stored as ``_result_N``
        and only its first ``preview_chars`` are sent back.
        """
        stdout, stderr = OutputBuffer(self.max_capture_chars), OutputBuffer(self.max_capture_chars)
        self._attach(stdout, stderr)
        self.final = None
        error = None
        started = time.perf_counter()
        try:
            compiled = self._compile(code)
            run(lambda: self._execute(compiled))
        except Submitted:
            pass  # SUBMIT(...) ended the cell; self.final holds what it submitted
        except BaseException as exc:  # noqa: BLE001 - every failure is the cell's result
            error = describe_error(exc)
        finally:
            if os.getpid() != self.owner_pid:
                os._exit(0)  # a forked child finished the cell: it must never reply
            self._fd_capture.drain()
            self._attach(None, None)
        if error is None and self.final is None:
            ready, content = ready_answer(self.namespace)
            if ready:
                self.final = self._final_payload(render_value(content), source="answer")
        out_text, offloaded = stdout.getvalue(), None
        if offload_threshold is not None and len(out_text) > offload_threshold and not reads_offloaded(code):
            offloaded = {"name": self.memory.offload(out_text), "chars": len(out_text)}
            shown = out_text[:preview_chars]
        else:
            shown = clip_middle(out_text, self.max_output_chars)
        err_text = stderr.getvalue()
        return {
            "stdout": shown,
            "stderr": clip_middle(err_text, self.max_output_chars),
            "stdout_truncated": stdout.truncated or len(shown) < len(out_text),
            "stderr_truncated": stderr.truncated or len(err_text) > self.max_output_chars,
            "stdout_chars": stdout.total,
            "stderr_chars": stderr.total,
            "offloaded": offloaded,
            "error": error,
            "final": self.final,
            "duration_s": time.perf_counter() - started,
        }

    def _attach(self, stdout: OutputBuffer | None, stderr: OutputBuffer | None) -> None:
        out, err = self._routers[1], self._routers[2]
        out.target, err.target = stdout, stderr
        # Re-installed each cell: a cell may have replaced any of them.
        # the originals too (typeshed calls them Final): a cell restoring sys.__stdout__ must reach the router
        sys.stdout = sys.__stdout__ = out  # type: ignore[misc,assignment]  # see above
        sys.stderr = sys.__stderr__ = err  # type: ignore[misc,assignment]  # see above

    def _compile(self, code: str) -> list[tuple[Any, bool]]:
        """Compile a cell into (code object, is_displayed_expression) pieces."""
        filename = f"<cell-{next(self._cell_numbers)}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.Expr):
            body = ast.Module(body=tree.body[:-1], type_ignores=[])
            return [(compile(body, filename, "exec"), False),
                    (compile(ast.Expression(last.value), filename, "eval"), True)]
        return [(compile(tree, filename, "exec"), False)]

    def _execute(self, compiled: list[tuple[Any, bool]]) -> None:
        for code_object, displayed in compiled:
            value = eval(code_object, self.namespace)  # noqa: S307 - this is the sandbox
            if displayed and value is not None:
                print(repr(value))

    # -- FINAL ----------------------------------------------------------------------

    def _final(self, answer: Any) -> None:
        """FINAL(answer): end the task with this answer."""
        if answer is self.answer_slot:  # FINAL(answer) in the original RLM's protocol: its content
            answer = answer.get("content", "")
        self.final = self._final_payload(render_value(answer), source="FINAL")

    def _submit(self, *args: Any, **kwargs: Any) -> None:
        """SUBMIT(answer) or SUBMIT(field=value, ...): end the task with this answer, at once."""
        value = as_json(submitted_value(args, kwargs))
        payload = self._final_payload(render_value(value), source="SUBMIT")
        if not payload["truncated"]:  # the structured value too, for hosts that want fields (DSPy)
            payload["submitted"] = value
        self.final = payload
        raise Submitted()

    def _final_var(self, name: Any) -> None:
        """FINAL_VAR(name): end the task with the value of variable `name`."""
        if not isinstance(name, str):
            raise TypeError("FINAL_VAR takes the variable's name as a string, e.g. FINAL_VAR('answer')")
        name = name.strip().strip("'\"")
        try:
            value = self.lookup(name)
            if value is self.answer_slot:  # the original RLM's answer dict means its content
                value = value.get("content", "")
                if isinstance(value, str) and not value:  # nothing in it yet: as if it did not exist
                    raise NameError(name)
        except NameError:
            hint = "" if name.isidentifier() else " (that looks like a value, not a name)"
            raise NameError(f"FINAL_VAR takes the NAME of a variable, e.g. FINAL_VAR('answer'); there is no "
                            f"variable {name[:80]!r}{hint}. To finish with a value, use FINAL(value).") from None
        self.final = self._final_payload(render_value(value), source="FINAL_VAR", name=name)

    def _final_payload(self, text: str, **fields: Any) -> dict[str, Any]:
        truncated = len(text) > self.max_final_chars
        return {"answer": text[: self.max_final_chars], "truncated": truncated,
                "chars": len(text), **fields}


def describe_error(exc: BaseException) -> dict[str, Any]:
    """Type, message, the cell-only traceback and the line the error happened on."""
    lineno = None
    if isinstance(exc, SyntaxError):
        lineno = exc.lineno
        formatted = traceback.format_exception_only(type(exc), exc)
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if os.path.dirname(f.filename) != _KERNEL_DIR]
        in_cell = [i for i, f in enumerate(frames) if f.filename.startswith("<cell-")]
        if in_cell:
            lineno = frames[in_cell[-1]].lineno
            frames = frames[in_cell[0]:]  # from the cell on: library frames stay, the kernel's do not
        formatted = ["Traceback (most recent call last):\n", *traceback.format_list(frames),
                     *traceback.format_exception_only(type(exc), exc)]
    return {"type": type(exc).__name__, "message": str(exc), "lineno": lineno,
            "traceback": "".join(formatted)}
