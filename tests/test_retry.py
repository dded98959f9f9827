"""The one retry policy and the pacer, on a clock that only the recorded waits move."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from kpi_collector.collect.retry import Pacer, backoff_delay, retrying, wait_text
from kpi_collector.errors import KpiError
from tests.conftest import Waits


class Flaky(KpiError):
    def __init__(self, transient: bool, retry_after: float | None = None) -> None:
        super().__init__("flaky")
        self.transient = transient
        self.retry_after = retry_after


def attempts_of(*failures: Flaky) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls: list[int] = []
    queue = list(failures)

    async def attempt() -> str:
        calls.append(len(calls) + 1)
        if queue:
            raise queue.pop(0)
        return "done"

    return calls, attempt


def test_transient_failures_back_off_exponentially_with_jitter(waits: Waits) -> None:
    calls, attempt = attempts_of(Flaky(True), Flaky(True), Flaky(True))
    assert asyncio.run(retrying(attempt, retries=3, backoff=0.5)) == "done"
    assert calls == [1, 2, 3, 4]
    for n, asked in enumerate(waits.asked, start=1):
        assert 0.5 * 2 ** (n - 1) * 0.5 <= asked <= 0.5 * 2 ** (n - 1) * 1.5


def test_retry_after_is_a_floor_and_a_long_one_ends_at_once(waits: Waits) -> None:
    calls, attempt = attempts_of(Flaky(True, retry_after=7))
    asyncio.run(retrying(attempt, retries=2, backoff=0.5))
    assert waits.asked == [7]
    calls, attempt = attempts_of(Flaky(True, retry_after=3600))
    with pytest.raises(Flaky):
        asyncio.run(retrying(attempt, retries=2))
    assert calls == [1] and waits.asked == [7]


def test_terminal_errors_and_spent_retries_propagate(waits: Waits) -> None:
    calls, attempt = attempts_of(Flaky(False))
    with pytest.raises(Flaky):
        asyncio.run(retrying(attempt, retries=5))
    assert calls == [1]
    calls, attempt = attempts_of(Flaky(True), Flaky(True))
    with pytest.raises(Flaky):
        asyncio.run(retrying(attempt, retries=1))
    assert calls == [1, 2] and len(waits.asked) == 1


def test_backoff_delay_bounds() -> None:
    for attempts in range(1, 6):
        delay = backoff_delay(attempts, 1.0)
        assert 2 ** (attempts - 1) * 0.5 <= delay <= 2 ** (attempts - 1) * 1.5
    assert backoff_delay(1, 0.1, retry_after=30) == 30


def test_the_pacer_spaces_turns_evenly(waits: Waits) -> None:
    pacer = Pacer(per_second=4)

    async def burst() -> list[float]:
        granted = []
        for _ in range(5):
            await pacer.turn()
            granted.append(waits.now)
        return granted

    granted = asyncio.run(burst())
    assert granted == pytest.approx([1000, 1000.25, 1000.5, 1000.75, 1001])


def test_the_pacer_does_not_wait_when_time_passed_on_its_own(waits: Waits) -> None:
    pacer = Pacer(per_second=4)

    async def slow_calls() -> None:
        for _ in range(3):
            await pacer.turn()
            waits.now += 1  # each call itself takes a second

    asyncio.run(slow_calls())
    assert waits.asked == []


def test_concurrent_callers_take_turns_in_order(waits: Waits) -> None:
    pacer = Pacer(per_second=10)
    order: list[tuple[int, float]] = []

    async def caller(n: int) -> None:
        await pacer.turn()
        order.append((n, waits.now))

    async def many() -> None:
        await asyncio.gather(*(caller(n) for n in range(4)))

    asyncio.run(many())
    assert [n for n, _ in order] == [0, 1, 2, 3]
    assert [t for _, t in order] == pytest.approx([1000, 1000.1, 1000.2, 1000.3])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (89.4, "89s"),
        (90, "2 min"),
        (3600, "60 min"),
        (5400, "1.5 h"),
        (47 * 3600, "47.0 h"),
        (48 * 3600, "2 days"),
        (364 * 86400, "364 days"),
        (365 * 86400, "a year or more"),
        (1e308, "a year or more"),
    ],
)
def test_a_wait_is_said_in_words_a_reader_takes_in(seconds: float, text: str) -> None:
    """`Retry-After: 1e308` printed 309 digits of seconds in the error; an HTTP date in the
    year 9999, twelve."""
    assert wait_text(seconds) == text
