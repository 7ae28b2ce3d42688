"""DSPy's own RLM, with DSPy's own scripted DummyLM, running its code through SandboxInterpreter
in our container; and every kind of error DSPy's CodeInterpreter protocol defines."""

from __future__ import annotations

import os
import platform
import threading
import uuid
from typing import Any, Callable, Iterator

import dspy  # the dspy extra: scripts/setup.sh installs it, so where it is missing these tests fail
import pytest
from dspy.primitives.code_interpreter import (
    CodeExecutionError,
    CodeInterpreter,
    CodeInterpreterError,
    FinalOutput,
)
from dspy.utils.dummies import DummyLM

from rlm_sandbox.integrations.dspy import SandboxInterpreter
from rlm_sandbox.sandbox import Sandbox, SandboxPool, SandboxSpec, register_provider
from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL

pytestmark = pytest.mark.docker


@pytest.fixture
def make_interpreter(sandbox_image: str) -> Iterator[Callable[..., SandboxInterpreter]]:
    """SandboxInterpreters on the test image, labelled for the leak check, shut down after."""
    made: list[SandboxInterpreter] = []

    def make(**options: Any) -> SandboxInterpreter:
        if "pool" not in options and "spec" not in options:
            options.setdefault("image", sandbox_image)
            options["labels"] = {TEST_SESSION_LABEL: TEST_SESSION, **options.get("labels", {})}
        interpreter = SandboxInterpreter(**options)
        made.append(interpreter)
        return interpreter

    yield make
    for interpreter in made:
        interpreter.shutdown()


def containers_labelled(docker_client: Any, label: str) -> list[Any]:
    return docker_client.api.containers(all=True, filters={"label": label})


# -- dspy.RLM end to end ------------------------------------------------------------------

def test_dspy_rlm_runs_its_code_in_our_container_and_calls_tools_on_the_host(make_interpreter, docker_client):
    tool_calls: list[tuple[str, int]] = []

    def lookup(key: str) -> str:
        """Look a key up in the host's table."""
        tool_calls.append((key, os.getpid()))
        return f"value-{key}"

    made: list[SandboxInterpreter] = []

    def factory() -> SandboxInterpreter:
        interpreter = make_interpreter(labels={"org.rlm-sandbox.test-case": "dspy-e2e"})
        interpreter.tools["container_id"] = lambda: interpreter.container_id  # the host's view
        made.append(interpreter)
        return interpreter

    lm = DummyLM([
        {"reasoning": "Where am I?", "code": "import os, socket\n"
                                            "print(socket.gethostname(), container_id()[:12], os.getuid())\n"
                                            "print(lookup('a'), lookup(key='b'), len(context))"},
        {"reasoning": "Count the words and finish.", "code": "SUBMIT(answer=question.upper(), "
                                                             "words=len(context.split()))"},
    ])
    rlm = dspy.RLM("context, question -> answer: str, words: int", max_iters=4, tools=[lookup],
                   interpreter_factory=factory)
    with dspy.context(lm=lm):
        prediction = rlm(context="one two three four", question="how many?")
    assert (prediction.answer, prediction.words) == ("HOW MANY?", 4)
    first_output = prediction.trajectory[0]["output"]
    hostname, host_view, uid = first_output.splitlines()[0].split()
    assert hostname == host_view and uid == "65534", first_output  # the container's hostname is its id
    assert first_output.splitlines()[1] == "value-a value-b 18"
    assert tool_calls == [("a", os.getpid()), ("b", os.getpid())]  # on the host, in this process
    assert made and made[0].sandbox is None  # DSPy shut it down
    assert not containers_labelled(docker_client, "org.rlm-sandbox.test-case=dspy-e2e")


def test_dspy_configure_makes_it_every_rlms_interpreter(sandbox_image):
    factory = SandboxInterpreter.factory(image=sandbox_image, labels={TEST_SESSION_LABEL: TEST_SESSION})
    assert factory.execution_instructions == SandboxInterpreter.execution_instructions
    lm = DummyLM([{"reasoning": "r", "code": "import socket\nSUBMIT(len(socket.gethostname()))"}])
    with dspy.context(lm=lm, interpreter_factory=factory):
        prediction = dspy.RLM("question -> answer: int", max_iters=2)(question="q")
    assert prediction.answer == 12  # a container id's short form
    assert "locked-down container" in str(dspy.RLM("question -> answer", interpreter_factory=factory)
                                          .generate_action.signature.instructions)


