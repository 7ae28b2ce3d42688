"""Record and replay of model traffic: a recorded run replays exactly with no model and no
network; an unrecorded request fails loudly; cassettes never hold a key."""

from __future__ import annotations

import asyncio
import json

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.errors import UnrecordedRequest
from rlm_sandbox.models import LLMClient
from rlm_sandbox.models.cassette import VERSION, CassetteError, read_cassette
from rlm_sandbox.models.replay import RecordingClient, ReplayClient
from rlm_sandbox.testing import OpenAICompatibleServer, Reply, ScriptedModel, scripted_cost

pytestmark = pytest.mark.docker

SECRET = "s3cret-value-0123456789abcdef"
ROOT_CODE = """```repl
parts = [context[i:i + 40] for i in range(0, len(context), 40)]
answers = llm_query_batched([f"Count the vowels in: {p}" for p in parts])
first = llm_query("Say hi")
again = llm_query("Say hi")
total = sum(int(a) for a in answers)
FINAL(f"{total} {first} {again}")
```"""


def vowels(messages: list[dict]) -> str | Reply:
    prompt = messages[-1]["content"]
    if prompt.startswith("Count the vowels in: "):
        text = prompt.removeprefix("Count the vowels in: ")
        return Reply(str(sum(ch in "aeiou" for ch in text)), delay_s=0.05 * (len(text) % 3))  # out of order
    return "unexpected"


def fast(**options):
    return LLMClient(backoff_initial_s=0.01, backoff_max_s=0.05, **options)


@pytest.fixture
def context() -> str:
    return f"the quick brown fox jumps over the lazy dog; token={SECRET}; " * 4


def recorded_run(tmp_path, sandbox_factory, context, monkeypatch):
    """Record a run over real HTTP: root and sub-model on an OpenAI-compatible server."""
    monkeypatch.setenv("RLM_TEST_SERVICE_KEY", SECRET)  # a secret by name: it must never be written
    greetings = iter(["hello", "hello again"])

    def respond(messages):
        if messages[0]["role"] == "system":
            return ROOT_CODE
        if messages[-1]["content"] == "Say hi":
            return next(greetings)
        return vowels(messages)

    with OpenAICompatibleServer(respond) as server:
        rlm = RLM(model="openai/test-model", sandbox_factory=sandbox_factory, api_base=server.url,
                  api_key="sk-test-abcdefghijklmnop",
                  llm=fast(completion_kwargs={"api_base": server.url, "api_key": "sk-test-abcdefghijklmnop"}),
                  record=tmp_path / "tape")
        result = rlm.run("How many vowels, and greet twice?", context)
        prompts = [request.messages[-1]["content"] for request in server.requests]
    return result, prompts


@pytest.mark.loop
def test_a_recorded_run_replays_exactly_with_no_server(tmp_path, sandbox_factory, context, monkeypatch):
    recorded, prompts = recorded_run(tmp_path, sandbox_factory, context, monkeypatch)
    assert recorded.status == "completed"
    expected_vowels = sum(ch in "aeiou" for ch in context)
    assert recorded.answer == f"{expected_vowels} hello hello again"
    assert any(SECRET in prompt for prompt in prompts)  # control: the secret did go to the model

    # The server is gone: any call that reached the network would fail.
    replay = RLM(model="openai/test-model", sandbox_factory=sandbox_factory, api_base="http://127.0.0.1:9/v1",
                 llm=fast(max_retries=0, completion_kwargs={"api_base": "http://127.0.0.1:9/v1"}),
                 replay=tmp_path / "tape")
    replayed = replay.run("How many vowels, and greet twice?", context)
    assert (replayed.answer, replayed.status, replayed.answer_from) == (recorded.answer, "completed", "final")
    assert (replayed.total_input_tokens, replayed.total_output_tokens, replayed.cost_usd, replayed.sub_calls) == \
        (recorded.total_input_tokens, recorded.total_output_tokens, recorded.cost_usd, recorded.sub_calls)
    assert replay.llm.misses == []

    text = (tmp_path / "tape" / "cassette.jsonl").read_text()
    assert SECRET not in text and "sk-test-abcdefghijklmnop" not in text
    assert "[secret RLM_TEST_SERVICE_KEY]" in text
    header = json.loads(text.splitlines()[0])
    assert header["format"] == "rlm-sandbox-cassette" and header["version"] == VERSION
    hi = [e for e in read_cassette(tmp_path / "tape" / "cassette.jsonl")
          if e.request["messages"][-1]["content"] == "Say hi"]
    assert [(e.n, e.response["text"]) for e in hi] == [(0, "hello"), (1, "hello again")]  # stored in order


