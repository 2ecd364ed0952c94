"""Run the selected checks against a target; one check's exception never stops the run."""

from __future__ import annotations

import ssl
import time
from collections.abc import Collection

from stackgen.probe.base import (
    GATE_OF,
    PROXY,
    UPSTREAM,
    Check,
    NotApplicable,
    Outcome,
    failed,
)
from stackgen.probe.checks import ALL_CHECKS, CHECK_IDS
from stackgen.probe.client import HTTP1, HTTP2, ProbeError
from stackgen.probe.context import ProbeContext
from stackgen.probe.result import CheckResult, Report, Status, redact
from stackgen.probe.target import Target


def select_checks(only: Collection[str] | None) -> list[Check]:
    """`only` holds check ids (`tls.chain`) or groups (`tls`); unknown names are an error
    so a typo in CI does not silently check nothing."""
    if only is None:
        return list(ALL_CHECKS)
    wanted = {name.strip() for name in only if name.strip()}
    groups = {c.group for c in ALL_CHECKS}
    unknown = sorted(n for n in wanted if n not in CHECK_IDS and n not in groups)
    if unknown:
        raise ValueError(
            f"unknown check id(s): {', '.join(unknown)}; known: {', '.join(CHECK_IDS)}"
        )
    chosen = {c.id for c in ALL_CHECKS if c.id in wanted or c.group in wanted}
    # The reach.* gates of what was chosen run too: they tell a dead proxy or Jellyfin
    # from a wrong configuration.
    needs = {c.needs for c in ALL_CHECKS if c.id in chosen}
    if UPSTREAM in needs:
        needs.add(PROXY)
    chosen |= {GATE_OF[n] for n in needs if n is not None}
    return [c for c in ALL_CHECKS if c.id in chosen]


def _describe(exc: Exception) -> str:
    if isinstance(exc, ProbeError):
        return redact(str(exc))
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    text = str(exc) or "no message"
    return redact(f"{type(exc).__name__}: {text}")


def run_one(check: Check, ctx: ProbeContext) -> Outcome:
    try:
        return check.fn(ctx)
    except NotApplicable:
        raise
    except Exception as exc:  # a broken check or an unreachable server: a fail, not a crash
        return failed(_describe(exc), check.hint, exception=type(exc).__name__)


def _blocked(check: Check, down: dict[str, str]) -> str:
    """Why a check cannot be judged: a gate it needs failed (or was not run itself)."""
    if check.needs == UPSTREAM:
        return down.get(PROXY) or down.get(UPSTREAM, "")
    if check.needs == PROXY:
        return down.get(PROXY, "")
    return ""


def _mark_gate(check: Check, why: str, down: dict[str, str]) -> None:
    for need, gate in GATE_OF.items():
        if check.id == gate:
            down[need] = why if why.startswith("not run") else f"not run: {why}"


def _offers_h2(ctx: ProbeContext) -> bool:
    """A server that cannot even complete a handshake is judged by the tls.* checks."""
    try:
        return ctx.offered_protocol() == HTTP2
    except (ProbeError, OSError):
        return False


def run_checks(target: Target, only: Collection[str] | None = None) -> Report:
    selected = select_checks(only)
    ctx = ProbeContext(target)
    start = time.monotonic()
    contexts = [ctx]
    if any(c.per_protocol for c in selected) and _offers_h2(ctx):
        contexts.append(ProbeContext(target, HTTP2))
    results: list[CheckResult] = []
    skipped: dict[str, str] = {}
    not_run: dict[str, str] = {}
    down: dict[str, str] = {}  # need -> why it is not met (a failed or not-run gate)
    for check in selected:
        blocked = _blocked(check, down)
        if blocked:
            not_run[check.id] = blocked
            _mark_gate(check, blocked, down)
            continue
        for run_ctx in contexts if check.per_protocol else [ctx]:
            t0 = time.monotonic()
            try:
                verdict = run_one(check, run_ctx)
            except NotApplicable as exc:
                skipped[check.id] = str(exc)
                break
            protocol = run_ctx.protocol if check.per_protocol else (HTTP1 if check.http1 else None)
            results.append(
                CheckResult(
                    id=check.id,
                    title=check.title,
                    status=verdict.status,
                    reason=verdict.reason,
                    hint=verdict.hint,
                    details=dict(verdict.details),
                    duration_ms=round((time.monotonic() - t0) * 1000),
                    protocol=protocol,
                )
            )
            if verdict.status is Status.FAIL:
                _mark_gate(check, f"not run: {check.id} failed", down)
    return Report(
        target=target,
        results=tuple(results),
        skipped=skipped,
        not_run=not_run,
        duration_ms=round((time.monotonic() - start) * 1000),
    )
