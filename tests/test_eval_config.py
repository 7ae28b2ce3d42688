"""One suite configuration for the CLI and Python (no Docker): every flag of `eval run` is a
field of SuiteConfig, a bad value is one EvalError naming the flag and the field (the same text
from either side), and a type checker sees rlm_sandbox.eval's names as what they are."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import rlm_sandbox.eval as eval_package
from rlm_sandbox.cli.eval import eval_app
from rlm_sandbox.eval import EvalError, SuiteConfig, run_suite
from rlm_sandbox.eval.suite_config import flag

REPO = Path(__file__).resolve().parent.parent
#: Flags that are not a field of their own: they fold into one (fail_on_error, options).
FOLDED = {"--no-fail-on-error", "--task-time", "--task-tokens", "--task-cost", "--task-sub-calls"}


def run_flags() -> set[str]:
    command = typer.main.get_command(eval_app).commands["run"]  # type: ignore[attr-defined]  # typer's Group has commands
    return {opt for param in command.params if param.param_type_name == "option" for opt in param.opts
            if opt.startswith("--")}


def test_every_flag_of_eval_run_is_a_field_and_every_field_a_flag():
    flags = run_flags()
    fields = {flag(name) for name in SuiteConfig.model_fields}
    assert fields - flags == set()  # a field the CLI cannot set
    assert flags - fields - FOLDED - {"--help"} == set()  # a flag that is not part of the configuration


@pytest.mark.parametrize("given, message", [
    ({"min_score": 2}, "--min-score 2: give a mean score from 0 to 1 (SuiteConfig.min_score)"),
    ({"fail_on_error": 2.5}, "--fail-on-error 2.5: give a share of the runs from 0 to 1"),
    ({"limit": "3-2"}, "--limit 3-2: give a count N (>= 1) or a range A-B (1 <= A <= B) (SuiteConfig.limit)"),
    ({"record": "a", "replay": "b"}, "give --record or --replay, not both (SuiteConfig.replay)"),
    ({"baseline": "oracle"}, "--baseline oracle: the only baseline is 'direct' (SuiteConfig.baseline)"),
    ({"epochs": 0}, "--epochs 0: Input should be greater than or equal to 1 (SuiteConfig.epochs)"),
    ({"labels": {"team": 7}}, "--label 7: Input should be a valid string (SuiteConfig.labels.team)"),
    ({"concurency": 3}, "SuiteConfig has no field 'concurency'; its fields: model, out,"),
])
def test_a_bad_value_is_one_eval_error_naming_the_flag_and_the_field(given, message):
    with pytest.raises(EvalError) as caught:
        SuiteConfig(**{"model": "scripted/oracle", "out": "o", **given})
    assert message in str(caught.value)


def test_every_problem_is_in_the_one_error_and_no_option_value_is_shown():
    with pytest.raises(EvalError) as caught:
        SuiteConfig(model="m", out="o", n=0, min_score=-1, options="api_key=sk-secret-0123456789")  # type: ignore[arg-type]  # wrong on purpose
    text = str(caught.value)
    assert "--n 0:" in text and "--min-score -1:" in text and "--set: Input should be a valid dictionary" in text
    assert "sk-secret" not in text
    with pytest.raises(EvalError, match=r"--model is required \(SuiteConfig.model\)"):
        SuiteConfig(out="o")  # type: ignore[call-arg]  # missing on purpose


def test_a_count_of_one_error_stays_a_share_not_true():
    """fail_on_error=1 tolerates every error (a share of 1); True fails on any: they must not merge."""
    assert SuiteConfig(model="m", out="o", fail_on_error=1).fail_on_error == 1
    assert SuiteConfig(model="m", out="o", fail_on_error=1).fail_on_error is not True
    assert SuiteConfig(model="m", out="o", fail_on_error=True).fail_on_error is True
    assert SuiteConfig(model="m", out="o", fail_on_error=False).fail_on_error is False


def test_the_cli_says_what_python_says_and_makes_nothing(tmp_path):
    with pytest.raises(EvalError) as caught:
        SuiteConfig(model="scripted/oracle", out=tmp_path / "o", limit="0")
    done = subprocess.run([sys.executable, "-m", "rlm_sandbox", "eval", "run", "sniah", "-m", "scripted/oracle",
                           "-o", str(tmp_path / "o"), "--limit", "0", "--quiet"], capture_output=True, text=True,
                          cwd=REPO, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and str(caught.value) in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()


def test_run_suite_checks_the_tasks_before_it_makes_the_output_directory(tmp_path):
    config = SuiteConfig(model="scripted/oracle", out=tmp_path / "o", params={"records": "3"}, progress=False)
    with pytest.raises(EvalError, match="parameter records: no generator given takes it"):
        run_suite(["sniah"], config)
    assert not (tmp_path / "o").exists()


def test_a_type_checker_sees_every_lazy_name_of_rlm_sandbox_eval():
    """The TYPE_CHECKING imports and the lazy table name the same things from the same modules."""
    tree = ast.parse(Path(eval_package.__file__).read_text())
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                imported.update({alias.name: statement.module for alias in statement.names})
    assert imported == eval_package._EXPORTS
    assert all(getattr(eval_package, name) is not None for name in eval_package.__all__)