@pytest.mark.loop
def test_an_unrecorded_request_fails_loudly_naming_the_closest(tmp_path, sandbox_factory, context, monkeypatch):
    recorded_run(tmp_path, sandbox_factory, context, monkeypatch)
    replay = RLM(model="openai/test-model", sandbox_factory=sandbox_factory,
                 llm=fast(max_retries=0), replay=tmp_path / "tape")
    result = replay.run("How many vowels, and greet three times?", context)  # a different question
    assert result.status == "error"
    assert "not in the cassette" in result.error and "root-model call" in result.error
    assert "closest recorded request" in result.error and "greet twice" in result.error
    assert isinstance(replay.llm.misses[0], UnrecordedRequest)


@pytest.mark.loop
def test_a_sub_call_missing_from_the_cassette_fails_the_run_even_if_the_cell_caught_it(tmp_path, sandbox_factory):
    code = "```repl\ntry:\n    x = llm_query(context)\nexcept Exception as e:\n    x = 'caught'\nFINAL(x)\n```"
    with ScriptedModel([code], name="rr-root") as root, ScriptedModel(responder=lambda m: "seen") as sub:
        rlm = RLM(model=root.model, sub_model=sub.model, sandbox="local", sandbox_factory=sandbox_factory,
                  llm=fast(), record=tmp_path / "t")
        assert rlm.run("q", "x" * 400 + "first").answer == "seen"
    replay = RLM(model="scripted/rr-root", sub_model=sub.model, sandbox="local", sandbox_factory=sandbox_factory,
                 llm=fast(), replay=tmp_path / "t")
    # Same length and start, so the root's prompt (which shows only the start) is the recorded one;
    # the sub-call's prompt (the whole context) is new.
    result = replay.run("q", "x" * 400 + "other")
    assert result.answer == "caught"  # the cell caught the failure...
    assert result.status == "error" and "a sub-call" in result.error  # ...and the run still fails
    assert "not in the cassette" in result.error and "they first differ at character" in result.error


@pytest.mark.loop
def test_failed_calls_are_recorded_and_replayed(tmp_path, sandbox_factory):
    import litellm

    code = ("```repl\ntry:\n    x = llm_query('boom')\nexcept Exception as e:\n    x = type(e).__name__ + ': ' + "
            "str(e)[:60]\nFINAL(x)\n```")
    bad = litellm.BadRequestError("no such thing", model="m", llm_provider="scripted")
    with ScriptedModel([code]) as root, ScriptedModel([bad]) as sub:
        kwargs = dict(model=root.model, sub_model=sub.model, sandbox="local", sandbox_factory=sandbox_factory)
        recorded = RLM(**kwargs, llm=fast(), record=tmp_path / "t").run("q", "c")
    assert recorded.answer.startswith("LLMError")
    replayed = RLM(**kwargs, llm=fast(), replay=tmp_path / "t").run("q", "c")
    assert replayed.answer == recorded.answer and replayed.status == "completed"


def test_costs_and_repeated_requests_replay_in_order(tmp_path):
    import asyncio

    with ScriptedModel(["one", "two", "three"]) as model:
        scripted_cost(model.model, 0.001, 0.002)
        recorder = RecordingClient(fast(), tmp_path / "c.jsonl")
        messages = [{"role": "user", "content": "same"}]
        first = [asyncio.run(recorder.acomplete(model.model, messages, max_tokens=5)) for _ in range(3)]
    replay = ReplayClient(tmp_path / "c.jsonl", label="task-7")
    again = [asyncio.run(replay.acomplete(model.model, messages, max_tokens=5)) for _ in range(3)]
    assert [c.text for c in again] == ["one", "two", "three"]
    assert [(c.input_tokens, c.output_tokens, c.cost_usd) for c in again] == \
        [(c.input_tokens, c.output_tokens, c.cost_usd) for c in first]
    assert first[0].cost_usd and first[0].cost_usd > 0
    with pytest.raises(UnrecordedRequest, match=r"task task-7.*recorded 3 time\(s\)"):
        asyncio.run(replay.acomplete(model.model, messages, max_tokens=5))
    with pytest.raises(UnrecordedRequest, match="max_tokens=5"):  # other parameters: another request
        asyncio.run(replay.acomplete(model.model, messages, max_tokens=6))


