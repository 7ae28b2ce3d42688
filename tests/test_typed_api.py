"""The public surface as a user's type checker and editor see it: ``rlm_sandbox.RLM`` is the
class (not ``Any``), every option after ``model`` is a keyword with its type, and the typed
option lists cannot drift from ``Settings`` or from ``RLM()``'s own keywords."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

import rlm_sandbox
from rlm_sandbox import RLM, Settings
from rlm_sandbox.options import RLMOptions, SettingsAfterModel, SettingsOptions

#: Settings fields whose keyword accepts more than the field holds (pydantic converts it).
ACCEPTED = {"api_key": str | SecretStr | None}


def _accepted(name: str) -> Any:
    """The type a keyword for the setting ``name`` takes: the field's, or None for "not given"."""
    return ACCEPTED.get(name, Settings.model_fields[name].annotation | None)


def test_the_settings_options_list_every_setting_with_its_type():
    hints = typing.get_type_hints(SettingsOptions)
    assert set(hints) == set(Settings.model_fields)
    assert {name: hints[name] for name in hints} == {name: _accepted(name) for name in Settings.model_fields}
    assert SettingsOptions.__required_keys__ == frozenset()  # each one may be left out
    assert set(typing.get_type_hints(SettingsAfterModel)) == set(Settings.model_fields) - {"model"}


def test_run_options_are_the_settings_and_rlms_own_keywords():
    """``run(**options)`` passes them to ``RLM()``: the same names, the same types."""
    signature = inspect.signature(RLM.__init__)
    init_hints = typing.get_type_hints(RLM.__init__)
    own = {name for name, parameter in signature.parameters.items() if parameter.kind is parameter.KEYWORD_ONLY}
    hints = typing.get_type_hints(RLMOptions)
    assert set(hints) == (set(Settings.model_fields) - {"model"}) | own
    assert {name: hints[name] for name in own} == {name: init_hints[name] for name in own}


def test_every_parameter_after_model_is_a_keyword():
    for function in (RLM.__init__, rlm_sandbox.run, rlm_sandbox.arun):
        parameters = list(inspect.signature(function).parameters.values())
        after = parameters[[p.name for p in parameters].index("model") + 1:]
        assert after and all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in after), function
    with pytest.raises(TypeError, match="positional"):
        RLM("m", "sub-model")  # type: ignore[misc]  # what a checker refuses, refused at run time too


def test_the_type_checking_block_names_every_lazy_export():
    """The lazy ``__getattr__`` serves ``_EXPORTS``; a checker reads the ``TYPE_CHECKING`` block.
    They must name the same things, or a name is ``Any`` to one and missing to the other."""
    tree = ast.parse(Path(rlm_sandbox.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    typed = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            assert alias.asname == alias.name  # `import X as X`: a re-export to a checker
            typed[alias.name] = (node.module or "", node.level)
    assert set(typed) == set(rlm_sandbox._EXPORTS)
    for name, (module, _level) in typed.items():
        source = f"rlm_sandbox.{module}" if module else "rlm_sandbox"
        imported = getattr(__import__(source, fromlist=[name]), name)
        assert getattr(rlm_sandbox, name) is imported, name
    assert (Path(rlm_sandbox.__file__).parent / "py.typed").is_file()


SNIPPET = '''\
import rlm_sandbox
from rlm_sandbox import RLM, ModelClient, Status, register_provider, events

reveal_type(rlm_sandbox.RLM)
reveal_type(RLM("gpt-4o-mini", max_iterations=3, sandbox="local").run("q", "ctx"))
reveal_type(rlm_sandbox.run)
RLM("m", max_iteratons=3)
RLM("m", "sub-model")
rlm_sandbox.run("q", "ctx", "m", max_cost_usd="1.5")
status: Status = "finished"
reveal_type(events.read_events)
'''


def test_a_type_checker_sees_the_classes_and_refuses_a_wrong_keyword(tmp_path):
    """mypy on a user's script, from outside the repository: it reads the installed package
    (py.typed) and the names ``import rlm_sandbox`` gives."""
    (tmp_path / "script.py").write_text(SNIPPET)
    done = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-error-summary",
                           "--cache-dir", str(tmp_path / "cache"), "script.py"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=240)
    lines = done.stdout.splitlines()
    by_line: dict[int, list[str]] = {}
    for line in lines:
        match = re.match(r"script\.py:(\d+): (?:error|note): (.*)", line)
        assert match, f"unexpected mypy output: {line}\n{done.stdout}{done.stderr}"
        by_line.setdefault(int(match.group(1)), []).append(match.group(2))
    revealed = {number: " ".join(notes) for number, notes in by_line.items() if "Revealed type" in notes[0]}
    assert "-> rlm_sandbox.api.RLM" in revealed[4] and "max_iterations'?: int | None" in revealed[4]
    assert revealed[5] == 'Revealed type is "rlm_sandbox.core.result.RLMResult"'
    assert "model: str | None =, **options" in revealed[6]
    assert 'Unexpected keyword argument "max_iteratons" for "RLM"' in by_line[7][0]
    assert "Too many positional arguments" in by_line[8][0]
    assert 'Argument "max_cost_usd" to "run" has incompatible type "str"' in by_line[9][0]
    assert 'Incompatible types in assignment (expression has type "Literal[\'finished\']"' in by_line[10][0]
    assert "rlm_sandbox.events.jsonl.TraceFile" in revealed[11]
    assert set(by_line) == {4, 5, 6, 7, 8, 9, 10, 11}, done.stdout  # nothing else: every import resolved
