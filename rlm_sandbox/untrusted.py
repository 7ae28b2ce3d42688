"""Text a model wrote (or a document it quoted), made safe to show.

Model-written text is untrusted wherever it is shown, not only where it runs: an ESC or OSC
sequence in a reply retitles or clears a terminal, a NUL or vertical tab makes a JUnit file
ill-formed XML, a right-to-left override reorders what a reader sees. Every terminal view,
report and viewer passes such text through :func:`visible` before its own escaping (rich
markup, HTML, XML, Markdown), so the characters are shown as ``\\x1b``-style escapes instead
of being interpreted. A leaf module (standard library only) so every layer may use it.
"""

from __future__ import annotations

import re

__all__ = ["visible"]

# C0 controls, DEL and C1 controls; lone surrogates and the two non-characters XML 1.0
# forbids; the bidirectional overrides and isolates that reorder displayed text.
_UNSAFE = "\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069"
_PATTERNS: dict[str, re.Pattern[str]] = {}


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep: str = "\n\t") -> str:
    """``text`` with every control, format-reordering or XML-forbidden character written as a
    visible escape (``\\x1b``, ``\\u202e``); the characters in ``keep`` (newline and tab by
    default) stay as they are. Printable text, non-ASCII letters included, is unchanged."""
    pattern = _PATTERNS.get(keep)
    if pattern is None:
        kept = "".join(re.escape(c) for c in keep)
        cls = f"[{_UNSAFE}]" if not kept else f"(?![{kept}])[{_UNSAFE}]"
        pattern = _PATTERNS[keep] = re.compile(cls)
    return pattern.sub(_escape, text)
