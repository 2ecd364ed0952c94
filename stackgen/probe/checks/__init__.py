"""Every check, in report order. Adding a check = one decorated function in one of these
modules plus its entry in that module's CHECKS tuple (ids are documented in
stackgen/probe/__init__.py and must stay stable)."""

from __future__ import annotations

from stackgen.probe.base import Check
from stackgen.probe.checks import (
    exposure,
    headers,
    http3,
    jellyfin,
    media,
    proxy,
    reach,
    redirect,
    tls,
    tunnel,
)

ALL_CHECKS: tuple[Check, ...] = (
    *reach.CHECKS,  # first: the runner gates the others on them
    *redirect.CHECKS,
    *tls.CHECKS,
    *headers.CHECKS,
    *jellyfin.CHECKS,
    *media.CHECKS,
    *http3.CHECKS,
    *proxy.CHECKS,
    *tunnel.CHECKS,
    # Last: its rate-limit probe uses up this address's login allowance.
    *exposure.CHECKS,
)
CHECK_IDS: tuple[str, ...] = tuple(c.id for c in ALL_CHECKS)