def test_the_sandbox_dspy_facade_builds_predictors_that_run_on_the_host(make_interpreter):
    code = ("class Pipeline(dspy.Module):\n"
            "    def __init__(self):\n"
            "        self.ask = dspy.Predict('question -> reply')\n"
            "pipeline = Pipeline()\n"
            "SUBMIT(answer=pipeline.ask(question='hello?').reply)")
    lm = DummyLM([{"reasoning": "use a predictor", "code": code}, {"reply": "hi from the host"}])
    with dspy.context(lm=lm):
        prediction = dspy.RLM("question -> answer", max_iters=2, interpreter_factory=make_interpreter)(question="q")
    assert prediction.answer == "hi from the host"


def test_program_of_thought_runs_its_code_in_the_container_too(make_interpreter):
    code = "```python\nimport socket\nSUBMIT(len(socket.gethostname()) * 3 + 6)\n```"
    lm = DummyLM([{"reasoning": "compute", "generated_code": code}, {"reasoning": "read it", "answer": "42"}])
    with dspy.context(lm=lm):
        prediction = dspy.ProgramOfThought("question -> answer", interpreter_factory=make_interpreter)(question="q")
    assert prediction.answer == "42"
    assert '[[ ## code_output ## ]]\n{"output": 42}' in lm.history[-1]["messages"][-1]["content"]


# -- the protocol, directly ---------------------------------------------------------------

def test_it_is_a_code_interpreter_with_state_kept_across_calls(make_interpreter):
    interpreter = make_interpreter()
    assert isinstance(interpreter, CodeInterpreter)
    interpreter.start()
    container = interpreter.container_id
    interpreter.start()  # idempotent: the same container
    assert container and interpreter.container_id == container
    assert interpreter.execute("x = 20") is None  # no output: None
    assert interpreter.execute("print(x + y)", variables={"y": 22}) == "42\n"
    assert interpreter.execute("x * 2") == "40\n"  # an expression shows its value


def test_submit_returns_final_output_with_the_declared_fields(make_interpreter):
    interpreter = make_interpreter(output_fields=[{"name": "answer", "type": "str"}, {"name": "count", "type": "int"}])
    assert interpreter.execute("SUBMIT('done', 3)\nprint('not reached')") == FinalOutput({"answer": "done",
                                                                                         "count": 3})
    assert interpreter.execute("SUBMIT(count={1, 2}, answer=None)") == FinalOutput({"answer": None,
                                                                                   "count": "{1, 2}"})
    with pytest.raises(CodeExecutionError, match="missing 1 required positional argument: 'count'"):
        interpreter.execute("SUBMIT('only one')")
    bare = make_interpreter()  # no output fields: DSPy's single-output SUBMIT
    assert bare.execute("SUBMIT([1, 2])") == FinalOutput({"output": [1, 2]})


def test_tools_may_change_between_calls(make_interpreter):
    interpreter = make_interpreter(tools={"double": lambda x: 2 * x})
    assert interpreter.execute("print(double(21))") == "42\n"
    interpreter.tools["double"] = lambda x: 3 * x  # replaced: used at once
    interpreter.tools["shout"] = lambda text: text.upper()  # added: defined before the next cell
    assert interpreter.execute("print(double(2), shout(text='hi'))") == "6 HI\n"
    del interpreter.tools["shout"]
    with pytest.raises(CodeExecutionError, match="NameError"):
        interpreter.execute("shout('gone')")


def test_tools_run_in_the_callers_context_and_may_be_async(make_interpreter):
    seen: list[Any] = []

    async def fetch(key: str) -> dict[str, Any]:
        seen.append(dspy.settings.lm)
        return {"key": key, "thread": threading.current_thread().name}

    interpreter = make_interpreter(tools={"fetch": fetch})
    marker = DummyLM([])
    with dspy.context(lm=marker):
        assert interpreter.execute("print(fetch('k')['key'])") == "k\n"
    assert seen == [marker]


