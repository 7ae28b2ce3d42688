"""inspect_ai's own ``eval()`` running tasks in ``rlm-sandbox``, and ``rlm_solver`` answering them.

Everything is inspect's real code path: the sandbox is found by name through our entry
point, models are inspect's ``mockllm`` (scripted tool calls) or our scripted litellm
provider for the RLM, and each eval must leave no container behind.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai", reason="the inspect extra is not installed: pip install -e '.[inspect]'")

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessageTool, ModelOutput, get_model
from inspect_ai.scorer import includes
from inspect_ai.solver import Generate, TaskState, generate, solver, use_tools
from inspect_ai.tool import bash, python
from inspect_ai.util import SandboxEnvironmentSpec, sandbox

from conftest import TEST_SESSION, TEST_SESSION_LABEL
from rlm_sandbox.integrations.inspect_sandbox import (
    LABEL_INSPECT,
    LABEL_TASK,
    RlmSandboxConfig,
    remove_containers,
)
from rlm_sandbox.integrations.inspect_solver import METADATA_KEY, TRACE_KEY, rlm_solver
from rlm_sandbox.testing import ScriptedModel

pytestmark = pytest.mark.docker

# inspect counts tokens of tool conversations with tiktoken's o200k_base, which tiktoken
# downloads; offline, it reads the copy litellm ships (the same file, under its cache name).
_LITELLM = importlib.util.find_spec("litellm")
if _LITELLM and _LITELLM.submodule_search_locations:
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(list(_LITELLM.submodule_search_locations)[0])
                                                    / "litellm_core_utils" / "tokenizers"))

SPEC = RlmSandboxConfig(labels=((TEST_SESSION_LABEL, TEST_SESSION),))


def _ours(docker_client: Any) -> list[dict[str, Any]]:
    return docker_client.api.containers(
        all=True, filters={"label": [f"{LABEL_INSPECT}=1", f"{TEST_SESSION_LABEL}={TEST_SESSION}"]})


def _run(task: Task, tmp_path: Path, model: Any = "mockllm/model") -> Any:
    [log] = eval(task, model=model, display="none", log_dir=str(tmp_path / "logs"))
    assert log.status == "success", log.error
    return log


@solver
def _probe() -> Any:
    """Runs commands in the sample's sandbox and keeps what they print."""
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        box = sandbox()
        await box.write_file("note.txt", "line one\r\nline two\n")
        identity = await box.exec(["sh", "-c", "id -u; pwd; cat note.txt; cat /proc/self/cgroup"])
        network = await box.exec(["python3", "-c", "import socket; socket.create_connection(('1.1.1.1', 53), 2)"])
        state.metadata["probe"] = {"stdout": identity.stdout, "network_failed": not network.success,
                                   "note": await box.read_file("note.txt")}
        state.output = ModelOutput.from_content("probe", identity.stdout)
        return state
    return solve


def test_a_task_runs_in_our_hardened_container_found_by_name(tmp_path: Path, docker_client: Any,
                                                             sandbox_image: str) -> None:
    seen: list[list[dict[str, Any]]] = []

    @solver
    def _count() -> Any:
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            seen.append(_ours(docker_client))
            return state
        return solve

    task = Task(dataset=[Sample(input="who am I?", target="65534")], solver=[_count(), _probe()],
                scorer=includes(), sandbox=SandboxEnvironmentSpec("rlm-sandbox", SPEC), name="probe-task")
    log = _run(task, tmp_path)
    [sample] = log.samples
    probe = sample.metadata["probe"]
    assert probe["stdout"].splitlines()[:2] == ["65534", "/tmp/work"]
    assert probe["note"] == "line one\r\nline two\n"  # CRLF kept
    assert probe["network_failed"]
    assert sample.scores["includes"].value == "C"
    # While the sample ran, exactly one container of ours served it, labelled with the task.
    assert len(seen[0]) == 1 and seen[0][0]["Labels"][LABEL_TASK] == "probe-task"
    assert _ours(docker_client) == []


def test_mockllm_agent_uses_inspect_bash_and_python_tools_in_our_sandbox(tmp_path: Path, docker_client: Any,
                                                                       sandbox_image: str) -> None:
    outputs = [
        ModelOutput.for_tool_call("mockllm/model", "bash",
                                  {"command": "echo from-bash $(id -u) > out.txt; cat out.txt"}),
        ModelOutput.for_tool_call("mockllm/model", "python",
                                  {"code": "print(open('out.txt').read().split()[1], 6 * 7)"}),
        ModelOutput.from_content("mockllm/model", "done: 42"),
    ]
    model = get_model("mockllm/model", custom_outputs=outputs)
    task = Task(dataset=[Sample(input="use the tools", target="42")],
                solver=[use_tools(bash(timeout=30), python(timeout=30)), generate()],
                scorer=includes(), sandbox=SandboxEnvironmentSpec("rlm-sandbox", SPEC))
    log = _run(task, tmp_path, model=model)
    [sample] = log.samples
    tool_replies = [m.text for m in sample.messages if isinstance(m, ChatMessageTool)]
    assert tool_replies == ["from-bash 65534\n", "65534 42\n"], [m.error for m in sample.messages
                                                                 if isinstance(m, ChatMessageTool)]
    assert sample.scores["includes"].value == "C"
    assert _ours(docker_client) == []


def _labelled(spec: Any, context: Any, host: Any) -> Any:
    """The run's own sandbox, labelled for the leak check."""
    return spec.model_copy(update={"labels": {TEST_SESSION_LABEL: TEST_SESSION}}).create(context, host)


