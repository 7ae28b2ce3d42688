"""Every cell is bounded in wall-clock time, whatever it does with host calls.

Waiting for a model is not charged to ``cell_timeout_s`` (a slow model must not kill a
cell), but the first QUICK_CALL_S of every host call is: loops of quick or refused calls
are charged in full. And ``cell_wall_timeout_s`` (default 10 x the timeout) bounds every
cell, host calls included. Real Docker, both transports.
"""

from __future__ import annotations

import threading
import time

import pytest

from rlm_sandbox.errors import BudgetExceeded
from rlm_sandbox.sandbox import Host, SandboxLimits
from rlm_sandbox.testing import ScriptedModel
from tests.rlm_helpers import make_rlm

pytestmark = pytest.mark.docker


@pytest.fixture(params=["docker", "docker_stdio"])
def make_sb(request: pytest.FixtureRequest):
    return request.getfixturevalue(f"make_{request.param}_sandbox")


def refuse(*args: object, **kwargs: object) -> str:
    """A host function whose budget is spent: it refuses at once, like the broker does."""
    raise BudgetExceeded("max_sub_calls", 0, 0, "the sub-call budget (0) is spent")


LOOPS = {
    # an instant host function, called without end
    "instant_calls": ({"ping": lambda: "pong"}, "while True:\n    ping()\n    calls += 1"),
    # a refused call (spent budget), caught and tried again
    "refused_calls": ({"llm_query": refuse},
                      "while True:\n    try:\n        llm_query('again')\n    except BudgetExceeded:\n"
                      "        calls += 1"),
}


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_loop_of_cheap_host_calls_is_stopped_at_the_cell_timeout(make_sb, loop):
    """Before: time in host calls paused the timeout, and these loops spend nearly all
    their time there, so with cell_timeout_s=1 they were still running after 40 s. Now
    each call's first 0.05 s counts: the loop is interrupted near its 1 s timeout, with a
    clear error, and its variables are kept (no restart)."""
    callbacks, code = LOOPS[loop]
    sb = make_sb("ctx", host=Host(callbacks, ("BudgetExceeded",)),
                 limits=SandboxLimits(cell_timeout_s=1, interrupt_grace_s=2, cell_wall_timeout_s=60))
    assert sb.exec("calls = 0\nkept = 'yes'").ok
    started = time.monotonic()
    result = sb.exec(code)
    took = time.monotonic() - started
    assert took < 8, f"the cell ran {took:.0f} s with a 1 s timeout"
    assert result.timed_out and not result.restarted, result
    assert result.error is not None and result.error.type == "CellTimeout"
    assert "1 s timeout" in result.error.message and "variables are kept" in result.error.message
    assert sb.exec("print(kept, calls > 10)").stdout == "yes True\n"


def test_slow_host_calls_are_bounded_by_the_wall_clock_limit(make_sb):
    """Calls that each wait 0.3 s (a slow model) are not charged past their first 0.05 s,
    so a loop of them outlives its 1 s timeout; the 3 s wall-clock limit stops it, saying
    so, and keeps its variables."""
    sb = make_sb("ctx", host=Host({"slow": lambda: time.sleep(0.3) or "done"}),
                 limits=SandboxLimits(cell_timeout_s=1, interrupt_grace_s=2, cell_wall_timeout_s=3))
    started = time.monotonic()
    result = sb.exec("calls = 0\nwhile True:\n    slow()\n    calls += 1")
    took = time.monotonic() - started
    assert 2.5 < took < 15, took
    assert result.timed_out and not result.restarted, result
    assert "3 s wall-clock limit" in result.error.message, result.error
    assert sb.exec("print(calls >= 4)").stdout == "True\n"


def test_a_cell_waiting_on_one_long_host_call_is_stopped_at_the_wall_limit(make_sb):
    """A model that never answers: the cell blocked in the call is interrupted at the
    wall-clock limit (not the timeout, which the wait does not use) and keeps its state."""
    release = threading.Event()
    sb = make_sb("ctx", host=Host({"model": lambda: release.wait(120) and "late"}),
                 limits=SandboxLimits(cell_timeout_s=1, interrupt_grace_s=2, cell_wall_timeout_s=2))
    try:
        assert sb.exec("kept = 5").ok
        started = time.monotonic()
        result = sb.exec("answer = model()")
        assert time.monotonic() - started < 12
        assert result.timed_out and not result.restarted, result
        assert "2 s wall-clock limit" in result.error.message
        assert sb.exec("print(kept)").stdout == "5\n"
    finally:
        release.set()


def test_the_default_wall_limit_is_ten_times_the_timeout():
    assert SandboxLimits(cell_timeout_s=3).wall_timeout(3) == 30
    assert SandboxLimits(cell_timeout_s=3, cell_wall_timeout_s=7).wall_timeout(3) == 7


@pytest.mark.loop
def test_a_run_whose_code_retries_a_spent_budget_ends_in_bounded_time(sandbox_factory):
    """The same loop in a real run: the model's code catches BudgetExceeded from the real
    broker (max_sub_calls=1 is spent by the first call) and calls again forever. The cell
    ends at its 1 s timeout and the run ends with the budget's status, within seconds."""
    code = ("```repl\nrefused = 0\nwhile True:\n    try:\n        llm_query('more')\n"
            "    except BudgetExceeded:\n        refused += 1\n```")
    root = ScriptedModel([code, "FINAL(stopped)"])
    sub = ScriptedModel(responder=lambda messages: "sub answer")
    rlm = make_rlm(sandbox_factory, root, sub, max_sub_calls=1, cell_timeout_s=1, max_iterations=3)
    started = time.monotonic()
    result = rlm.run("q", "ctx")
    assert time.monotonic() - started < 20
    assert result.status == "budget_exhausted" and "max_sub_calls" in (result.error or ""), result
