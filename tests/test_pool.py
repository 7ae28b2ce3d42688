"""The warm pool: started sandboxes taken in milliseconds, never reused after running code."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlm_sandbox.errors import SandboxError
from rlm_sandbox.sandbox import Host, SandboxPool
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
    sandbox = pool.take(["a", "bb"], Host({"shout": lambda s: s.upper()}))
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


def test_a_run_with_the_pools_settings_takes_from_the_pool(pool, docker_client):
    root = ScriptedModel(["```repl\nFINAL(len(context))\n```"])
    result = make_rlm(pool.sandbox_factory, root).run("q", "four")
    assert (result.answer, pool.cold_takes, pool.mismatched_takes) == ("4", 0, 0)


def test_a_run_with_other_sandbox_settings_gets_a_sandbox_made_from_them(pool, docker_client, caplog):
    """The pool's sandboxes have 1g of memory; a run asking for 2g must not silently get 1g."""
    seen: list[int] = []

    def memory_of_the_container(*args) -> object:
        sandbox = pool.sandbox_factory(*args)
        original_start = sandbox.start

        def start() -> object:
            started = original_start()
            seen.append(docker_client.api.inspect_container(sandbox.container_id)["HostConfig"]["Memory"])
            return started

        sandbox.start = start
        return sandbox

    root = ScriptedModel(["```repl\nFINAL(len(context))\n```"])
    result = make_rlm(memory_of_the_container, root, memory="2g").run("q", "four")
    assert result.answer == "4" and pool.mismatched_takes == 1
    assert seen == [2 * 1024 ** 3]
    assert "memory: '2g' wanted, '1g' pooled" in caplog.text


def test_a_spec_pickles_and_makes_the_same_sandbox(sandbox_image, docker_client):
    import pickle

    from rlm_sandbox.sandbox import LocalSandbox, SandboxLimits, SandboxSpec

    spec = SandboxSpec(image=sandbox_image, limits=SandboxLimits(memory="512m", pids=64),
                       labels={TEST_SESSION_LABEL: TEST_SESSION})
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec
    with copy.create("ctx") as sandbox:
        assert sandbox.exec("print(len(context))").stdout == "3\n"
        host = docker_client.api.inspect_container(sandbox.container_id)["HostConfig"]
        assert (host["Memory"], host["PidsLimit"]) == (512 * 1024 ** 2, 64)
    assert isinstance(SandboxSpec(provider="local").create("x"), LocalSandbox)


def test_providers_are_found_by_name_and_unknown_ones_are_refused():
    from rlm_sandbox import RLM
    from rlm_sandbox.errors import SettingsError
    from rlm_sandbox.sandbox import LocalSandbox, SandboxSpec, UnknownProvider, provider_names, register_provider

    made = []

    def mine(spec, context, host):
        made.append(spec)
        return LocalSandbox(context, limits=spec.limits, host=host)

    register_provider("tracked_local", mine, replace=True)
    assert "tracked_local" in provider_names()
    root = ScriptedModel(["```repl\nFINAL(len(context))\n```"])
    assert RLM(model=root.model, sandbox="tracked_local").run("q", "abc").answer == "3"
    assert len(made) == 1 and made[0].provider == "tracked_local"
    with pytest.raises(SettingsError, match="no sandbox provider named 'nope'"):
        RLM(model="m", sandbox="nope")
    with pytest.raises(UnknownProvider, match="known: .*docker.*local"):
        SandboxSpec(provider="nope").create()
