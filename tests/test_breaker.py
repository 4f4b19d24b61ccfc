"""The circuit breaker's states, driven by a hand-moved clock."""

from __future__ import annotations

from wardgate.breaker import Breaker, BreakerState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only():
    clock = Clock()
    b = Breaker(failures=3, cooldown_s=5, clock=clock)
    b.failure(), b.failure(), b.success(), b.failure(), b.failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    b.failure()
    assert b.state is BreakerState.OPEN and not b.allow()


def test_half_open_lets_one_probe_through_and_its_result_decides():
    clock = Clock()
    b = Breaker(failures=1, cooldown_s=5, clock=clock)
    b.failure()
    clock.now += 5
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and not b.allow()  # one probe at a time
    b.failure()  # the probe failed: open for another cool-down
    assert not b.allow()
    clock.now += 5
    assert b.allow()
    b.success()
    assert b.state is BreakerState.CLOSED and b.allow() and b.allow()


def test_an_abandoned_probe_frees_the_slot():
    clock = Clock()
    b = Breaker(failures=1, cooldown_s=1, clock=clock)
    b.failure()
    clock.now += 1
    assert b.allow() and not b.allow()
    b.abandon()
    assert b.allow()
