"""The shape every check has: an id, a title, a default fix hint, and a function from
the run's shared `ProbeContext` to a `Outcome`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stackgen.probe.result import Status

if TYPE_CHECKING:
    from stackgen.probe.context import ProbeContext


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str
    hint: str = ""
    details: Mapping[str, object] = field(default_factory=dict)


def passed(reason: str, **details: object) -> Outcome:
    return Outcome(Status.PASS, reason, "", details)


def warned(reason: str, hint: str, **details: object) -> Outcome:
    return Outcome(Status.WARN, reason, hint, details)


def failed(reason: str, hint: str, **details: object) -> Outcome:
    return Outcome(Status.FAIL, reason, hint, details)


class NotApplicable(Exception):
    """Raised by a check that has nothing to judge for this target (reported as skipped)."""


CheckFn = Callable[["ProbeContext"], Outcome]

# What a check needs before it can judge anything: the proxy reachable (checks about the
# proxy itself), Jellyfin reachable through it (checks that read Jellyfin's answers), or
# nothing (judged from what the target says). The reach.* checks answer these first.
PROXY = "proxy"
UPSTREAM = "upstream"
GATE_OF = {PROXY: "reach.proxy", UPSTREAM: "reach.upstream"}


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    hint: str  # used when the check dies on an exception (e.g. nothing listens)
    fn: CheckFn
    needs: str | None = PROXY
    # Request-level: run over HTTP/1.1 and again over h2 when the server offers h2 (an
    # h2-only bug must not pass). `http1`: speaks HTTP/1.1 only, whatever is offered.
    per_protocol: bool = False
    http1: bool = False

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]


def check(
    check_id: str,
    title: str,
    hint: str,
    *,
    needs: str | None = PROXY,
    per_protocol: bool = False,
    http1: bool = False,
) -> Callable[[CheckFn], Check]:
    def wrap(fn: CheckFn) -> Check:
        return Check(check_id, title, hint, fn, needs, per_protocol=per_protocol, http1=http1)

    return wrap
