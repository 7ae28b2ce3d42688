"""`rlm-sandbox serve` as a real process, driven by the official openai client and by litellm.

The upstream model is scripted over real HTTP (tests/serve_process.py); the runs use real
Docker sandboxes. Answers, usage, the stream's order and heartbeats, the trace endpoint,
bad requests (400 naming the field) and 16 clients at once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest

from rlm_sandbox.testing import OpenAICompatibleServer
from serve_process import NEVER, ROOT, SLEEP, UPSTREAM_KEY, ServeProcess, responder

pytestmark = pytest.mark.docker

MODEL = f"rlm/{ROOT}"
JSON = {"Content-Type": "application/json"}
CONTEXT = "The launch code is written on a blue card."
QUESTION = "What number is it?"


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(responder) as server:
        yield server


@pytest.fixture(scope="module")
def served(upstream: OpenAICompatibleServer, sandbox_image: str, tmp_path_factory: Any) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "traces").mkdir()
    server = ServeProcess(upstream.url, "--trace-dir", str(tmp / "traces"), "--heartbeat-s", "0.3",
                          "--max-concurrent", "4", "--max-queue", "16", "--max-wall-time-s", "120",
                          "--set", "max_iterations=4", tmp=tmp)
    yield server
    server.close()
    assert UPSTREAM_KEY not in server.stderr() + server.stdout()


@pytest.fixture()
def client(served: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url, api_key="unused-on-loopback", max_retries=0, timeout=120)


def ask(question: str = QUESTION, context: str | None = CONTEXT) -> list[dict[str, Any]]:
    messages = [{"role": "system", "content": context}] if context is not None else []
    return [*messages, {"role": "user", "content": question}]


def trace_events(served: ServeProcess, request_id: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{served.url}/rlm/traces/{request_id}", timeout=30)
    assert reply.status_code == 200, reply.text
    return [json.loads(line) for line in reply.text.splitlines() if line.strip()]


def test_models_lists_the_served_rlms(client: openai.OpenAI):
    names = [model.id for model in client.models.list()]
    assert names[0] == "rlm"
    assert MODEL in names


def test_a_sync_client_gets_the_answer_usage_and_how_the_run_went(client: openai.OpenAI, served: ServeProcess):
    reply = client.chat.completions.create(model=MODEL, messages=ask())
    choice = reply.choices[0]
    assert choice.message.content == "42"
    assert choice.finish_reason == "stop"
    rlm = reply.model_extra["rlm"]
    assert rlm["status"] == "completed" and rlm["answer_from"] == "final"
    assert rlm["iterations"] == 2 and rlm["sub_calls"] == 1
    assert rlm["cost_usd"] is None  # the scripted upstream has no price: unknown, never 0
    assert rlm["trace_id"] == reply.id
    events = trace_events(served, reply.id)
    replies = [e for e in events if e["event"] == "model_reply"]
    assert {e["role"] for e in replies} == {"root", "sub"}  # usage counts the sub-call too
    assert reply.usage.prompt_tokens == sum(e["input_tokens"] for e in replies)
    assert reply.usage.completion_tokens == sum(e["output_tokens"] for e in replies)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    cells = [e for e in events if e["event"] == "cell"]
    assert CONTEXT in cells[0]["stdout"]  # the system message became the sandbox's context
    assert events[-1]["event"] == "final"


def test_a_run_ended_by_a_limit_finishes_with_length(client: openai.OpenAI):
    reply = client.chat.completions.create(model=MODEL, messages=ask(NEVER),
                                           extra_body={"rlm": {"max_iterations": 1}})
    assert reply.choices[0].finish_reason == "length"
    assert reply.model_extra["rlm"]["status"] != "completed"
    assert reply.model_extra["rlm"]["iterations"] == 1


def test_a_stream_sends_role_progress_answer_finish_usage_in_order(client: openai.OpenAI):
    stream = client.chat.completions.create(model=MODEL, messages=ask(), stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    kinds = []
    for chunk in chunks[1:]:
        if not chunk.choices:
            kinds.append("usage")
            continue
        delta = chunk.choices[0].delta
        if (delta.model_extra or {}).get("reasoning_content"):
            kinds.append("progress")
        elif delta.content:
            kinds.append("answer")
        elif chunk.choices[0].finish_reason:
            kinds.append("finish")
    assert kinds[-3:] == ["answer", "finish", "usage"]
    assert set(kinds[:-3]) == {"progress"}
    progress = "".join(c.choices[0].delta.model_extra["reasoning_content"] for c in chunks[1:]
                       if c.choices and (c.choices[0].delta.model_extra or {}).get("reasoning_content"))
    assert "iteration 1" in progress and "cell 1.1: ok" in progress and "sub-call" in progress
    assert "iteration 2" in progress
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert answer == "42"
    finish = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert finish.choices[0].finish_reason == "stop"
    assert finish.model_extra["rlm"]["status"] == "completed"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_a_quiet_stream_gets_heartbeats_and_ends_with_done(served: ServeProcess):
    body = {"model": MODEL, "stream": True, "messages": ask(SLEEP),
            "rlm": {"budget": {"max_wall_time_s": 2}}}  # the cell sleeps until the wall-time budget cuts it
    lines = []
    with httpx.stream("POST", f"{served.url}/chat/completions", json=body, timeout=60) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            lines.append(line)
    comments = [line for line in lines if line.startswith(":")]
    assert comments, "no heartbeat in a stream silent for longer than --heartbeat-s"
    data = [line for line in lines if line.startswith("data:")]
    assert data[-1] == "data: [DONE]"


def test_a_litellm_client_gets_the_answer(served: ServeProcess):
    import litellm

    reply = litellm.completion(model=f"openai/{MODEL}", messages=ask(), api_base=served.url,
                               api_key="unused-on-loopback")
    assert reply.choices[0].message.content == "42"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens > 0


def test_sixteen_concurrent_async_clients_all_get_their_answer(served: ServeProcess):
    async def one(client: openai.AsyncOpenAI, index: int) -> Any:
        return await client.chat.completions.create(model=MODEL, messages=ask(context=f"document {index}"))

    async def many() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=served.url, api_key="x", max_retries=0, timeout=300) as client:
            return await asyncio.gather(*(one(client, index) for index in range(16)))

    replies = asyncio.run(many())
    assert [reply.choices[0].message.content for reply in replies] == ["42"] * 16
    assert len({reply.id for reply in replies}) == 16


def test_the_trace_is_served_as_jsonl_and_as_html(client: openai.OpenAI, served: ServeProcess):
    reply = client.chat.completions.create(model=MODEL, messages=ask())
    events = trace_events(served, reply.id)
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "final"
    page = httpx.get(f"{served.url}/rlm/traces/{reply.id}", params={"format": "html"}, timeout=30)
    assert page.status_code == 200 and page.text.lstrip().lower().startswith("<!doctype html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for bad in ("chatcmpl-" + "0" * 24, "..%2F..%2Fetc%2Fpasswd", "nothing"):
        missing = httpx.get(f"{served.url}/rlm/traces/{bad}", timeout=30)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "trace_not_found"


@pytest.mark.parametrize(("body", "param", "says"), [
    ({"rlm": {"api_base": "http://evil.example"}}, "rlm.api_base", "server's setting"),
    ({"rlm": {"api_key": "sk-mine-12345678"}}, "rlm.api_key", "server's setting"),
    ({"rlm": {"input_cost_per_token": 0}}, "rlm.input_cost_per_token", "server's setting"),
    ({"rlm": {"sandbox": "local"}}, "rlm.sandbox", "server's setting"),
    ({"rlm": {"allowed_sub_models": ["gpt-4o"]}}, "rlm.allowed_sub_models", "allows"),
    ({"rlm": {"budget": {"max_wall_time_s": 500}}}, "rlm.budget.max_wall_time_s", "cap of 120"),
    ({"rlm": {"budget": {"max_wall_time_s": None}}}, "rlm.budget.max_wall_time_s", "remove this server's cap"),
    ({"rlm": {"max_iterations": 50}}, "rlm.max_iterations", "cap of 4"),
    ({"rlm": {"max_iterations": "many"}}, "rlm.max_iterations", "integer"),
    ({"rlm": {"colour": "blue"}}, "rlm.colour", "unknown field"),
    ({"rlm": {"budget": {"max_sandwiches": 1}}}, "rlm.budget.max_sandwiches", "not a budget field"),
    ({"model": "gpt-4o"}, "model", "rlm/<model>"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     "messages[1].role", "last message"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]", "not supported"),
    ({"rlm": {"context": "twice"}}, "rlm.context", "twice"),
])
def test_a_bad_request_is_a_400_naming_the_field(client: openai.OpenAI, body: dict[str, Any], param: str, says: str):
    request = {"model": MODEL, "messages": ask(), **body}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**{k: v for k, v in request.items() if k in ("model", "messages")},
                                       extra_body={k: v for k, v in request.items() if k not in ("model", "messages")})
    error = caught.value.body
    assert error["param"] == param
    assert says in error["message"]
    assert caught.value.status_code == 400 and error["type"] == "invalid_request_error"
    assert "sk-mine-12345678" not in json.dumps(error)


def test_a_file_part_and_rlm_context_become_the_context(client: openai.OpenAI, served: ServeProcess):
    import base64

    data = "data:text/plain;base64," + base64.b64encode(b"file text here").decode()
    message = {"role": "user", "content": [{"type": "text", "text": QUESTION},
                                           {"type": "file", "file": {"file_data": data, "filename": "a.txt"}}]}
    reply = client.chat.completions.create(model=MODEL, messages=[message])
    cells = [e for e in trace_events(served, reply.id) if e["event"] == "cell"]
    assert "file text here" in cells[0]["stdout"]
    reply = client.chat.completions.create(model=MODEL, messages=ask(context=None),
                                           extra_body={"rlm": {"context": ["one", "two"]}})
    cells = [e for e in trace_events(served, reply.id) if e["event"] == "cell"]
    assert "['one', 'two']" in cells[0]["stdout"]


def test_a_body_that_is_not_json_is_a_400(served: ServeProcess):
    reply = httpx.post(f"{served.url}/chat/completions", content=b"{not json", timeout=30, headers=JSON)
    assert reply.status_code == 400
    assert "not JSON" in reply.json()["error"]["message"]


def test_the_served_process_writes_nothing_but_its_start_line(served: ServeProcess, tmp_path: Path):
    assert served.stdout() == ""
    assert "serving http://127.0.0.1:" in served.stderr()


def test_a_web_page_cannot_start_a_run_on_the_loopback_server(served: ServeProcess):
    """A page the user opens is a local program too: a form-style POST (no CORS preflight) is
    refused, and so is any request naming another host (a page that rebound its name to
    127.0.0.1), while a JSON request to a loopback name is served (the control)."""
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "q"}]})
    simple = httpx.post(f"{served.url}/chat/completions", content=body, timeout=30,
                        headers={"Content-Type": "text/plain"})
    assert simple.status_code == 415 and simple.json()["error"]["code"] == "unsupported_media_type"
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
        rebound = httpx.get(f"{served.url}/models", headers={"Host": host}, timeout=30)
        assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "host_not_allowed", host
    for host in ("localhost", f"127.0.0.1:{served.port}", "[::1]:1"):
        assert httpx.get(f"{served.url}/models", headers={"Host": host}, timeout=30).status_code == 200, host