def test_rlm_solver_answers_from_metadata_context_and_reports_usage_and_trace(tmp_path: Path, docker_client: Any,
                                                                             sandbox_image: str) -> None:
    replies = ["```repl\nprint(context.count('apple'))\n```", "FINAL(3)"]
    with ScriptedModel(replies) as scripted:
        task = Task(dataset=[Sample(input="How many apples?", target="3",
                                    metadata={"document": "apple pear apple fig apple"})],
                    solver=rlm_solver(scripted.model, context="document", max_iterations=4,
                                      sandbox_factory=_labelled),
                    scorer=includes())
        log = _run(task, tmp_path)
        assert scripted.remaining == 0
    [sample] = log.samples
    assert sample.output.completion == "3"
    assert sample.scores["includes"].value == "C"
    summary = sample.metadata[METADATA_KEY]
    assert summary["status"] == "completed" and summary["answer_from"] == "final"
    assert summary["code_executions"] == 1
    usage = sample.model_usage[scripted.model]
    assert usage.input_tokens == summary["input_tokens"] > 0
    assert usage.output_tokens == summary["output_tokens"] > 0
    cells = [event for event in sample.store[TRACE_KEY] if event["event"] == "cell"]
    assert [cell["stdout"] for cell in cells] == ["3\n"]
    assert docker_client.api.containers(all=True, filters={"label": f"{TEST_SESSION_LABEL}={TEST_SESSION}"}) == []


def test_rlm_solver_takes_the_input_as_context_and_asks_the_query(tmp_path: Path, docker_client: Any,
                                                                  sandbox_image: str) -> None:
    replies = ["```repl\nprint(len(context.split()))\n```", "FINAL(5)"]
    with ScriptedModel(replies) as scripted:
        task = Task(dataset=[Sample(input="one two three four five", target="5")],
                    solver=rlm_solver(scripted.model, query="How many words?", max_iterations=4,
                                      sandbox_factory=_labelled),
                    scorer=includes())
        log = _run(task, tmp_path)
        first_prompt = str(scripted.calls[0])
    [sample] = log.samples
    assert "How many words?" in first_prompt
    cells = [event for event in sample.store[TRACE_KEY] if event["event"] == "cell"]
    assert [cell["stdout"] for cell in cells] == ["5\n"]  # the input was the sandbox's context
    assert sample.output.completion == "5" and sample.scores["includes"].value == "C"


def test_rlm_solver_names_a_missing_metadata_field(tmp_path: Path, sandbox_image: str) -> None:
    with ScriptedModel(["FINAL(x)"]) as scripted:
        task = Task(dataset=[Sample(input="q", metadata={"doc": "text"})],
                    solver=rlm_solver(scripted.model, context="document"), scorer=includes())
        [log] = eval(task, model="mockllm/model", display="none", log_dir=str(tmp_path / "logs"))
    assert log.status == "error"
    message = log.samples[0].error.message if log.samples and log.samples[0].error else str(log.error)
    assert "no metadata field 'document'" in message and "['doc']" in message


def test_cli_cleanup_removes_only_orphans_or_the_container_named(docker_client: Any, sandbox_image: str) -> None:
    import anyio

    from rlm_sandbox.integrations.inspect_sandbox import RlmSandboxEnvironment

    async def scenario() -> None:
        environments = await RlmSandboxEnvironment.sample_init("cleanup-task", SPEC, {})
        environment = environments["default"]
        container_id = environment.sandbox.container_id
        assert remove_containers() == []  # its owner (this process) is alive: not an orphan
        assert [c["Id"] for c in _ours(docker_client)] == [container_id]
        await RlmSandboxEnvironment.cli_cleanup(container_id)
        assert _ours(docker_client) == []
        await RlmSandboxEnvironment.sample_cleanup("cleanup-task", SPEC, environments, True)

    anyio.run(scenario)


_OWNER = """
import sys, anyio
from rlm_sandbox.integrations.inspect_sandbox import RlmSandboxConfig, RlmSandboxEnvironment

async def main():
    config = RlmSandboxConfig(labels=(({label!r}, {session!r}),))
    environments = await RlmSandboxEnvironment.sample_init("orphan-task", config, {{}})
    print(environments["default"].sandbox.container_id, flush=True)
    await anyio.sleep(600)

anyio.run(main)
"""


def test_inspect_sandbox_cleanup_cli_finds_us_by_entry_point_and_reaps_orphans(docker_client: Any,
                                                                               sandbox_image: str) -> None:
    """`inspect sandbox cleanup rlm-sandbox` (inspect's CLI, in a fresh process that knows us
    only through the entry point) removes a container whose owner was SIGKILLed."""
    import subprocess
    import sys

    owner = subprocess.Popen([sys.executable, "-c", _OWNER.format(label=TEST_SESSION_LABEL, session=TEST_SESSION)],
                             stdout=subprocess.PIPE, text=True)
    try:
        container_id = owner.stdout.readline().strip() if owner.stdout else ""
        assert container_id, "the owner process did not start a sandbox"
        assert [c["Id"] for c in _ours(docker_client)] == [container_id]
        # While its owner lives, a cleanup of orphans leaves it alone.
        inspect_cli = [str(Path(sys.executable).with_name("inspect")), "sandbox", "cleanup", "rlm-sandbox"]
        subprocess.run(inspect_cli, check=True, timeout=120, capture_output=True)
        assert [c["Id"] for c in _ours(docker_client)] == [container_id]
    finally:
        owner.kill()  # SIGKILL: no chance to remove its container
        owner.wait()
    assert [c["Id"] for c in _ours(docker_client)] == [container_id]
    done = subprocess.run(inspect_cli, timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _ours(docker_client) == []
