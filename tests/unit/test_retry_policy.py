"""The retry ladder's arithmetic and the job headers that carry the attempt count."""

from __future__ import annotations

import pytest

from services.core.jobs import ATTEMPT_HEADER, ERROR_HEADER, JobHistory
from services.core.retry import RetryPolicy
from services.core.topology import Topology, retry_routing_key


def test_attempt_n_waits_base_times_two_to_the_n_minus_one() -> None:
    policy = RetryPolicy(base_ms=2000, max_attempts=5)
    assert [policy.delay_ms(n) for n in (1, 2, 3, 4)] == [2000, 4000, 8000, 16000]
    assert policy.delays_ms() == [2000, 4000, 8000, 16000]  # one queue per retry


def test_only_the_last_attempt_is_last() -> None:
    policy = RetryPolicy(max_attempts=5)
    assert [policy.is_last(n) for n in (1, 4, 5, 6)] == [False, False, True, True]


def test_a_delay_past_the_ladder_stays_at_its_top() -> None:
    """A failure that must wait to be recorded waits on a queue that exists."""
    policy = RetryPolicy(base_ms=100, max_attempts=5)
    assert policy.delay_ms(5) == policy.delay_ms(9) == 800


def test_a_single_attempt_still_has_a_queue_to_wait_on() -> None:
    assert RetryPolicy(base_ms=100, max_attempts=1).delays_ms() == [100]


@pytest.mark.parametrize(("base_ms", "max_attempts"), [(0, 5), (100, 0)])
def test_a_ladder_that_cannot_work_is_refused(base_ms: int, max_attempts: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(base_ms=base_ms, max_attempts=max_attempts)


def test_the_delay_is_in_the_queue_name_so_a_new_base_declares_new_queues() -> None:
    topology = Topology("ns", RetryPolicy(base_ms=1500))
    assert topology.retry_queue(1500) == "ns.thumbnail.retry.1500ms"
    assert retry_routing_key(1500) == "retry.1500ms"
    arguments = topology.retry_queue_arguments(1500)
    assert arguments["x-message-ttl"] == 1500
    assert arguments["x-dead-letter-exchange"] == "ns.jobs"


def test_history_round_trips_through_headers() -> None:
    history = JobHistory(3, "storage error: timeout")
    assert history.to_headers() == {ATTEMPT_HEADER: 3, ERROR_HEADER: "storage error: timeout"}
    assert JobHistory.from_headers(history.to_headers()) == history


@pytest.mark.parametrize(
    "headers",
    [None, {}, {ATTEMPT_HEADER: "x"}, {ATTEMPT_HEADER: 0}, {ATTEMPT_HEADER: -2}],
)
def test_missing_or_malformed_headers_read_as_a_first_attempt(headers: dict | None) -> None:
    assert JobHistory.from_headers(headers) == JobHistory(1, "")


def test_an_error_header_sent_as_bytes_is_read_as_text() -> None:
    assert JobHistory.from_headers({ERROR_HEADER: b"boom"}).last_error == "boom"
