"""Turning the kernel's replies into results.

Everything in a reply is untrusted: a cell can reach the kernel's objects and forge
replies. Every field is type-checked and every string is clipped here, on the host,
whatever limits the kernel claims to have applied.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProtocolError, ValueNotSerializable, ValueTooLarge, VariableNotFound
from ..kernel.capture import clip_middle
from .base import ExecError, ExecResult, FinalAnswer, OffloadedOutput, SandboxLimits

_ERRORS = {"VariableNotFound": VariableNotFound, "ValueTooLarge": ValueTooLarge,
           "ReplyTooLarge": ValueTooLarge, "ValueNotSerializable": ValueNotSerializable}


def raise_for_error(reply: dict[str, Any]) -> None:
    if reply.get("ok") is True:
        return
    error = found if isinstance(found := reply.get("error"), dict) else {}
    kind, message = str(error.get("type", "ProtocolError")), str(error.get("message", "malformed reply"))
    raise _ERRORS.get(kind, ProtocolError)(message if kind in _ERRORS else f"{kind}: {message}")


def _text(reply: dict[str, Any], key: str, limit: int) -> str:
    """A string field of a kernel reply, clipped here: the kernel's own caps are set by
    code a cell can reach, so the host enforces them again."""
    value = reply.get(key)
    return clip_middle(value, limit) if isinstance(value, str) else ""


def _clipped(reply: dict[str, Any], key: str, limit: int) -> bool:
    value = reply.get(key)
    return isinstance(value, str) and len(value) > limit


def exec_result(reply: dict[str, Any], stopped_by: str | None, limits: SandboxLimits) -> ExecResult:
    """``stopped_by`` names the limit the cell was interrupted for ("its 60 s timeout"), if any."""
    cap = limits.max_stream_chars
    if reply.get("ok") is not True:  # our bug, or a cell forging replies: a result either way
        raw = found if isinstance(found := reply.get("error"), dict) else {}
        return ExecResult(error=ExecError(type="ProtocolError", message=_text(raw, "message", 2000)
                                          or "the kernel refused the request"))
    error = None
    raw_error = reply.get("error")
    if isinstance(raw_error, dict):
        lineno = raw_error.get("lineno")
        error = ExecError(type=_text(raw_error, "type", 200) or "Error", message=_text(raw_error, "message", cap),
                          traceback=_text(raw_error, "traceback", cap),
                          lineno=lineno if isinstance(lineno, int) else None)
    if stopped_by and (error is None or error.type == "KeyboardInterrupt"):
        error = ExecError(type="CellTimeout",
                          message=f"the cell ran past {stopped_by} and was interrupted; "
                                  "variables are kept", traceback=error.traceback if error else "",
                          lineno=error.lineno if error else None)
    final = None
    raw_final = reply.get("final")
    if isinstance(raw_final, dict) and isinstance(raw_final.get("answer"), str):
        name = raw_final.get("name")
        answer = raw_final["answer"]
        final = FinalAnswer(answer=answer[:limits.max_value_bytes], source=_text(raw_final, "source", 20) or "FINAL",
                            name=name[:200] if isinstance(name, str) else None,
                            truncated=bool(raw_final.get("truncated")) or len(answer) > limits.max_value_bytes,
                            submitted=raw_final.get("submitted"))  # JSON data, its size bounded by the line cap
    offloaded = None
    raw_offloaded = reply.get("offloaded")
    if isinstance(raw_offloaded, dict) and isinstance(raw_offloaded.get("name"), str):
        chars = raw_offloaded.get("chars")
        offloaded = OffloadedOutput(name=raw_offloaded["name"][:100], chars=chars if isinstance(chars, int) else 0)
    duration = reply.get("duration_s")
    stdout_chars = reply.get("stdout_chars")
    stdout, stderr = _text(reply, "stdout", cap), _text(reply, "stderr", cap)
    return ExecResult(
        stdout=stdout, stderr=stderr, error=error,
        duration_s=float(duration) if isinstance(duration, (int, float)) else 0.0,
        stdout_truncated=bool(reply.get("stdout_truncated")) or _clipped(reply, "stdout", cap),
        stderr_truncated=bool(reply.get("stderr_truncated")) or _clipped(reply, "stderr", cap),
        timed_out=stopped_by is not None, final=final, offloaded=offloaded,
        stdout_chars=stdout_chars if isinstance(stdout_chars, int) else 0)


def lost_result(kind: str, message: str, duration: float, *, timed_out: bool = False) -> ExecResult:
    return ExecResult(error=ExecError(type=kind, message=message), duration_s=duration,
                      timed_out=timed_out, restarted=True)
