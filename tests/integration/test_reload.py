"""`stackgen reload` applies a change to a running stack without dropping requests."""

from __future__ import annotations

import time

import pytest
from integration import lowlevel
from integration.conftest import DOMAIN, HTTPS_PORT, StackFactory, stackgen

from stackgen.proxies import available

MAX_REQUESTS = 2000  # the loop is bounded in count and in time
MAX_SECONDS = 90.0


@pytest.mark.parametrize("proxy", available())
def test_reload_applies_a_change_without_dropping_requests(
    make_stack: StackFactory, pebble: object, proxy: str
) -> None:
    stack = make_stack(proxy)
    root = pebble.issuer_root_file  # type: ignore[attr-defined]
    before = lowlevel.https(DOMAIN, HTTPS_PORT, root, "/health")
    assert before.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"

    config = stack.directory / "stackgen.toml"
    config.write_text(
        config.read_text().replace(
            'referrer_policy = "strict-origin-when-cross-origin"', 'referrer_policy = "no-referrer"'
        )
    )
    loop = lowlevel.RequestLoop(
        DOMAIN,
        HTTPS_PORT,
        root,
        max_requests=MAX_REQUESTS,
        max_seconds=MAX_SECONDS,
        # Caddy's reload closes connections accepted but not yet read; in-flight requests
        # are never dropped.
        retry_unanswered=True,
    )
    loop.start()
    time.sleep(1)
    result = stackgen("reload", "--dir", str(stack.directory))
    stack.notes.append("stackgen reload stderr:\n" + result.stderr)
    deadline = time.monotonic() + 30
    served = ""
    while time.monotonic() < deadline:
        served = (
            lowlevel.https(DOMAIN, HTTPS_PORT, root, "/health").headers["Referrer-Policy"] or ""
        )
        if served == "no-referrer":
            break
        time.sleep(0.5)
    time.sleep(1)
    loop.stop.set()
    loop.join(timeout=30)
    assert served == "no-referrer"
    assert loop.ok > 20
    assert loop.failures == [], f"{len(loop.failures)} failed of {loop.ok + len(loop.failures)}"
    assert loop.retried <= 3, f"{loop.retried} requests needed a retry"
