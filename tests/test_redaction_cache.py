"""redact() keeps one Redactor and rebuilds it only when the secrets it was built from change
(issue 18, item 6): it runs per log record, and each build reads .env and compiles a regex."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox import redaction
from rlm_sandbox.redaction import Redactor, redact, remember_secret


def test_redact_builds_once_per_change_and_still_masks_a_secret_set_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # its own (empty) .env
    builds: list[str] = []
    real = Redactor.from_environment.__func__  # type: ignore[attr-defined]  # the classmethod's function, to spy on it

    def counted(cls: type[Redactor], env_file: Any = ".env") -> Redactor:  # a spy: the real build runs
        builds.append(str(env_file))
        return real(cls, env_file)

    monkeypatch.setattr(Redactor, "from_environment", classmethod(counted))
    monkeypatch.setenv("ROOMS_FIRST_API_KEY", "first-secret-0123456789")
    assert redact("key first-secret-0123456789") == "key [secret ROOMS_FIRST_API_KEY]"
    for _ in range(200):  # as many log records: no rebuild
        assert redact("log line with first-secret-0123456789") == "log line with [secret ROOMS_FIRST_API_KEY]"
    assert len(builds) == 1

    monkeypatch.setenv("ROOMS_LATER_TOKEN", "later-secret-0123456789")  # set after the first call
    assert redact("later-secret-0123456789") == "[secret ROOMS_LATER_TOKEN]"
    assert redact("first-secret-0123456789") == "[secret ROOMS_FIRST_API_KEY]"
    assert len(builds) == 2

    (tmp_path / ".env").write_text("ROOMS_DOTENV_SECRET=dotenv-secret-0123456789\n")
    assert redact("dotenv-secret-0123456789") == "[secret ROOMS_DOTENV_SECRET]"
    assert len(builds) == 3

    remember_secret("remembered-secret-0123456789", "api_key")
    assert redact("remembered-secret-0123456789") == "[secret api_key]"
    assert len(builds) == 4

    monkeypatch.delenv("ROOMS_LATER_TOKEN")  # a secret gone is no longer masked
    assert redact("later-secret-0123456789") == "later-secret-0123456789"
    assert redact("x") == "x" and len(builds) == 5
    assert redaction.current_redactor() is redaction.current_redactor()
