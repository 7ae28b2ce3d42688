"""A run's life from start to end (issue 17, items 11 and 12): a run whose sandbox cannot start
pays for nothing and still reports, and an interrupt at any moment ends it cleanly.

Everything here is real: `rlm-sandbox run` in a subprocess, sent a real SIGINT; an
OpenAI-compatible server on 127.0.0.1 that litellm's own client calls; real containers.
The moments of interruption are reached through barriers (the model server holding a
request, a host tool the cell calls, events in the trace file), never by sleeping until
something has probably happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.errors import ImageError
from rlm_sandbox.models import LLMClient
from rlm_sandbox.testing import OpenAICompatibleServer, ScriptedModel
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
OWNER_PID = "org.rlm-sandbox.owner-pid"
BARRIER_S = 120.0  # how long a barrier may take before the test gives up (a hang, not a timing)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "default",
                "RLM_SANDBOX_API_KEY": "sk-test", **extra})
    return env


def _events(trace: Path) -> list[dict[str, Any]]:
    if not trace.exists():
        return []
    lines = trace.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# -- item 11: a run that cannot run does not pay ---------------------------------------------

@pytest.mark.parametrize("broken", ["docker_unreachable", "image_missing"])
def test_a_run_whose_sandbox_cannot_start_bills_no_model_call(broken, tmp_path, sandbox_image):
    context, trace = tmp_path / "c.txt", tmp_path / "run.jsonl"
    context.write_text("some context")
    extra: dict[str, str] = {}
    args: list[str] = []
    if broken == "docker_unreachable":  # a socket path nobody listens on
        extra["DOCKER_HOST"] = f"unix://{tmp_path}/nobody-listens.sock"
    else:
        args = ["--set", "image=rlm-sandbox:no-such-image-i17"]
    with OpenAICompatibleServer(lambda messages: "```repl\nprint(1)\n```") as server:
        done = subprocess.run([sys.executable, "-m", "rlm_sandbox", "run", "-q", "what is it?", "-f", str(context),
                               "-m", "openai/x", "--json", "--trace", str(trace), *args],
                              env=_env(RLM_SANDBOX_API_BASE=server.url, **extra), cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        billed = len(server.requests)
    assert billed == 0, "a model call was made for a run whose sandbox could not start"
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "error" and result["iterations"] in (0, 1) and result["total_input_tokens"] == 0
    needle = "nobody-listens.sock" if broken == "docker_unreachable" else "no-such-image-i17"
    assert needle in result["error"] and needle in done.stderr
    events = _events(trace)
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "final"
    assert events[-1]["status"] == "error" and needle in events[-1]["error"]
    assert not [e for e in events if e["event"] == "model_request"]
    if broken == "docker_unreachable":
        assert "--sandbox local" in done.stderr  # the hint of what to do is still there


def test_the_api_raises_the_start_error_with_the_result_and_bills_nothing(sandbox_factory):
    """The library keeps raising a sandbox that cannot start (model and budget trouble are in
    the result; a missing sandbox is not), but nothing was billed, the trace ends with its
    ``final`` event, and the exception carries the run's result."""
    def broken_factory(spec, context, host):
        sandbox = sandbox_factory(spec, context, host)
        sandbox.image = "rlm-sandbox:no-such-image-i17"
        return sandbox

    seen: list[Any] = []
    with ScriptedModel(["```repl\nprint(1)\n```", "FINAL(1)"]) as root:
        rlm = RLM(model=root.model, sandbox_factory=broken_factory, on_event=seen.append)
        with pytest.raises(ImageError, match="no-such-image-i17") as raised:
            rlm.run("q", "ctx")
        assert root.call_count == 0
    result = raised.value.result
    assert result is not None and result.status == "error" and "no-such-image-i17" in result.error
    assert result.usage == [] or all(use.attempts == 0 for use in result.usage)
    assert seen[-1].event == "final" and seen[-1].status == "error"


# -- item 12: every interrupt ends clean --------------------------------------------------------

SUB_PROMPT = "sub-call please"
SLEEPY_CELL = "```repl\nimport time\nprint('sleeping')\ntime.sleep(60)\n```"


@dataclass
class _Script:
    """The model of one interrupted run: a sub-call, then a long cell; each request can be held."""

    hold: str  # which request is held until the test lets it go: "root1", "sub", "root2" or ""
    arrived: dict[str, threading.Event] = field(default_factory=lambda: {
        name: threading.Event() for name in ("root1", "sub", "root2")})
    release: threading.Event = field(default_factory=threading.Event)
    roots: int = 0

    def __call__(self, messages: list[dict]) -> str:
        if messages[-1]["content"] == SUB_PROMPT:
            name, reply = "sub", "the sub answer"
        else:
            self.roots += 1
            name = f"root{min(self.roots, 2)}"
            reply = f"```repl\nprint(llm_query({SUB_PROMPT!r}))\n```" if self.roots == 1 else SLEEPY_CELL
        self.arrived[name].set()
        if name == self.hold:
            self.release.wait(BARRIER_S)
        return reply


