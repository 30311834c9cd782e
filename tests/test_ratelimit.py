"""The token bucket's contract (protocol.ratelimit): what its module docstring promises."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorpipe.protocol.ratelimit import KeyedBuckets, TokenBucket

# Slack for floating point: far below anything a caller could take or wait.
EPS = 1e-6

rates = st.floats(min_value=0.01, max_value=1000.0)
bursts = st.floats(min_value=1.0, max_value=1000.0)
# (seconds since the last call (below 0: the clock steps back), what is asked, the share of
# the burst asked for)
steps = st.lists(
    st.tuples(
        st.floats(min_value=-5.0, max_value=50.0),
        st.sampled_from(["take", "reserve", "wait_s"]),
        st.floats(min_value=0.0, max_value=1.5),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(rate=rates, burst=bursts, steps=steps)
def test_never_more_than_the_burst_and_the_refill_over_any_interval(
    rate: float, burst: float, steps: list[tuple[float, str, float]]
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    now = 0.0
    taken: list[tuple[float, float]] = []  # (when it counts, how much)
    for dt, op, share in steps:
        now += dt
        amount = share * burst
        if op == "take":
            if bucket.take(amount, now=now):
                taken.append((bucket.counted_at, amount))
        elif op == "reserve" and amount <= burst:
            wait = bucket.reserve(amount, now=now)
            taken.append((bucket.counted_at + wait, amount))
        else:
            before = bucket.level(now)
            bucket.wait_s(amount, now=now)
            assert bucket.level(now) == before  # asking takes nothing
    taken.sort()
    for i, (start, _) in enumerate(taken):
        total = 0.0
        for at, amount in taken[i:]:
            total += amount
            assert total <= burst + rate * (at - start) + EPS * (burst + total)


shares = st.floats(min_value=0.0, max_value=1.0)


def _used(rate: float, burst: float, share: float) -> TokenBucket:
    """A bucket with `share` of its burst taken at 0."""
    bucket = TokenBucket(rate=rate, burst=burst, now=0.0)
    assert bucket.take(share * burst, now=0.0)
    return bucket


@settings(max_examples=200, deadline=None)
@given(
    rate=rates,
    burst=bursts,
    used=shares,
    asked=st.floats(min_value=0.0, max_value=1.5),
    later=st.floats(min_value=0.0, max_value=10.0),
)
def test_a_refused_take_takes_nothing(
    rate: float, burst: float, used: float, asked: float, later: float
) -> None:
    bucket, twin = _used(rate, burst, used), _used(rate, burst, used)
    if not bucket.take(asked * burst, now=later):
        assert not bucket.take(asked * burst, now=later)  # and again at once
        # Just as if it had never been asked.
        assert bucket.level(later + 1.0) == pytest.approx(twin.level(later + 1.0), rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(rate=rates, burst=bursts, used=shares, asked=shares)
def test_the_wait_is_when_the_amount_is_there(
    rate: float, burst: float, used: float, asked: float
) -> None:
    bucket = _used(rate, burst, used)
    amount = asked * burst
    wait = bucket.wait_s(amount, now=0.0)
    assert wait == pytest.approx(max(0.0, amount - (1 - used) * burst) / rate, abs=EPS)
    if wait > EPS:
        assert not bucket.take(amount, now=wait * (1 - 1e-3))
    assert bucket.take(amount, now=wait * (1 + 1e-9) + EPS)


def test_it_starts_full_and_refills_at_its_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0, now=100.0)
    assert [bucket.take(now=100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.level(100.25) == pytest.approx(0.5)
    assert bucket.take(now=100.5) and not bucket.take(now=100.5)
    assert bucket.level(1000.0) == 3.0  # never more than the burst
    partly = TokenBucket(rate=2.0, burst=3.0, now=0.0, tokens=0.0)
    assert partly.wait_s(1.0, now=0.0) == pytest.approx(0.5)


def test_a_clock_that_steps_back_buys_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, now=10.0)
    assert bucket.take(2.0, now=10.0)
    assert not bucket.take(now=5.0) and bucket.level(5.0) == 0.0
    assert bucket.counted_at == 10.0
    assert bucket.level(10.5) == pytest.approx(0.5)  # refilled from 10, not from 5


def test_what_can_never_come_waits_forever() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, now=0.0)
    assert bucket.wait_s(3.0, now=0.0) == math.inf
    assert not bucket.take(3.0, now=1e9)
    stopped = TokenBucket(rate=0.0, burst=2.0, now=0.0)
    assert stopped.take(2.0, now=0.0)
    assert stopped.wait_s(1.0, now=1e9) == math.inf


def test_reserving_spaces_turns_by_the_rate_and_a_debt_refuses_takes() -> None:
    bucket = TokenBucket(rate=10.0, burst=1.0, now=0.0)
    assert [bucket.reserve(now=0.0) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    assert not bucket.take(now=0.15)  # the last turn is not until 0.2
    assert bucket.reserve(now=0.15) == pytest.approx(0.15)  # after it: at 0.3
    assert bucket.reserve(now=5.0) == 0.0  # a key within its pace never waits


def test_bad_amounts_and_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate and burst"):
        TokenBucket(rate=-1.0, burst=1.0, now=0.0)
    with pytest.raises(ValueError, match="rate and burst"):
        TokenBucket(rate=math.nan, burst=1.0, now=0.0)
    with pytest.raises(ValueError, match="at most the burst"):
        TokenBucket(rate=1.0, burst=1.0, now=0.0, tokens=2.0)
    bucket = TokenBucket(rate=1.0, burst=2.0, now=0.0)
    with pytest.raises(ValueError, match="at least 0"):
        bucket.take(-1.0, now=0.0)
    with pytest.raises(ValueError, match="at least 0"):
        bucket.wait_s(-1.0, now=0.0)
    with pytest.raises(ValueError, match="to the burst"):
        bucket.reserve(3.0, now=0.0)
    with pytest.raises(ValueError, match="max_keys"):
        KeyedBuckets(rate=1.0, burst=1.0, max_keys=0)


def test_keyed_buckets_are_apart_and_beyond_max_keys_only_full_ones_go() -> None:
    buckets = KeyedBuckets(rate=0.1, burst=2.0, max_keys=2)
    a = buckets.bucket("a", 0.0)
    assert a.take(2.0, now=0.0)
    assert buckets.bucket("b", 0.0).take(now=0.0)  # each key its own bucket
    assert buckets.bucket("a", 0.0) is a and buckets.get("c") is None
    # At 10 s, b is full again, a is not: a third key makes b go, a stays.
    buckets.bucket("c", 10.0)
    assert len(buckets) == 2 and buckets.get("b") is None and buckets.get("a") is a
    buckets.forget("a")
    assert buckets.get("a") is None


def test_keyed_buckets_keep_full_ones_until_idle_long_enough() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=1.0, max_keys=1, idle_s=10.0)
    assert buckets.bucket("a", 0.0, start=-1.0).counted_at == -1.0
    buckets.bucket("b", 5.0)  # a is full, but counted only 6 s ago
    assert buckets.get("a") is not None
    buckets.bucket("c", 20.0)
    assert buckets.get("a") is None and buckets.get("b") is None
