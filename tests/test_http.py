"""`http.SlidingWindow`: rate limits count each client's recent events and forget clients that went quiet."""

from __future__ import annotations

from wiserpa.http import AuthFailureLimiter, SlidingWindow


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_events_age_out_of_the_window_and_a_quiet_client_is_forgotten() -> None:
    clock = _Clock()
    window = SlidingWindow(60.0, now=clock)
    for _ in range(3):
        window.add("10.0.0.1")
    clock.t += 30
    window.add("10.0.0.1")
    assert window.count("10.0.0.1") == 4
    clock.t += 31  # the first three are older than the window
    assert window.count("10.0.0.1") == 1
    clock.t += 61
    assert window.count("10.0.0.1") == 0
    assert len(window) == 0  # nothing kept for it
    assert window.count("never seen") == 0 and len(window) == 0  # asking does not add an entry


def test_many_one_time_clients_do_not_accumulate() -> None:
    clock = _Clock()
    window = SlidingWindow(60.0, now=clock)
    for i in range(10_000):  # a scan from many addresses, one event each, a second apart
        window.add(f"client-{i}")
        clock.t += 1.0
    # Only clients seen within the last minute can still matter; the table stays near that, not 10,000.
    assert len(window) < 2 * 1024
    assert window.count("client-9999") == 1


def test_the_auth_limiter_blocks_at_its_limit_until_failures_age_out() -> None:
    limiter = AuthFailureLimiter(3, window_seconds=60.0)
    clock = _Clock()
    limiter.failures = SlidingWindow(60.0, now=clock)
    for _ in range(3):
        assert not limiter.blocked("a")
        limiter.failed("a")
    assert limiter.blocked("a") and not limiter.blocked("b")
    clock.t += 61
    assert not limiter.blocked("a")