#: (where the interrupt lands, the barrier that reaches it, seconds after the barrier): the
#: offsets spread the interrupt around each barrier's moment, they synchronise nothing.
MOMENTS: list[tuple[str, str, float]] = [
    *[("setup", "trace_opened", d) for d in (0.0, 0.3, 0.8, 1.5, 2.5)],
    *[("sandbox start", "run_start", d) for d in (0.0, 0.05, 0.15, 0.3, 0.6)],
    *[("root call", "root1", d) for d in (0.0, 0.1, 0.3)],
    *[("reply in hand", "root1_answered", d) for d in (0.0, 0.01, 0.03, 0.1)],
    *[("sub-call", "sub", d) for d in (0.0, 0.1, 0.3)],
    *[("sub answered", "sub_answered", d) for d in (0.0, 0.02, 0.05)],
    *[("second root call", "root2", d) for d in (0.0, 0.2)],
    *[("cell", "cell", d) for d in (0.0, 0.05, 0.2, 0.5, 1.0)],
]
HELD = {"root1": "root1", "sub": "sub", "root2": "root2"}


def _interrupt_one(tmp_path: Path, index: int, barrier: str, delay: float) -> dict[str, Any]:
    """One `rlm-sandbox run`, sent SIGINT at a moment; what it did, for the assertions."""
    work = tmp_path / f"run{index}"
    work.mkdir()
    context, trace = work / "c.txt", work / "run.jsonl"
    context.write_text("some context")
    script = _Script(hold=HELD.get(barrier, ""))
    with OpenAICompatibleServer(script) as server:
        proc = subprocess.Popen([sys.executable, "-m", "rlm_sandbox", "run", "-q", "what is it?", "-f", str(context),
                                 "-m", "openai/x", "--trace", str(trace)],
                                env=_env(RLM_SANDBOX_API_BASE=server.url), cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            kinds = lambda: [e["event"] for e in _events(trace)]  # noqa: E731 - one line
            reached: dict[str, Callable[[], bool]] = {
                "trace_opened": trace.exists,
                "run_start": lambda: "run_start" in kinds(),
                "root1": script.arrived["root1"].is_set,
                "root1_answered": lambda: "model_reply" in kinds(),
                "sub": script.arrived["sub"].is_set,
                "sub_answered": lambda: "sub_call" in kinds(),
                "root2": script.arrived["root2"].is_set,
                "cell": lambda: script.arrived["root2"].is_set() and kinds().count("model_reply") >= 3,
            }
            wait_until(reached[barrier], BARRIER_S, f"the run reaching {barrier}", proc=proc)
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=BARRIER_S)
        finally:
            script.release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return {"returncode": proc.returncode, "stdout": out, "stderr": err, "events": _events(trace),
            "pid": proc.pid, "trace": str(trace)}


def _check_interrupted(outcome: dict[str, Any], docker_client: Any) -> list[str]:
    """Every property an interrupted run must have; the ones it lacks."""
    problems = []
    err_lines = [line for line in outcome["stderr"].splitlines() if line.strip()]
    if outcome["returncode"] != 130:
        problems.append(f"exit {outcome['returncode']}")
    if err_lines != [f"rlm-sandbox: interrupted; the trajectory so far is in {outcome['trace']}"]:
        problems.append(f"stderr {outcome['stderr'][-3000:]!r}")
    events = outcome["events"]
    if not events or events[-1]["event"] != "run_interrupted":
        problems.append(f"trace ends with {[e['event'] for e in events[-3:]]}")
    started = {e["run_id"] for e in events if e["event"] == "run_start"}
    interrupted = {e["run_id"] for e in events if e["event"] == "run_interrupted"}
    closed = {e["run_id"] for e in events if e["event"] == "sandbox_close"}
    if started - interrupted:
        problems.append("a run that started has no run_interrupted")
    if started - closed:
        problems.append("a run that started has no sandbox_close")
    if any(e["event"] == "final" for e in events):
        problems.append("an interrupted run has a final event")
    left = docker_client.api.containers(all=True, filters={"label": f"{OWNER_PID}={outcome['pid']}"})
    if left:
        problems.append(f"{len(left)} container(s) left")
        for container in left:
            docker_client.api.remove_container(container["Id"], force=True)
    return problems


