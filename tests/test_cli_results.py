"""What `rlm-sandbox run` says about its result (issue 7, items 6 and 9): where the answer
came from, and a cost that is unknown printed as "unknown". Real subprocesses, real Docker,
a model server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox.testing import OpenAICompatibleServer, Reply

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent


def run_cli(server: OpenAICompatibleServer, context: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    env.update({"PYTHONPATH": str(REPO), "RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", "run", "-q", "What is it?", "-f", str(context),
                           "-m", "openai/test-model", *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=REPO)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    path = tmp_path / "c.txt"
    path.write_text("red green blue")
    return path


def replies(*texts: str) -> Any:
    script = iter(texts)
    return lambda messages: Reply(next(script), input_tokens=10, output_tokens=2)


def test_an_answer_without_final_is_labelled_on_stderr(context, sandbox_image):
    with OpenAICompatibleServer(replies("```repl\nprint(1)\n```", "```repl\nprint('still going')\n```")) as server:
        done = run_cli(server, context, "--max-iterations", "1")
    assert done.returncode == 3
    assert done.stdout.strip() == "```repl\nprint('still going')\n```"  # printed, but ...
    assert "answer_from=answer_now" in done.stderr
    assert "NOT A FINAL ANSWER" in done.stderr and "answer-now request" in done.stderr


def test_a_final_answer_is_not_labelled(context, sandbox_image):
    with OpenAICompatibleServer(replies("FINAL(blue)")) as server:
        done = run_cli(server, context, "--json")
    assert done.returncode == 0, done.stderr
    assert '"answer_from": "final"' in done.stdout and "NOT A FINAL" not in done.stderr


def test_an_unknown_cost_is_printed_as_unknown_and_a_custom_price_prices_it(context, sandbox_image):
    with OpenAICompatibleServer(replies("FINAL(blue)", "FINAL(blue)")) as server:
        unpriced = run_cli(server, context)
        priced = run_cli(server, context, "--set", "input_cost_per_token=0.001", "--set",
                         "output_cost_per_token=0.002")
    assert unpriced.returncode == 0 and "cost=unknown" in unpriced.stderr and "$0.0000" not in unpriced.stderr
    assert priced.returncode == 0 and "cost=$0.0140" in priced.stderr  # 10 x 0.001 + 2 x 0.002


def test_max_cost_usd_for_an_unpriced_model_is_refused_before_any_call(context):
    with OpenAICompatibleServer(replies("FINAL(never)")) as server:
        done = run_cli(server, context, "--set", "max_cost_usd=0.5")
        assert server.requests == []
    assert done.returncode != 0 and done.stdout == ""
    assert "max_cost_usd=0.5 cannot be enforced: the root model 'openai/test-model' has no known price" in done.stderr
    assert "--set input_cost_per_token=" in done.stderr