def test_a_large_variable_is_sent_once_and_kept(make_interpreter):
    interpreter = make_interpreter()
    big = "é" * 3_000_000 + "\ud800"  # not valid UTF-8 alone: travels raw all the same
    for _ in range(3):  # DSPy sends its inputs before every cell
        assert interpreter.execute("print(len(document), document[-1] == '\\ud800', n)",
                                   variables={"document": big, "n": 1}) == "3000001 True 1\n"
    assert interpreter.sandbox.assigned_bytes < 2 * len(big.encode("utf-8", "surrogatepass"))


# -- errors -------------------------------------------------------------------------------

def test_invalid_code_raises_syntax_error(make_interpreter):
    interpreter = make_interpreter()
    with pytest.raises(SyntaxError, match="line 2"):
        interpreter.execute("x = 1\ndef (:")
    assert interpreter.execute("print('still here')") == "still here\n"


def test_an_exception_in_the_code_is_a_code_execution_error_with_its_line(make_interpreter):
    interpreter = make_interpreter()
    with pytest.raises(CodeExecutionError) as raised:
        interpreter.execute("x = 1\ny = x / 0")
    message = str(raised.value)
    assert message.startswith("ZeroDivisionError: division by zero (line 2)") and "y = x / 0" in message
    assert interpreter.execute("print(x)") == "1\n"  # the session goes on


def test_an_exception_in_a_tool_is_a_code_execution_error(make_interpreter):
    def lookup(key: str) -> str:
        raise KeyError(f"no {key} here")

    interpreter = make_interpreter(tools={"lookup": lookup})
    with pytest.raises(CodeExecutionError, match=r"KeyError: .no k here. \(line 1\)"):
        interpreter.execute("lookup('k')")
    assert interpreter.execute("print('ok')") == "ok\n"


def test_a_secret_in_a_tools_error_is_masked_before_the_model_reads_it(make_interpreter, monkeypatch):
    monkeypatch.setenv("EXAMPLE_PROVIDER_API_KEY", "sk-example-0123456789abcdef")

    def ask(prompt: str) -> str:
        raise PermissionError("401 for key sk-example-0123456789abcdef")

    interpreter = make_interpreter(tools={"ask": ask})
    with pytest.raises(CodeExecutionError) as raised:
        interpreter.execute("ask('hi')")
    assert "sk-example" not in str(raised.value)
    assert "PermissionError: 401 for key [secret EXAMPLE_PROVIDER_API_KEY]" in str(raised.value)


def test_a_cell_past_its_timeout_is_interrupted_and_the_session_goes_on(make_interpreter):
    interpreter = make_interpreter(limits={"cell_timeout_s": 1, "interrupt_grace_s": 1})
    interpreter.execute("kept = 'yes'")
    with pytest.raises(CodeExecutionError, match="CellTimeout"):
        interpreter.execute("while True:\n    pass")
    assert interpreter.execute("print(kept)") == "yes\n"


def test_a_dead_container_ends_the_interpreter_and_it_says_so(make_interpreter, docker_client):
    label = f"org.rlm-sandbox.test-case={uuid.uuid4().hex}"
    interpreter = make_interpreter(labels=dict([label.split("=")]))
    interpreter.execute("state = 1")
    with pytest.raises(CodeInterpreterError, match="the kernel exited with code 3.*create a new one") as raised:
        interpreter.execute("import os\nos._exit(3)")
    assert not isinstance(raised.value, CodeExecutionError)
    with pytest.raises(CodeInterpreterError, match="finished"):
        interpreter.execute("print(state)")  # never a silent new session
    with pytest.raises(CodeInterpreterError, match="finished"):
        interpreter.start()
    assert not containers_labelled(docker_client, label)


def test_bad_input_is_refused_with_what_to_do(make_interpreter):
    interpreter = make_interpreter(tools={"tool": len})
    with pytest.raises(CodeInterpreterError, match="variable names"):
        interpreter.execute("pass", variables={"tool": 1})
    with pytest.raises(CodeInterpreterError, match="variable names"):
        interpreter.execute("pass", variables={"not valid": 1})
    with pytest.raises(CodeInterpreterError, match="cannot cross into the sandbox"):
        interpreter.execute("pass", variables={"x": object()})
    with pytest.raises(TypeError, match="through spec= or the pool"):
        SandboxInterpreter(runtime="runsc", pool=object())  # type: ignore[arg-type]  # the wrong type on purpose


