"""The cluster-wide rate schedule (plain Python; the Ray backend runs one as an actor, see
tests/test_ray.py): start times keep every minute within the limit, a burst starts at once,
and a limit that limits nothing is refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rlm_sandbox.eval.ray_limiter import RateLimit, RateSchedule


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def starts(schedule: RateSchedule, clock: Clock, n: int, tokens: int = 0) -> list[float]:
    """Start times of ``n`` requests asked for at the same moment."""
    return [clock.now + schedule.reserve(tokens) for _ in range(n)]


def test_requests_per_minute_are_spaced_evenly_after_the_burst():
    clock = Clock()
    schedule = RateSchedule(RateLimit(requests_per_minute=60, burst=3), clock)
    times = starts(schedule, clock, 6)
    assert [round(t - clock.now, 6) for t in times] == [0, 0, 0, 1, 2, 3]
    clock.now += 100  # idle for long: the burst is available again, no debt is carried over
    assert [round(t - clock.now, 6) for t in starts(schedule, clock, 4)] == [0, 0, 0, 1]


def test_no_minute_holds_more_than_the_limit():
    clock = Clock()
    schedule = RateSchedule(RateLimit(requests_per_minute=120, burst=1), clock)
    times = starts(schedule, clock, 500)
    worst = max(sum(1 for t in times if start <= t < start + 60) for start in times)
    assert worst <= 120


def test_tokens_per_minute_delay_requests_by_their_size():
    clock = Clock()
    schedule = RateSchedule(RateLimit(tokens_per_minute=6000), clock)
    waits = [schedule.reserve(tokens) for tokens in (3000, 3000, 600)]
    assert [round(w, 6) for w in waits] == [0, 30, 60]  # 3,000 tokens are half a minute's budget


def test_a_limit_must_limit_something():
    with pytest.raises(ValidationError, match="requests_per_minute or tokens_per_minute"):
        RateLimit()
    with pytest.raises(ValidationError):
        RateLimit(requests_per_minute=0)
