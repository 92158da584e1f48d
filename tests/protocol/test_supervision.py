"""The backoff every long-running loop uses after Redis errors."""

from __future__ import annotations

import logging

import pytest

from django_blueque.protocol.supervision import Backoff


def test_the_wait_doubles_to_its_cap_and_a_line_says_when_redis_answers(caplog: pytest.LogCaptureFixture) -> None:
    backoff = Backoff(0.5)
    with caplog.at_level(logging.WARNING):
        waits = [backoff.failed(ConnectionError("refused")) for _ in range(5)]
        backoff.succeeded()
        backoff.succeeded()  # no second line: Redis answered all along
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert backoff.delay == 0.0 and backoff.failures == 0
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "Redis unavailable (refused); retrying in 0.1s"
    assert lines[5:] == ["Redis answers again, after 5 failed attempt(s)"]
    assert backoff.failed(ConnectionError("refused")) == 0.1  # a new outage starts afresh