def test_shutdown_leaves_nothing_behind(make_interpreter, docker_client):
    label = f"org.rlm-sandbox.test-case={uuid.uuid4().hex}"
    interpreter = make_interpreter(labels=dict([label.split("=")]))
    interpreter.execute("open('/tmp/scratch', 'w').write('x')")
    socket_dir = interpreter.sandbox.socket_dir
    assert len(containers_labelled(docker_client, label)) == 1 and socket_dir.exists()
    interpreter.shutdown()
    interpreter.shutdown()  # twice is fine
    assert not containers_labelled(docker_client, label) and not socket_dir.exists()
    with pytest.raises(CodeInterpreterError, match="shut down"):
        interpreter.execute("pass")


# -- hostile cells ------------------------------------------------------------------------

FORK_FLOOD = "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(600)\n"


def test_a_fork_flood_is_stopped_by_the_pids_limit(make_interpreter):
    interpreter = make_interpreter(limits={"pids": 32, "cell_timeout_s": 30})
    with pytest.raises(CodeExecutionError, match="BlockingIOError"):
        interpreter.execute(FORK_FLOOD)
    assert interpreter.execute("print('alive')") == "alive\n"
    assert make_interpreter().execute("print('next one')") == "next one\n"


def test_a_memory_bomb_is_contained_and_the_next_interpreter_is_healthy(make_interpreter):
    interpreter = make_interpreter(limits={"memory": "128m", "cell_timeout_s": 30})
    with pytest.raises(CodeInterpreterError) as raised:  # OOM-killed, or MemoryError in the cell
        interpreter.execute("hog = b'x' * 10**9\nprint(len(hog))")
    if isinstance(raised.value, CodeExecutionError):
        assert "MemoryError" in str(raised.value)
    else:
        assert "out of memory" in str(raised.value)
        with pytest.raises(CodeInterpreterError, match="finished"):
            interpreter.execute("pass")
    assert make_interpreter().execute("print('next one')") == "next one\n"


# -- where the container comes from -------------------------------------------------------

def test_a_warm_pool_hands_out_started_containers(sandbox_image, make_interpreter, docker_client):
    with SandboxPool(size=1, image=sandbox_image, client=docker_client,
                     labels={TEST_SESSION_LABEL: TEST_SESSION}) as pool:
        interpreter = make_interpreter(pool=pool)
        assert interpreter.execute("print('pooled')") == "pooled\n"
        assert pool.cold_takes == 0


def test_runtime_runsc_runs_it_under_gvisor(make_interpreter, docker_client):
    if "runsc" not in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("the Docker daemon has no runsc runtime (scripts/setup.sh registers it where Debian has it)")
    interpreter = make_interpreter(runtime="runsc")
    release = interpreter.execute("import platform\nprint(platform.release())").strip()
    assert release != platform.release()  # gVisor answers with its own kernel


class ForeignSandbox(Sandbox):
    """A third party's provider whose sandboxes do not run our kernel (no assign())."""

    closed = False

    def start(self) -> "ForeignSandbox":
        return self

    def load(self, context: Any = None, **kwargs: Any) -> "ForeignSandbox":
        return self

    def exec(self, code: str, **kwargs: Any) -> Any:
        raise AssertionError("never reached")

    def get(self, name: str, **kwargs: Any) -> Any:
        raise AssertionError("never reached")

    def reset(self) -> None:
        pass

    def close(self) -> None:
        ForeignSandbox.closed = True


def test_a_provider_without_our_kernel_is_refused_with_what_to_use():
    register_provider("foreign_for_dspy_test", lambda spec, context, host: ForeignSandbox(),
                      replace=True)
    interpreter = SandboxInterpreter(spec=SandboxSpec(provider="foreign_for_dspy_test"))
    with pytest.raises(CodeInterpreterError, match="has no assign.*docker or local provider"):
        interpreter.execute("print(1)")
    assert ForeignSandbox.closed and interpreter.sandbox is None
