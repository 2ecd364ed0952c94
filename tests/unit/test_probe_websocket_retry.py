"""websocket.keepalive retries once, and only when a fresh connection got no answer at all."""

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


def test_one_stalled_connection_is_retried_and_said(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _sequence(monkeypatch, STALL, OK)
    verdict = media.websocket_keepalive.fn(None)  # type: ignore[arg-type]
    assert verdict.status is Status.PASS
    assert "retried once" in verdict.reason
    assert verdict.details["attempts"] == 2 and len(calls) == 2


def test_two_stalls_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    _sequence(monkeypatch, STALL, STALL)
    verdict = media.websocket_keepalive.fn(None)  # type: ignore[arg-type]
    assert verdict.status is Status.FAIL
    assert verdict.details["attempts"] == 2


def test_a_wrong_answer_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = failed("the upgrade was answered 200, not 101", "hint")
    calls = _sequence(monkeypatch, refused, OK)
    verdict = media.websocket_keepalive.fn(None)  # type: ignore[arg-type]
    assert verdict.status is Status.FAIL and len(calls) == 1
