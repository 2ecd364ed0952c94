"""websocket.keepalive behind the token gate: the gate, not Jellyfin, refuses the probe's
made-up token (401), so the check has nothing to judge - never a warning whose fix (pass the
Upgrade headers) does not apply. Without a gate, the same answer is still a warning."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from stackgen.probe import Status
from stackgen.probe.base import NotApplicable
from stackgen.probe.checks import media


@dataclass
class _Context:
    target: SimpleNamespace
    plain_status: int

    def https(self, _path: str) -> SimpleNamespace:
        return SimpleNamespace(status=self.plain_status)


def _judge(gate: bool, status: int, plain: int) -> object:
    ctx = _Context(SimpleNamespace(token_gate=gate), plain)
    return media._judge_refused_upgrade(ctx, "/socket", status, "Unauthorized", {})  # type: ignore[arg-type]


def test_behind_the_gate_a_401_is_not_judged() -> None:
    with pytest.raises(NotApplicable, match="token gate"):
        _judge(gate=True, status=401, plain=401)


def test_without_a_gate_the_same_401_is_a_warning() -> None:
    verdict = _judge(gate=False, status=401, plain=401)
    assert getattr(verdict, "status", None) is Status.WARN


def test_behind_the_gate_a_403_from_something_else_is_still_a_warning() -> None:
    verdict = _judge(gate=True, status=403, plain=403)
    assert getattr(verdict, "status", None) is Status.WARN
