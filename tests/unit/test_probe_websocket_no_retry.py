"""websocket.keepalive makes one attempt: an upgrade without an answer is a failure.

A retry here once hid websockets' threaded client losing about one upgrade request in a
hundred over TLS (docs/flakes.md); with the one-thread client nothing is lost, and a
connection that gets no answer is the stack's problem to report, not to paper over."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stackgen.probe import Status
from stackgen.probe.base import Outcome, failed, passed
from stackgen.probe.checks import media


def _sequence(monkeypatch: pytest.MonkeyPatch, *verdicts: Outcome) -> list[int]:
    calls: list[int] = []
    queue: Iterator[Outcome] = iter(verdicts)

    def attempt(_ctx: Any) -> Outcome:
        calls.append(1)
        return next(queue)

    monkeypatch.setattr(media, "_websocket_attempt", attempt)
    return calls


STALL = failed(f"{media.NO_UPGRADE_ANSWER} within 10 s", "hint")
OK = passed("101 upgrade, KeepAlive answered")


def test_a_stalled_upgrade_fails_without_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _sequence(monkeypatch, STALL, OK)
    verdict = media.websocket_keepalive.fn(None)  # type: ignore[arg-type]
    assert verdict.status is Status.FAIL and verdict.reason == STALL.reason
    assert len(calls) == 1


def test_a_wrong_answer_fails_without_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = failed("the upgrade was answered 200, not 101", "hint")
    calls = _sequence(monkeypatch, refused, OK)
    verdict = media.websocket_keepalive.fn(None)  # type: ignore[arg-type]
    assert verdict.status is Status.FAIL and len(calls) == 1
