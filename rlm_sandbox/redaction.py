"""Masking secret values in text that leaves the process: errors, trajectories, output, logs.

A provider's error message may echo the key it was sent (a proxy echoing the
``Authorization`` header, a misconfigured gateway), and from there it would reach the
terminal, a trace file, a CI log or the model itself. So every place where text leaves
the process passes it through :func:`redact` (or a :class:`Redactor` built once).

Which values are secret: the value of every variable whose name ends in ``_KEY``,
``_TOKEN``, ``_SECRET``, ``_PASSWORD`` or ``_CREDENTIALS`` (``OPENAI_API_KEY``,
``HF_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``RLM_SANDBOX_API_KEY``, ...), in the environment
or in ``./.env``, and every value registered with :func:`remember_secret` (``Settings``
registers ``api_key``). Values shorter than ``MIN_SECRET_CHARS`` are left alone: no real
key is that short, and masking ``"true"`` or ``"1"`` everywhere would garble answers.

:func:`redact` runs per log record and per line shown, so it does not rebuild its Redactor
(read ``.env``, compile a regex) each time: it keeps one and rebuilds it when what it was
built from changes — a secret-named variable of the environment, the ``.env`` file (by its
``stat``), or a newly remembered secret (:func:`current_redactor`).

Standard library and python-dotenv only, so that core, models, events and the CLI can
all use it without breaking the layering.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Hashable
from functools import lru_cache
from pathlib import Path
from typing import Mapping

__all__ = ["MIN_SECRET_CHARS", "Redactor", "current_redactor", "dotenv_entries", "is_secret_name", "redact",
           "remember_secret"]

#: Names whose values are secrets (matched case-insensitively).
SECRET_NAME = re.compile(r"(?:^|_)(?:KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS|ACCESS_KEY_ID)$", re.IGNORECASE)
#: Shorter values are never masked.
MIN_SECRET_CHARS = 8

_remembered: dict[str, str] = {}
_remembered_lock = threading.Lock()


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True for a variable or setting name that holds a secret (OPENAI_API_KEY, api_key)."""
    return bool(SECRET_NAME.search(name))


def remember_secret(value: str | None, name: str) -> None:
    """Mask ``value`` (labelled ``name``) in everything redacted from now on in this process."""
    if value and len(value) >= MIN_SECRET_CHARS:
        with _remembered_lock:
            _remembered.setdefault(value, name)


def dotenv_entries(path: str | Path = ".env") -> dict[str, str]:
    """The ``NAME=value`` entries of a ``.env`` file (none when it is missing or unreadable)."""
    file = Path(path)
    if not file.is_file():
        return {}
    from dotenv import dotenv_values  # a dependency of pydantic-settings

    try:
        return {name: value for name, value in dotenv_values(file).items() if value is not None}
    except (OSError, UnicodeDecodeError):
        return {}


class Redactor:
    """Replaces each known secret value in a text with ``[secret NAME]``.

    Built once from a ``{value: name}`` map; calling it costs one regex pass. The
    JSON-escaped form of each value is masked too, so a trajectory line is covered
    whether it was redacted before or after ``json.dumps``.
    """

    def __init__(self, secrets: Mapping[str, str]) -> None:
        labels: dict[str, str] = {}
        for value, name in secrets.items():
            if value and len(value) >= MIN_SECRET_CHARS:
                labels.setdefault(value, name)
                labels.setdefault(json.dumps(value)[1:-1], name)
        self._labels = labels
        ordered = sorted(labels, key=len, reverse=True)  # a secret containing another is masked whole
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def from_environment(cls, env_file: str | Path = ".env") -> "Redactor":
        """Secrets of the environment, of ``env_file`` and those remembered so far."""
        secrets: dict[str, str] = {}
        with _remembered_lock:
            secrets.update(_remembered)
        for source in (os.environ, dotenv_entries(env_file)):
            for name, value in source.items():
                if is_secret_name(name):
                    secrets.setdefault(value, name)
        return cls(secrets)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda match: f"[secret {self._labels[match.group(0)]}]", text)


_current_lock = threading.Lock()
_current: tuple[Hashable, Redactor] | None = None


def _sources(env_file: str | Path) -> Hashable:
    """What a Redactor of the environment is built from, cheap to compare: the secret-named
    variables, the ``.env`` file's identity and change time, and the remembered secrets."""
    try:
        stat = os.stat(env_file)
        dotenv: tuple[int, ...] | None = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    except OSError:
        dotenv = None
    with _remembered_lock:
        remembered = len(_remembered)  # entries are only ever added
    variables = tuple((name, os.environ[name]) for name in os.environ if is_secret_name(name))  # values decoded: few
    return variables, os.path.abspath(env_file), dotenv, remembered


def current_redactor(env_file: str | Path = ".env") -> Redactor:
    """The :class:`Redactor` of the environment, ``env_file`` and the remembered secrets, built
    again only when one of them changed since the last call."""
    global _current
    sources = _sources(env_file)
    with _current_lock:
        if _current is None or _current[0] != sources:
            _current = (sources, Redactor.from_environment(env_file))
        return _current[1]


def redact(text: str) -> str:
    """``text`` with every known secret masked (by :func:`current_redactor`, rebuilt on a change)."""
    return current_redactor()(text)