def test_a_recording_appends_and_numbers_after_what_is_there(tmp_path):
    import asyncio

    with ScriptedModel(["a", "b"]) as model:
        messages = [{"role": "user", "content": "q"}]
        asyncio.run(RecordingClient(fast(), tmp_path / "c.jsonl").acomplete(model.model, messages))
        asyncio.run(RecordingClient(fast(), tmp_path / "c.jsonl").acomplete(model.model, messages))
    assert [e.n for e in read_cassette(tmp_path / "c.jsonl")] == [0, 1]
    replay = ReplayClient(tmp_path / "c.jsonl")
    assert [asyncio.run(replay.acomplete(model.model, messages)).text for _ in range(2)] == ["a", "b"]


def test_bad_cassettes_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(CassetteError, match="no cassette at"):
        ReplayClient(tmp_path / "missing.jsonl")
    (tmp_path / "x.jsonl").write_text('{"event": "run_start"}\n')
    with pytest.raises(CassetteError, match="is not an rlm-sandbox cassette"):
        ReplayClient(tmp_path / "x.jsonl")
    (tmp_path / "new.jsonl").write_text(json.dumps({"format": "rlm-sandbox-cassette", "version": VERSION + 1}) + "\n")
    with pytest.raises(CassetteError, match="upgrade rlm-sandbox"):
        ReplayClient(tmp_path / "new.jsonl")
    with pytest.raises(TypeError, match="not both"):
        RLM(model="m", record=tmp_path, replay=tmp_path)


@pytest.mark.loop
def test_child_runs_are_recorded_and_replayed(tmp_path, sandbox_factory):
    """rlm_query's child runs use the run's client: their calls are in the cassette too, and a
    replay with the scripted models closed gives the same answer, tokens and sub-calls."""
    parent = "```repl\ncounts = [rlm_query('How many words?', p) for p in context.split('|')]\n" \
             "FINAL(sum(int(c) for c in counts))\n```"
    with ScriptedModel(responder=lambda m: parent if "a str of 11" in m[1]["content"] else
                       "```repl\nFINAL(str(len(context.split())))\n```", name="rr-parent") as model:
        kwargs = dict(model=model.model, sandbox_factory=sandbox_factory, max_depth=1, llm=fast())
        recorded = RLM(**kwargs, record=tmp_path / "t").run("Total words?", "a b c|d e|f")
        calls = len(model.calls)
    assert (recorded.answer, recorded.status, calls) == ("6", "completed", 4)  # the root, three children
    entries = read_cassette(tmp_path / "t" / "cassette.jsonl")
    assert len(entries) == 4 and sum("a str of 5" in e.request["messages"][1]["content"] for e in entries) == 1
    replayed = RLM(**kwargs, replay=tmp_path / "t").run("Total words?", "a b c|d e|f")  # the model is closed
    assert (replayed.answer, replayed.status, replayed.sub_calls, replayed.total_input_tokens) == \
        (recorded.answer, "completed", recorded.sub_calls, recorded.total_input_tokens)



async def _ask(client, **extra):
    return await client.acomplete("openai/m", [{"role": "user", "content": "2+2?"}], max_tokens=5, **extra)


def test_provider_options_pass_through_and_are_part_of_the_recorded_request(tmp_path):
    """The wrappers forward the protocol's other keywords (options, on_retry) to the client they
    wrap, and a call's options are part of what is recorded: a replay with other options misses."""
    with OpenAICompatibleServer(lambda messages: "4") as server:
        recording = RecordingClient(fast(completion_kwargs={"api_base": server.url, "api_key": "sk-test"}),
                                    tmp_path / "cassette.jsonl")
        completion = asyncio.run(_ask(recording, options={"top_p": 0.5}, on_retry=lambda *_: None))
        bodies = [request.body for request in server.requests]
    assert completion.text == "4" and [body.get("top_p") for body in bodies] == [0.5]  # reached the provider
    replay = ReplayClient(tmp_path / "cassette.jsonl")
    assert asyncio.run(_ask(replay, options={"top_p": 0.5}, on_retry=lambda *_: None)).text == "4"
    with pytest.raises(UnrecordedRequest):
        asyncio.run(_ask(replay, options={"top_p": 0.9}))
    with pytest.raises(UnrecordedRequest):
        asyncio.run(_ask(replay))  # no options: another request