def test_ctrl_c_at_any_moment_of_a_run_ends_it_clean(tmp_path, docker_client, sandbox_image):
    """30+ interrupts spread over setup, the sandbox's start, model calls, a sub-call and a
    cell: each exits 130 with one line, its trace ends with run_interrupted after the
    sandbox's close, no container is left, and nothing else is printed (no traceback, no
    "Task exception was never retrieved", no RuntimeWarning)."""
    with ThreadPoolExecutor(3) as pool:
        futures = {pool.submit(_interrupt_one, tmp_path, index, barrier, delay): f"{where} +{delay}s"
                   for index, (where, barrier, delay) in enumerate(MOMENTS)}
        failures = {}
        for future, where in futures.items():
            problems = _check_interrupted(future.result(), docker_client)
            if problems:
                failures[where] = problems
    assert len(MOMENTS) >= 30
    assert not failures, json.dumps(failures, indent=1)


# -- cancelling arun (a server's client went away) is an interrupt ------------------------------

MOMENT_REPLIES = {  # the root's first reply, per moment; "ready" is a host tool the cell calls
    "sandbox start": "FINAL(too late)",
    "model call": "FINAL(too late)",
    "cell": "```repl\nready()\nimport time\ntime.sleep(60)\n```",
    "sub-call": "```repl\nprint(llm_query('sub'))\n```",
    "child run": "```repl\nprint(rlm_query('child question', 'child context'))\n```",
}


@pytest.mark.parametrize("moment", list(MOMENT_REPLIES))
def test_cancelling_arun_ends_the_run_like_an_interrupt(moment, sandbox_factory, docker_client):
    """What a server does when its client disconnects: the run's task is cancelled. The
    container(s) are removed before the cancel completes, and the trace ends with
    run_interrupted, every run's sandbox_close before it."""
    ready, release = threading.Event(), threading.Event()

    def held(answer: str) -> Callable[[list[dict]], str]:
        def reply(messages: list[dict]) -> str:
            ready.set()
            release.wait(BARRIER_S)
            return answer
        return reply

    def ready_tool() -> str:
        """Tells the test the cell is running."""
        ready.set()
        return "ok"

    first = held("FINAL(too late)") if moment == "model call" else MOMENT_REPLIES[moment]
    # the child run's root (the sub-model) is held: the child's sandbox is up by then
    sub = ScriptedModel(responder=held("FINAL(sub)") if moment in ("sub-call", "child run") else lambda m: "x")
    root = ScriptedModel([first, "FINAL(never)"])
    events: list[Any] = []

    def listen(event: Any) -> None:
        events.append(event)
        if moment == "sandbox start" and event.event == "run_start":
            ready.set()

    rlm = RLM(model=root.model, sub_model=sub.model, sandbox_factory=sandbox_factory, tools={"ready": ready_tool},
              llm=LLMClient(backoff_initial_s=0.01, backoff_max_s=0.05), on_event=listen)

    async def main() -> None:
        task = asyncio.ensure_future(rlm.arun("q", "ctx"))
        reached = await asyncio.get_running_loop().run_in_executor(None, ready.wait, BARRIER_S)
        assert reached, f"the run never reached the {moment}"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, BARRIER_S)

    try:
        asyncio.run(main())
    finally:
        release.set()
    kinds = [event.event for event in events]
    root_id = events[0].run_id
    assert kinds[-1] == "run_interrupted" and events[-1].run_id == root_id, kinds
    started = {e.run_id for e in events if e.event == "run_start"}
    assert started == {e.run_id for e in events if e.event == "run_interrupted"}, kinds
    assert started == {e.run_id for e in events if e.event == "sandbox_close"}, kinds
    assert "final" not in kinds
    if moment == "child run":
        assert len(started) == 2
    assert docker_client.api.containers(all=True, filters={"label": f"{OWNER_PID}={os.getpid()}"}) == []
    root.close()
    sub.close()


@pytest.mark.loop
def test_a_batch_that_arrives_as_the_run_ends_leaves_no_coroutine_never_awaited():
    """``--set max_wall_time_s=2.5`` printed "RuntimeWarning: coroutine ... was never awaited":
    a batch's sub-call coroutines were made before the run's loop took the batch, and dropped
    when the run ended first."""
    import gc
    import warnings

    from rlm_sandbox.config import Settings
    from rlm_sandbox.core.broker import Broker
    from rlm_sandbox.core.budget import Ledger
    from rlm_sandbox.core.metering import Meter
    from rlm_sandbox.events.stream import EventLog

    settings = Settings.from_options(model="scripted/none")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        broker = Broker(meter=Meter(Ledger(settings.budget()), LLMClient(), settings), events=EventLog().recorder(),
                        sub_model="scripted/none", loop=loop)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result()
        loop.call_soon_threadsafe(broker.close)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for batch in (broker.llm_query_batched, broker.rlm_query_batched):
                with pytest.raises(RuntimeError, match="the run has ended"):
                    batch(["a", "b"])
            gc.collect()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert not [str(w.message) for w in caught if "never awaited" in str(w.message)]
