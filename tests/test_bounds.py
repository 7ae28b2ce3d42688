"""The figures behind the host's bounds: what a cell is charged, what a line may cost.

No Docker: these check the arithmetic that tests/test_security.py and test_cell_time.py
rely on, with a fake clock and with tracemalloc.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest

from rlm_sandbox.sandbox import bounds
from rlm_sandbox.sandbox.bounds import CellClock, host_memory_bound, message_cap, parse_cost


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(bounds.time, "monotonic", fake)
    return fake


def test_a_long_call_is_charged_its_first_quick_seconds_only(clock_time):
    clock = CellClock(quick=0.05)
    clock_time.now += 1.0  # running code: charged
    call = clock.call_started()
    clock_time.now += 10.0  # waiting on a model
    clock.call_ended(call)
    clock_time.now += 0.5
    assert clock.elapsed() == pytest.approx(1.0 + 0.05 + 0.5)


def test_quick_calls_are_charged_in_full(clock_time):
    clock = CellClock(quick=0.05)
    for _ in range(1000):  # an instant host function in a loop (or a refused call)
        call = clock.call_started()
        clock_time.now += 0.001
        clock.call_ended(call)
    assert clock.elapsed() == pytest.approx(1.0)


def test_overlapping_calls_excuse_the_time_some_call_has_waited_past_quick(clock_time):
    clock = CellClock(quick=0.05)
    first = clock.call_started()
    clock_time.now += 1.0
    second = clock.call_started()
    clock_time.now += 1.0
    clock.call_ended(first)
    clock_time.now += 0.02  # only the second is in flight, for 1.02 s: still excused
    clock.call_ended(second)
    clock_time.now += 0.3
    assert clock.elapsed() == pytest.approx(0.05 + 0.3)
    assert not clock.busy


def test_the_memory_bound_at_the_defaults_is_the_documented_205_mib():
    assert message_cap(16 << 20) == 17 << 20
    assert host_memory_bound(16 << 20) == 205 << 20


LINES = {
    "empty_lists": b'{"v":[' + b"[]," * 100_000 + b"[]]}",
    "empty_dicts": b'{"v":[' + b"{}," * 100_000 + b"{}]}",
    "one_key_dicts": b'{"v":[' + b'{"":0},' * 100_000 + b'{"":0}]}',
    "dicts_of_lists": b'{"v":[' + b'{"":[]},' * 100_000 + b'{"":[]}]}',
    "short_strings": b'{"v":[' + b'"ab",' * 100_000 + b'"ab"]}',
    "floats": b'{"v":[' + b"1.5," * 100_000 + b"1.5]}",
    "big_ints": b'{"v":[' + b"1234567890123456789012," * 50_000 + b"1]}",
    "many_keys": b"{" + b",".join(b'"k%d":0' % i for i in range(100_000)) + b"}",
    "astral_text": '{"v":"\U0001F600'.encode() + b"x" * 1_000_000 + b'"}',
    "text_with_separators": b'{"v":"' + b"a,b:[c{" * 200_000 + b'"}',
}


@pytest.mark.parametrize("shape", sorted(LINES))
def test_parse_cost_bounds_what_parsing_keeps(shape):
    """parse_cost is an upper bound on the Python objects json.loads builds, for the shapes
    that cost the most per byte; counting separators outside strings only still is."""
    line = LINES[shape]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = json.loads(line)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert value is not None
    assert kept <= parse_cost(line, outside_strings=True) <= parse_cost(line)


def test_separators_inside_strings_are_not_values():
    line = LINES["text_with_separators"]
    assert parse_cost(line, outside_strings=True) < len(line) + 10_000 < parse_cost(line)
