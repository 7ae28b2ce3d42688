"""Cassettes: recorded model traffic, one JSON object per line, keyed by the request.

A cassette is what :class:`~rlm_sandbox.models.replay.RecordingClient` writes and
:class:`~rlm_sandbox.models.replay.ReplayClient` serves. Its format (docs/EVAL.md,
"Cassettes") is versioned and human-readable:

- line 1, the header: ``{"format": "rlm-sandbox-cassette", "version": 1, "created": ...}``;
- then one line per model call: ``{"key", "n", "request", "response"}`` for an answered call
  or ``{"key", "n", "request", "error"}`` for a failed one.

``key`` is the SHA-256 of the normalised request (model, messages, max_tokens), so the order
in which calls happen (concurrency) does not matter; ``n`` numbers repeated identical
requests, which are served back in the order they were recorded. Every string is masked by
the redactor before it is hashed or written, so a cassette never holds a key. Long message
contents are stored shortened (head, a note with their length and hash, tail): the key is
computed on the whole text, so the shortening loses nothing a replay needs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..errors import RLMSandboxError

__all__ = ["FORMAT", "VERSION", "CassetteError", "Entry", "normalise", "read_cassette", "request_key",
           "shorten", "write_header"]

FORMAT = "rlm-sandbox-cassette"
VERSION = 1
#: Message contents longer than this are stored as head + note + tail (the key covers them whole).
KEEP_CHARS = 4000


class CassetteError(RLMSandboxError, ValueError):
    """A cassette file cannot be read (missing, not a cassette, or from a newer version)."""


def normalise(model: str, messages: list[dict[str, Any]], max_tokens: int | None,
              mask: Callable[[str], str], options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request as it is hashed: model, each message's role and content (masked), max_tokens,
    and the call's provider options when it has any (``top_p`` changes the answer).

    Other message keys (``name``, tool calls) are kept, sorted, so two requests that differ
    only there still get different keys. A call without options hashes as it did before
    options existed, so older cassettes still match.
    """
    kept = []
    for message in messages:
        item: dict[str, Any] = {}
        for name in sorted(message):
            value = message[name]
            if not isinstance(value, str):
                value = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
            item[name] = mask(value)
        kept.append(item)
    request: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": kept}
    if options:
        request["options"] = mask(json.dumps(options, sort_keys=True, ensure_ascii=False, default=str))
    return request


def request_key(request: dict[str, Any]) -> str:
    """SHA-256 of the normalised request, as hex."""
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shorten(text: str, keep: int = KEEP_CHARS) -> str:
    """``text`` as a cassette stores it: whole when short, else head + note + tail."""
    if len(text) <= keep:
        return text
    half = keep // 2
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return (f"{text[:half]}\n[... rlm-sandbox cassette: {len(text) - 2 * half:,} characters not stored; "
            f"the whole text is {len(text):,} characters, sha256 {digest}... ]\n{text[-half:]}")


def stored_request(request: dict[str, Any]) -> dict[str, Any]:
    """The request as written to the file (long contents shortened)."""
    return {**request, "messages": [{name: shorten(value) if name == "content" else value
                                     for name, value in message.items()}
                                    for message in request["messages"]]}


def write_header(path: Path) -> None:
    """Start a new cassette file at ``path`` (replacing any old one)."""
    header = {"format": FORMAT, "version": VERSION, "created": datetime.now(timezone.utc).isoformat(),
              "note": "recorded model traffic; see docs/EVAL.md 'Cassettes'"}
    path.write_text(json.dumps(header) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Entry:
    """One recorded call: its key, its number among identical requests, the stored request,
    and what came back (``response``) or how it failed (``error``)."""

    key: str
    n: int
    request: dict[str, Any]
    response: dict[str, Any] | None
    error: dict[str, Any] | None


def read_cassette(path: Path) -> list[Entry]:
    """Every entry of the cassette at ``path``, in file order. Raises CassetteError."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CassetteError(f"no cassette at {path}: record one first (--record / RLM(record=...))") from None
    except OSError as exc:
        raise CassetteError(f"cannot read cassette {path}: {exc.strerror or exc}") from None
    if not lines:
        raise CassetteError(f"{path} is empty: it is not a cassette (record one with --record)")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CassetteError(f"{path} is not an rlm-sandbox cassette (its first line is not a cassette header)")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CassetteError(f"{path} is a cassette of version {version}, newer than this rlm-sandbox reads "
                            f"({VERSION}); upgrade rlm-sandbox")
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            entries.append(Entry(key=str(raw["key"]), n=int(raw["n"]), request=dict(raw["request"]),
                                 response=raw.get("response"), error=raw.get("error")))
        except (ValueError, KeyError, TypeError):
            if number == len(lines):  # a recording cut short while writing its last line
                break
            raise CassetteError(f"{path} line {number} is not a cassette entry; re-record the cassette") from None
    return entries
