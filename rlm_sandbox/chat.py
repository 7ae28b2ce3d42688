"""Chat messages as an RLM's ``(query, context)``: the one mapping the HTTP server and the
litellm provider share.

An OpenAI-style conversation becomes a run this way: the last message, which must be the
user's, is the query; every message before it (system, user, assistant), and any file
attached anywhere, is the context, one text per message or file. One text is the context
as a string; several are a list of strings, in order. A top-level module (not under
``serve/`` or ``integrations/``) because both use it and neither may import the other.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

__all__ = ["ChatMappingError", "ChatRequest", "messages_to_run"]


class ChatMappingError(ValueError):
    """The messages cannot be read as a query and a context. ``param`` names the field
    (``messages[2].content[0]``) as OpenAI's error shape does."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ChatRequest:
    """What a conversation asks of an RLM."""

    query: str
    context: str | list[str] | None


def messages_to_run(messages: Any) -> ChatRequest:
    """The query (the last user message's text) and the context (everything else, in order).

    Raises :class:`ChatMappingError` naming the message or part that cannot be read.
    """
    if not isinstance(messages, list) or not messages:
        raise ChatMappingError("'messages' must be a non-empty list of {role, content} objects", "messages")
    texts: list[str] = []
    for index, message in enumerate(messages[:-1]):
        message_texts, files = _read(message, f"messages[{index}]")
        joined = "\n".join(message_texts)
        if joined.strip():
            texts.append(joined)
        texts.extend(files)
    where = f"messages[{len(messages) - 1}]"
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        raise ChatMappingError("the last message must be the user's question (role 'user'); the messages "
                               "before it are the context", f"{where}.role")
    query_texts, files = _read(last, where)
    texts.extend(files)
    query = "\n".join(query_texts).strip()
    if not query:
        raise ChatMappingError("the last user message holds no text: it is the question the RLM answers",
                               f"{where}.content")
    context: str | list[str] | None = None if not texts else texts[0] if len(texts) == 1 else texts
    return ChatRequest(query=query, context=context)


def _read(message: Any, where: str) -> tuple[list[str], list[str]]:
    """A message's text parts and its files' texts."""
    if not isinstance(message, dict):
        raise ChatMappingError("each message must be an object with 'role' and 'content'", where)
    content = message.get("content")
    if content is None:
        return [], []
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise ChatMappingError("'content' must be a string or a list of content parts", f"{where}.content")
    texts: list[str] = []
    files: list[str] = []
    for number, part in enumerate(content):
        spot = f"{where}.content[{number}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "file":
            files.append(_file_text(part.get("file"), spot))
        else:
            raise ChatMappingError(f"content part of type {kind!r} is not supported: give 'text' parts or "
                                   "'file' parts with inline file_data (text files)", spot)
    return texts, files


def _file_text(file: Any, where: str) -> str:
    """The text of an OpenAI ``file`` part with inline ``file_data`` (a base64 data URL)."""
    if not isinstance(file, dict) or not isinstance(file.get("file_data"), str):
        raise ChatMappingError("a 'file' part needs file.file_data (base64, optionally as a data: URL); "
                               "uploaded file ids are not supported", f"{where}.file")
    data = file["file_data"]
    if data.startswith("data:"):
        header, _, data = data.partition(",")
        if not header.endswith(";base64"):
            raise ChatMappingError("file.file_data as a data: URL must be base64 (data:<type>;base64,...)",
                                   f"{where}.file.file_data")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ChatMappingError("file.file_data is not valid base64", f"{where}.file.file_data") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        name = file.get("filename") or "the file"
        raise ChatMappingError(f"{name} is not UTF-8 text: only text files can be a context",
                               f"{where}.file.file_data") from None
