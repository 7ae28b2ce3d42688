"""The warm pool: started sandboxes taken in milliseconds, never reused after running code."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlm_sandbox.errors import SandboxError
from rlm_sandbox.sandbox import SandboxPool
from rlm_sandbox.testing import ScriptedModel
from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL
from tests.rlm_helpers import make_rlm

pytestmark = pytest.mark.docker


@pytest.fixture
def pool(sandbox_image, docker_client):
    with SandboxPool(size=2, image=sandbox_image, client=docker_client,
                     labels={TEST_SESSION_LABEL: TEST_SESSION}) as pool:
        deadline = time.monotonic() + 60
        while pool.idle < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield pool


def test_take_gives_a_ready_sandbox_with_its_context_and_callbacks(pool):
    sandbox = pool.take(["a", "bb"], callbacks={"shout": lambda s: s.upper()})
    try:
        assert sandbox.exec("print(len(context), shout(context[1]))").stdout == "2 BB\n"
        assert sandbox.context_info == {"type": "list", "length": 2}
        assert pool.cold_takes == 0
    finally:
        sandbox.close()


def test_taken_sandboxes_are_replaced_and_never_shared(pool):
    first, second = pool.take("one"), pool.take("two")
    try:
        first.exec("secret = 'from task one'")
        assert first.container_id != second.container_id
        assert second.exec("print('secret' in globals(), context)").stdout == "False two\n"
        deadline = time.monotonic() + 60
        while pool.idle < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.idle == 2  # refilled in the background
    finally:
        first.close()
        second.close()


def test_a_used_sandbox_cannot_be_loaded_again(pool):
    sandbox = pool.take("ctx")
    try:
        sandbox.exec("x = 1")
        with pytest.raises(SandboxError, match="already run code"):
            sandbox.load("other context")
    finally:
        sandbox.close()


def test_restart_after_take_reloads_the_taken_context(pool):
    sandbox = pool.take("the real context")
    try:
        assert sandbox.exec("import os; os._exit(1)").restarted
        assert sandbox.exec("print(context)").stdout == "the real context\n"
    finally:
        sandbox.close()


def test_an_empty_pool_starts_a_sandbox_on_demand(sandbox_image, docker_client):
    with SandboxPool(size=1, image=sandbox_image, client=docker_client,
                     labels={TEST_SESSION_LABEL: TEST_SESSION}) as pool:
        # Three takes at once and one sandbox starting: one take waits for it, the
        # others find nothing idle or starting for them and start their own.
        with ThreadPoolExecutor(3) as takers:
            taken = list(takers.map(pool.take, ["0", "1", "2"]))
        try:
            assert [s.exec("print(context)").stdout for s in taken] == ["0\n", "1\n", "2\n"]
            assert pool.cold_takes >= 1
        finally:
            for sandbox in taken:
                sandbox.close()


def test_runs_can_take_from_a_pool(pool, sandbox_factory):
    root = ScriptedModel(["```repl\nprint(context[::-1])\n```", "FINAL(done)"])
    rlm = make_rlm(pool.sandbox_factory, root)
    assert rlm.run("q", "abc").answer == "done" and "cba" in root.calls[1][-1]["content"]


def test_closing_the_pool_removes_idle_sandboxes(sandbox_image, docker_client):
    pool = SandboxPool(size=2, image=sandbox_image, client=docker_client,
                       labels={TEST_SESSION_LABEL: TEST_SESSION}).start()
    deadline = time.monotonic() + 60
    while pool.idle < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    mine = {"label": f"org.rlm-sandbox.owner-pid={os.getpid()}"}
    assert len(docker_client.api.containers(all=True, filters=mine)) == 2
    pool.close()
    assert pool.idle == 0 and docker_client.api.containers(all=True, filters=mine) == []


def test_the_readme_form_is_warm_without_calling_start(sandbox_image, docker_client):
    """README: ``pool = SandboxPool(size=2, ...)`` then ``pool.take(...)``. The pool warms
    itself on construction and a take waits for a warm start in progress, so both takes
    are warm: no take starts a sandbox of its own (counted, not timed). Before, the pool
    started nothing until start() or ``with``, and every take was cold."""
    pool = SandboxPool(size=2, image=sandbox_image, client=docker_client,
                       labels={TEST_SESSION_LABEL: TEST_SESSION})
    taken = []
    try:
        taken = [pool.take("one"), pool.take("two")]
        assert pool.cold_takes == 0
        assert [s.exec("print(context)").stdout for s in taken] == ["one\n", "two\n"]
    finally:
        for sandbox in taken:
            sandbox.close()
        pool.close()
    assert pool.idle == 0
