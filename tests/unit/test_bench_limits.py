"""`bench/limits.py`: an explanation cites the run's own figure that proves it, and claims
nothing those figures contradict."""

from __future__ import annotations

import pytest

from bench import limits
from stackgen.bench import goals


def _missed(proxy: str, key: str, value: float) -> goals.Verdict:
    goal = next(g for g in goals.GOALS if g.key == key)
    return goals.Verdict(proxy, goal, goals.Figure.read(value))


def test_an_api_tail_from_closed_keep_alive_cites_the_connections_opened() -> None:
    summary = {"api_connections": 89, "api_connections_direct": 8, "api_calls": 1608,
               "cpu_s_per_1000_api": 0.41}  # fmt: skip
    text = limits.explain(_missed("apache", "api_p99_added_ms", 650), summary, {})
    assert text.startswith("closed keep-alive connections: the client had to open 89 ")
    assert "against 8 to Jellyfin direct for the same 1608 calls" in text
    assert "`MaxKeepAliveRequests 100`" in text
    # Another proxy with the same figures: the same cause, without Apache's directive.
    other = limits.explain(_missed("nginx", "api_p99_added_ms", 650), summary, {})
    assert other.startswith("closed keep-alive") and "MaxKeepAlive" not in other


def test_an_api_tail_without_reconnections_does_not_blame_keep_alive() -> None:
    summary = {"api_connections": 9, "api_connections_direct": 8, "api_calls": 1608}
    text = limits.explain(_missed("apache", "api_p99_added_ms", 650), summary, {})
    assert text.startswith("per-request cost:") and "keep-alive" not in text
    assert "opened 9 connections through the proxy against 8 direct" in text


@pytest.mark.parametrize("proxy", ["nginx", "haproxy", "apache", "traefik", "caddy"])
def test_a_slow_warm_up_is_never_blamed_on_certbot(proxy: str) -> None:
    """Bench stacks take their certificate from files: no certbot runs in them."""
    summary = {"up_seconds_first": 20.1, "up_seconds": 12.7}
    text = limits.explain(_missed(proxy, "up_seconds", 12.7), summary, {})
    assert "certbot" not in text and "12.7 s warm" in text


def test_the_explanations_are_a_new_version() -> None:
    assert limits.LIMITS_VERSION == "limits/3"
