"""Cached prompt tokens are counted and priced everywhere (issue 21, part A).

Through litellm's real path: the scripted model reporting ``cached_tokens``, and the
OpenAI-compatible test server behaving like a provider's prefix cache over a real socket;
Anthropic-style usage is normalised by litellm's own Anthropic code. Cached tokens are a part
of the input tokens, priced at their own price; budgets settle what was billed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.config import Settings
from rlm_sandbox.core.result import ModelUsage, RLMResult
from rlm_sandbox.errors import SettingsError
from rlm_sandbox.events import types as ev
from rlm_sandbox.models import LLMClient
from rlm_sandbox.models.base import Price
from rlm_sandbox.models.replay import RecordingClient, ReplayClient
from rlm_sandbox.testing import OpenAICompatibleServer, Reply, ScriptedModel
from tests.rlm_helpers import make_rlm

REPO = Path(__file__).resolve().parent.parent
#: In litellm's local price map with a cache-read price (LITELLM_LOCAL_MODEL_COST_MAP=True).
MAPPED = "openai/gpt-4o-mini"
ONE_TURN = [{"role": "user", "content": "hi"}]


def fast(**options: Any) -> LLMClient:
    return LLMClient(max_retries=0, **options)


# --- prices ----------------------------------------------------------------------------

def test_a_price_charges_cache_reads_and_writes_at_their_own_prices():
    price = Price(1e-6, 2e-6, cached_input_per_token=1e-7, cache_write_per_token=1.25e-6)
    assert price.cost(10_000, 100) == pytest.approx(10_000e-6 + 200e-6)  # nothing cached: as before
    assert price.cost(10_000, 100, cached_input_tokens=8_000) == pytest.approx(2_000e-6 + 800e-6 + 200e-6)
    assert price.cost(10_000, 100, 6_000, 2_000) == pytest.approx(2_000e-6 + 600e-6 + 2_500e-6 + 200e-6)
    plain = Price(1e-6, 2e-6)  # no cache price: cached input is charged as input, never free
    assert plain.cost(10_000, 100, 8_000) == pytest.approx(plain.cost(10_000, 100))
    assert price.cost(100, 0, cached_input_tokens=500) == pytest.approx(100e-7)  # capped by the prompt


def test_litellms_map_gives_the_cache_read_price():
    price = LLMClient.price_of(MAPPED)
    assert price is not None and price.cached_input_per_token is not None
    assert 0 < price.cached_input_per_token < price.input_per_token


def test_cache_prices_are_settings_that_refine_a_custom_price():
    settings = Settings(model="openai/local", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                        cached_input_cost_per_token=1e-7, cache_write_cost_per_token=1.25e-6)
    assert settings.custom_price("openai/local") == Price(1e-6, 2e-6, 1e-7, 1.25e-6)
    with pytest.raises(SettingsError, match="cached_input_cost_per_token refines a custom price: give "
                                            "input_cost_per_token and output_cost_per_token too"):
        Settings(model="openai/local", cached_input_cost_per_token=1e-7)
    with pytest.raises(SettingsError, match="sub_cache_write_cost_per_token refines a custom price: give "
                                            "sub_input_cost_per_token"):
        Settings(model="openai/local", sub_model="openai/other", sub_cache_write_cost_per_token=1e-7)
    with pytest.raises(SettingsError, match="give its price once"):
        Settings(model="openai/local", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                 sub_input_cost_per_token=1e-6, sub_output_cost_per_token=2e-6, sub_cached_input_cost_per_token=1e-7)


# --- reading usage ---------------------------------------------------------------------

def test_anthropic_usage_counts_cache_reads_and_writes_as_parts_of_the_prompt():
    """litellm turns Anthropic's usage (input_tokens without the cache, beside the cache's two
    counts) into prompt_tokens that include both; we read both as parts of it."""
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig

    from rlm_sandbox.models.litellm_client import cache_parts

    usage = AnthropicConfig().calculate_usage({"input_tokens": 50, "output_tokens": 7, "cache_read_input_tokens": 3000,
                                               "cache_creation_input_tokens": 1200}, reasoning_content=None)
    assert usage.prompt_tokens == 4250
    assert cache_parts(usage, usage.prompt_tokens) == (3000, 1200)


def test_openai_style_cached_tokens_are_counted_and_litellms_cost_is_cache_aware():
    reply = Reply("ok", input_tokens=10_000, output_tokens=100, cached_tokens=8_000)
    with OpenAICompatibleServer(lambda messages: reply) as server:
        client = fast(completion_kwargs={"api_base": server.url, "api_key": "sk-test"})
        done = client.complete(MAPPED, ONE_TURN)
    price = LLMClient.price_of(MAPPED)
    assert price is not None
    assert (done.input_tokens, done.cached_input_tokens, done.cache_write_tokens) == (10_000, 8_000, 0)
    assert done.cost_usd == pytest.approx(price.cost(10_000, 100, 8_000))
    assert done.cost_usd < price.cost(10_000, 100)  # below the uncached price


def test_with_a_custom_price_the_cost_is_computed_from_the_usage_at_the_cached_price():
    with ScriptedModel(responder=lambda m: Reply("ok", input_tokens=10_000, output_tokens=100,
                                                 cached_tokens=8_000)) as model:
        priced = fast().complete(model.model, ONE_TURN, price=Price(1e-6, 2e-6, cached_input_per_token=1e-7))
        plain = fast().complete(model.model, ONE_TURN, price=Price(1e-6, 2e-6))
    assert priced.cached_input_tokens == 8_000
    assert priced.cost_usd == pytest.approx(2_000e-6 + 800e-6 + 200e-6)
    assert plain.cost_usd == pytest.approx(10_000e-6 + 200e-6)  # no cached price: as input, never $0


def test_record_and_replay_keep_cached_tokens_and_old_cassettes_still_replay(tmp_path):
    with ScriptedModel([Reply("one", input_tokens=3000, output_tokens=4, cached_tokens=2048)]) as model:
        recorder = RecordingClient(fast(), tmp_path / "c.jsonl")
        first = asyncio.run(recorder.acomplete(model.model, ONE_TURN, max_tokens=5))
        again = asyncio.run(ReplayClient(tmp_path / "c.jsonl").acomplete(model.model, ONE_TURN, max_tokens=5))
    assert (again.input_tokens, again.cached_input_tokens) == (first.input_tokens, first.cached_input_tokens) \
        == (3000, 2048)
    lines = (tmp_path / "c.jsonl").read_text().splitlines()
    entry = json.loads(lines[-1])
    for key in ("cached_input_tokens", "cache_write_tokens"):
        del entry["response"][key]
    (tmp_path / "old.jsonl").write_text("\n".join([*lines[:-1], json.dumps(entry)]) + "\n")
    old = asyncio.run(ReplayClient(tmp_path / "old.jsonl").acomplete(model.model, ONE_TURN, max_tokens=5))
    assert (old.text, old.input_tokens, old.cached_input_tokens) == ("one", 3000, 0)


# --- showing them -----------------------------------------------------------------------

def _result(cached: int) -> RLMResult:
    usage = [ModelUsage(model="m", role="root", calls=2, attempts=2, input_tokens=5000, output_tokens=50,
                        cost_usd=0.01, cached_input_tokens=cached, cache_write_tokens=0),
             ModelUsage(model="s", role="sub", calls=1, attempts=1, input_tokens=100, output_tokens=5,
                        cost_usd=0.001, cached_input_tokens=0)]
    return RLMResult(answer="a", iterations=2, total_input_tokens=5100, total_output_tokens=55, code_executions=1,
                     sub_calls=1, history=[], usage=usage, cost_usd=0.011, answer_from="final")


def test_the_result_totals_cached_tokens_and_to_dict_carries_them():
    result = _result(4096)
    assert result.total_cached_input_tokens == 4096
    data = result.to_dict()
    assert data["total_cached_input_tokens"] == 4096 and data["usage"][0]["cached_input_tokens"] == 4096


def test_openai_shaped_answers_and_inspect_usage_carry_cached_tokens():
    from rlm_sandbox.integrations.inspect_solver import _inspect_usage
    from rlm_sandbox.serve.responses import usage

    assert usage(_result(4096))["prompt_tokens_details"] == {"cached_tokens": 4096}
    assert "prompt_tokens_details" not in usage(_result(0))  # as before when nothing was cached
    counted = _inspect_usage(5100, 55, 0.011, 4096, 1000)
    assert (counted.input_tokens, counted.input_tokens_cache_read, counted.input_tokens_cache_write) == \
        (5100 - 4096 - 1000, 4096, 1000)
    assert counted.total_tokens == 5155


def test_the_live_totals_trace_totals_and_eval_reports_say_how_many_were_cached():
    from rlm_sandbox.eval.reports.junit import render_junit
    from rlm_sandbox.eval.reports.markdown import render_markdown
    from rlm_sandbox.eval.results import TaskResult
    from rlm_sandbox.eval.summary import summarise
    from rlm_sandbox.view.live import LiveState
    from rlm_sandbox.view.outline import Usage, tokens

    reply = ev.ModelReply(run_id="r", depth=0, t=0.0, seq=1, ts=datetime.now(timezone.utc), call_id="c", role="root",
                          model="m", outcome="ok",
                          input_tokens=3000, output_tokens=10, cached_input_tokens=2048, cost_usd=0.001)
    live = LiveState()
    live.update(reply)
    assert "3,000 in (2,048 cached), 10 out" in live.totals()
    usage = Usage()
    usage.add_reply(reply)
    assert tokens(usage) == "3,000+10 tokens (2,048 cached)"
    results = [TaskResult(task_id=f"t{i}", source="file", query="q", status="completed", scorer="exact",
                          input_tokens=3000, output_tokens=10, cached_input_tokens=2048, model="m", sub_model="m")
               for i in range(2)]
    summary = summarise(results, model="m", sub_model="m", scripted=False, epochs=1)
    assert summary.cached_input_tokens == 4096
    assert "6,020 (4,096 cached)" in render_markdown(results, summary)
    assert "3000 in (2048 cached), 10 out" in render_junit(results, summary)


# --- runs --------------------------------------------------------------------------------

def growing(messages: list[dict]) -> str:
    """Ten turns of code whose output the next request repeats, then FINAL."""
    turn = sum(m["role"] == "assistant" for m in messages)
    if turn >= 9:
        return "FINAL(done)"
    return f"```repl\nprint('turn {turn}: ' + 'x' * 400)\n```"


@pytest.mark.docker
def test_a_ten_turn_run_reports_cached_tokens_in_usage_events_and_result_priced_by_the_table(sandbox_factory):
    with OpenAICompatibleServer(growing, prefix_cache_min_tokens=1024) as server:
        rlm = RLM(model=MAPPED, sandbox_factory=sandbox_factory, api_base=server.url, api_key="sk-test",
                  llm=fast(completion_kwargs={"api_base": server.url, "api_key": "sk-test"}))
        result = rlm.run("What is it?", "red green blue")
        served = server.usage
    assert result.status == "completed" and result.iterations == 10
    cached = sum(u.cached_tokens for u in served)
    assert cached > 0 and result.total_cached_input_tokens == cached
    assert result.total_input_tokens == sum(u.prompt_tokens for u in served)
    [root] = result.usage
    assert root.cached_input_tokens == cached and root.cache_write_tokens == 0
    replies = [e for e in result.trajectory if isinstance(e, ev.ModelReply)]
    assert [e.cached_input_tokens for e in replies] == [u.cached_tokens for u in served]
    [final] = [e for e in result.trajectory if isinstance(e, ev.Final)]
    assert final.cached_input_tokens == cached  # the run's last word says it too
    price = LLMClient.price_of(MAPPED)
    assert price is not None
    billed = sum(price.cost(u.prompt_tokens, u.completion_tokens, u.cached_tokens) for u in served)
    assert result.cost_usd == pytest.approx(billed)
    assert result.cost_usd < sum(price.cost(u.prompt_tokens, u.completion_tokens) for u in served)


@pytest.mark.docker
def test_the_cli_json_and_end_line_report_cached_tokens(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("red green blue")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    env.update({"PYTHONPATH": str(REPO), "RLM_SANDBOX_API_KEY": "sk-test", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    with OpenAICompatibleServer(growing, prefix_cache_min_tokens=1024) as server:
        done = subprocess.run([sys.executable, "-m", "rlm_sandbox", "run", "-q", "What is it?", "-f", str(context),
                               "-m", MAPPED, "--set", f"api_base={server.url}", "--json"],
                              capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
        served = server.usage
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    cached = sum(u.cached_tokens for u in served)
    assert cached > 0 and report["total_cached_input_tokens"] == cached
    assert report["usage"][0]["cached_input_tokens"] == cached and report["usage"][0]["cache_write_tokens"] == 0
    price = LLMClient.price_of(MAPPED)
    assert price is not None
    assert report["cost_usd"] == pytest.approx(sum(price.cost(u.prompt_tokens, u.completion_tokens, u.cached_tokens)
                                                   for u in served))
    assert f"({cached:,} cached)" in done.stderr


@pytest.mark.docker
@pytest.mark.parametrize("cached", [9_000, None])
def test_a_cached_run_does_more_within_the_same_cost_budget(sandbox_factory, cached):
    """Reservations assume no cache (safe); settlement charges what was billed, cache-aware."""
    def reply(messages: list[dict]) -> Reply:
        return Reply(growing(messages), input_tokens=10_000, output_tokens=10, cached_tokens=cached)

    with ScriptedModel(responder=reply) as root:
        result = make_rlm(sandbox_factory, root, max_cost_usd=0.03, max_tokens=100, input_cost_per_token=1e-6,
                          output_cost_per_token=1e-6, cached_input_cost_per_token=1e-7).run("q", "ctx")
    if cached:  # ten calls of 1,000 + 9,000 x 0.1 + 10 tokens' worth: $0.0191 in all
        assert result.status == "completed" and result.cost_usd == pytest.approx(10 * 1910e-6)
        assert result.total_cached_input_tokens == 90_000
    else:  # $0.01001 a call: the third spends the budget
        assert result.status == "budget_exhausted" and "max_cost_usd" in (result.error or "")
        assert result.total_cached_input_tokens == 0


def test_a_reservation_prices_the_prompt_at_its_dearest_so_a_cache_write_cannot_overshoot():
    """Anthropic bills a cache write at 1.25 times input; a marked request may write its whole
    prompt, so reserving it as plain input could let concurrent calls spend past max_cost_usd."""
    from rlm_sandbox.config import Settings
    from rlm_sandbox.core.budget import Ledger
    from rlm_sandbox.core.metering import Meter

    settings = Settings(model="openai/priced-here", input_cost_per_token=1e-6, output_cost_per_token=2e-6,
                        cache_write_cost_per_token=1.25e-6, max_cost_usd=1.0)
    client = LLMClient()
    meter = Meter(Ledger(settings.budget()), client, settings)
    messages = [{"role": "user", "content": "a prompt of a few tokens " * 20}]
    reservation = meter.reserve("root model call", settings.model, messages, 100)
    prompt = client.count_tokens(settings.model, messages)
    assert reservation is not None
    assert reservation.cost_usd == pytest.approx(prompt * 1.25e-6 + 100 * 2e-6)
    price = settings.custom_price(settings.model)
    assert price is not None and price.ceiling(prompt, 100) > price.cost(prompt, 100)  # the old, plain-input bound
