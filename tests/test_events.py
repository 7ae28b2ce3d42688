"""The event stream: typed, flat, ordered, complete enough to rebuild what the model saw,
valid against the shipped JSON Schema, readable back from a file cut short."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import litellm
import pytest

from rlm_sandbox.events import EVENT_TYPES, EventLog, build_tree, read_events
from rlm_sandbox.events import types as ev
from rlm_sandbox.events.jsonl import JsonlWriter
from rlm_sandbox.events.schema import generate_json_schema, shipped_json_schema
from rlm_sandbox.testing import Reply, ScriptedModel
from tests.rlm_helpers import make_rlm

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent

CHILD = "```repl\nFINAL(str(len(context)))\n```"


def every_kind_run(sandbox_factory: Any) -> Any:
    """One run that makes every kind of event a run can make: a batch, child runs, a tool,
    a restart, a nudge, a retried sub-call, a FINAL refused, a reply cut off, a history
    folded to fit a small context window, and a budget stop."""
    root = ScriptedModel([
        "Let me think first.",  # no code: a nudge
        "```repl\nanswers = llm_query_batched(['a', 'b', 'c'])\nprint(answers)\n```",
        "```repl\nsizes = rlm_query_batched([('count', 'xx'), ('count', 'yyy')])\nprint(sizes, lookup('k'))\n```",
        "```repl\nimport os\nos._exit(3)\n```",  # the kernel dies: a restart
        "```repl\nx = undefined_name\n```\nFINAL(premature)",  # a FINAL refused: its code failed
        Reply("```repl\nprint('kept ' * 300)\n```\n```repl\nrows = [1,", finish_reason="length"),  # cut off
        "```repl\nfor i in range(10):\n    llm_query('more')\n```",  # runs out of sub-calls
        "FINAL(best effort)",
    ])
    retried = iter([litellm.RateLimitError("slow down", llm_provider="scripted", model="m")])

    def sub_reply(messages: list[dict]) -> Any:
        if messages[0]["role"] == "system":  # a child run's root
            return CHILD
        return next(retried, None) or Reply("sub answer")

    sub = ScriptedModel(responder=sub_reply)
    return make_rlm(sandbox_factory, root, sub, max_depth=1, max_sub_calls=8, context_window=2400,
                    tools={"lookup": lambda key: f"value of {key}"}).run("q", "the context"), root


@pytest.fixture(scope="module")
def run_and_root(request: pytest.FixtureRequest) -> Any:
    return every_kind_run(request.getfixturevalue("sandbox_factory"))


@pytest.fixture(scope="module")
def sandbox_factory(sandbox_image: str, docker_client: Any) -> Any:  # module scope, for run_and_root
    from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL
    from rlm_sandbox.sandbox import DockerSandbox

    def factory(spec: Any, context: Any, host: Any) -> Any:
        return DockerSandbox(context, image=sandbox_image, client=docker_client, limits=spec.limits,
                             host=host, labels={TEST_SESSION_LABEL: TEST_SESSION})

    return factory


def test_a_real_run_makes_every_kind_and_each_validates_against_the_shipped_schema(run_and_root):
    result, _ = run_and_root
    kinds = {event.event for event in result.trajectory}
    # image_build happens only when the image is missing (tests/test_live.py builds one).
    expected = {cls.model_fields["event"].default for cls in EVENT_TYPES} - {"run_interrupted", "schema_rejected",
                                                                              "depth_fallback", "image_build",
                                                                              "stalled"}
    assert expected <= kinds, expected - kinds
    schema = shipped_json_schema()
    for event in result.trajectory:
        jsonschema.validate(json.loads(event.to_json()), schema)
    assert result.status == "budget_exhausted"


def test_the_shipped_schema_is_the_one_the_types_generate():
    assert shipped_json_schema() == json.loads(json.dumps(generate_json_schema())), \
        "event_schema.json is stale: run `python -m rlm_sandbox.events.schema`"


def test_one_flat_stream_numbered_per_run_on_the_root_clock(run_and_root):
    result, _ = run_and_root
    events = result.trajectory
    roots = build_tree(events)
    assert len(roots) == 1 and len(roots[0].children) == 2
    root_id = roots[0].run_id
    for node in roots[0].walk():
        assert [e.seq for e in node.events] == list(range(len(node.events)))
        assert node.events[0].event == "run_start" and node.final is not None
    for child in roots[0].children:
        assert child.parent_run_id == root_id and child.depth == 1
    starts = [e for e in events if e.event == "child_run_start"]
    assert {s.child_run_id for s in starts} == {c.run_id for c in roots[0].children}
    assert [s.batch_index for s in starts] == [0, 1] and all(s.iteration == 3 and s.cell == 0 for s in starts)
    assert [e.t for e in events] == sorted(e.t for e in events)  # one clock, emission order
    assert events[-1].event == "final" and events[-1].run_id == root_id


def test_what_the_root_model_saw_can_be_rebuilt_from_the_requests(run_and_root):
    result, root = run_and_root
    root_id = result.trajectory[0].run_id
    seen: list[dict] = []
    rebuilt = []
    for event in result.trajectory:
        if event.event == "model_request" and event.run_id == root_id and event.purpose != "sub_call":
            seen = seen[:event.base] + event.messages
            rebuilt.append(seen)
    assert rebuilt == root.calls  # every call, answer-now included, exactly as sent
    requests = [e for e in result.trajectory if e.event == "model_request" and e.role == "root"]
    assert requests[0].base == 0 and requests[0].messages[0]["role"] == "system"
    assert all(r.base > 0 for r in requests[1:])  # later requests carry only what was new
    assert requests[-1].purpose == "answer_now"


def test_sub_calls_link_requests_replies_and_the_cell_that_made_them(run_and_root):
    result, _ = run_and_root
    subs = [e for e in result.trajectory if e.event == "sub_call"]
    batch = [s for s in subs if s.function == "llm_query_batched"]
    assert sorted(s.batch_index for s in batch) == [0, 1, 2] and {s.iteration for s in batch} == {2}
    replies = {e.call_id: e for e in result.trajectory if e.event == "model_reply"}
    for s in batch:
        assert replies[s.call_id].text == "sub answer" and s.outcome == "ok"
    retried = [r for r in replies.values() if r.retries]
    assert len(retried) == 1 and "RateLimitError" in retried[0].retries[0].cause and retried[0].attempts == 2
    refused = [s for s in subs if s.outcome == "refused"]
    assert refused and "max_sub_calls" in refused[0].error
    tool = next(e for e in result.trajectory if e.event == "tool_call")
    assert (tool.tool, tool.args, tool.outcome, tool.iteration) == ("lookup", ["k"], "ok", 3)
    restart = next(e for e in result.trajectory if e.event == "sandbox_restart")
    assert restart.iteration == 4 and "exited with code 3" in restart.reason
    stop = next(e for e in result.trajectory if e.event == "budget_exhausted")
    assert stop.limit == "max_sub_calls" and stop.budget["sub_calls"]["limit"] == 8


def test_a_failed_root_call_is_an_event_with_its_outcome(sandbox_factory):
    root = ScriptedModel([litellm.BadRequestError("no such thing", llm_provider="scripted", model="m")])
    result = make_rlm(sandbox_factory, root).run("q", "ctx")
    reply = next(e for e in result.trajectory if e.event == "model_reply")
    assert reply.outcome == "error" and "no such thing" in reply.error and result.status == "error"


def test_secrets_are_masked_before_an_event_is_built(sandbox_factory, monkeypatch):
    secret = "sk-proj-EVENTSECRET0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    seen: list[Any] = []
    root = ScriptedModel([f"my key is {secret}\n```repl\nFINAL('ok')\n```"])
    result = make_rlm(sandbox_factory, root, on_event=seen.append).run("q", "ctx")
    assert seen and all(secret not in event.to_json() for event in seen)
    assert any("[secret OPENAI_API_KEY]" in (getattr(e, "text", None) or "") for e in result.trajectory)


def test_a_listener_that_raises_is_reported_once_and_detached():
    stderr, calls, later = io.StringIO(), [], []

    def broken(event: Any) -> None:
        calls.append(event)
        raise ValueError("display broke")

    log = EventLog([broken, later.append], stderr=stderr)
    recorder = log.recorder()
    for n in range(3):
        recorder.emit(ev.Nudge, count=n + 1)
    assert len(calls) == 1 and [e.count for e in later] == [1, 2, 3]  # the others still get every event
    assert stderr.getvalue().count("display broke") == 1 and "detached" in stderr.getvalue()


def test_a_trace_cut_short_is_read_back_and_said_to_be_partial(tmp_path):
    log = EventLog()
    path = tmp_path / "t.jsonl"
    writer = JsonlWriter(path)
    log.add_listener(writer)
    recorder = log.recorder()
    recorder.emit(ev.RunStart, query="q", model="m", sub_model="m", context_type="str", context_length=1)
    recorder.emit(ev.Iteration, iteration=1, model="m")
    writer.close()
    text = path.read_text()
    path.write_text(text + text.splitlines()[1][:25])  # a write cut mid-line, as by a kill
    trace = read_events(path)
    assert [e.event for e in trace.events] == ["run_start", "iteration"]
    assert trace.partial and trace.problems == ["the last line was cut short (skipped)"]
    (tmp_path / "junk.jsonl").write_text("hello\nworld\n")
    with pytest.raises(ValueError, match="not an rlm-sandbox trace"):
        read_events(tmp_path / "junk.jsonl")


def test_every_kind_and_field_is_documented():
    doc = (REPO / "docs" / "EVENTS.md").read_text()
    for cls in EVENT_TYPES:
        kind = cls.model_fields["event"].default
        section = re.search(rf"^### `{kind}`\n(.*?)(?=^### |\Z)", doc, re.M | re.S)
        assert section, f"docs/EVENTS.md has no section for {kind}"
        for name in cls.model_fields:
            if name not in ev.EventBase.model_fields and name != "event":
                assert f"`{name}`" in section.group(1), f"{kind}.{name} is not documented"
    for name in ("schema", "run_id", "parent_run_id", "depth", "seq", "ts", "t"):
        assert f"`{name}`" in doc
