"""`stackgen reload` applies a change to a running stack without dropping a request.

Fast and slow clients open a new connection (and TLS handshake) for every request while the
stack is reloaded several times (lowlevel.RequestLoops): a proxy that loses connections
that arrive or wait during its reload shows it on every run, not one run in ten. Nothing is
retried."""

from __future__ import annotations

import time

import pytest
from integration import lowlevel
from integration.conftest import DOMAIN, HTTPS_PORT, Stack, StackFactory, stackgen

from stackgen.proxies import available

CLIENTS = 3
SLOW_CLIENTS = 2
RELOADS = 3
MAX_REQUESTS = 6000  # per client; the loops are bounded in count and in time
MAX_SECONDS = 180.0
POLICIES = ("no-referrer", "strict-origin-when-cross-origin")

# Caddy's reload starts new servers on a second SO_REUSEPORT socket and shuts the old ones
# down: every connection the old server accepted that has not sent its request yet (TLS
# handshake included) is closed without an answer, and one still in the old socket's accept
# queue is reset by the kernel (docs/flakes.md, "Caddy: connections lost at a reload"). A
# slow client is always waiting when the switch comes, so every run loses some.
CADDY_RELOAD_DROPS = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="Caddy's reload drops new connections that arrive while it switches servers",
)
PROXIES = [
    pytest.param(proxy, marks=CADDY_RELOAD_DROPS) if proxy == "caddy" else proxy
    for proxy in available()
]


def _set_referrer_policy(stack: Stack, old: str, new: str) -> None:
    config = stack.directory / "stackgen.toml"
    text = config.read_text()
    assert f'referrer_policy = "{old}"' in text
    config.write_text(text.replace(f'referrer_policy = "{old}"', f'referrer_policy = "{new}"'))


def _served_policy(root: object) -> str:
    reply = lowlevel.https(DOMAIN, HTTPS_PORT, root, "/health")  # type: ignore[arg-type]
    return reply.headers["Referrer-Policy"] or ""


@pytest.mark.parametrize("proxy", PROXIES)
def test_reload_applies_a_change_without_dropping_requests(
    make_stack: StackFactory, pebble: object, proxy: str
) -> None:
    stack = make_stack(proxy)
    root = pebble.issuer_root_file  # type: ignore[attr-defined]
    assert _served_policy(root) == POLICIES[1]

    with lowlevel.RequestLoops(
        DOMAIN,
        HTTPS_PORT,
        root,
        clients=CLIENTS,
        slow_clients=SLOW_CLIENTS,
        max_requests=MAX_REQUESTS,
        max_seconds=MAX_SECONDS,
    ) as loops:
        time.sleep(1)
        for n in range(RELOADS):
            old, new = POLICIES[(n + 1) % 2], POLICIES[n % 2]
            _set_referrer_policy(stack, old, new)
            result = stackgen("reload", "--dir", str(stack.directory))
            stack.notes.append(f"stackgen reload {n + 1} stderr:\n" + result.stderr)
            deadline = time.monotonic() + 30
            served = ""
            while time.monotonic() < deadline:
                served = _served_policy(root)
                if served == new:
                    break
                time.sleep(0.5)
            assert served == new, f"reload {n + 1}: still serving {served!r}"
        time.sleep(1)  # requests across the last reload's aftermath

    assert loops.ok > 20 * (CLIENTS + SLOW_CLIENTS)
    assert loops.failures == [], (
        f"{len(loops.failures)} failed of {loops.ok + len(loops.failures)}:\n"
        + "\n".join(loops.failures[:20])
    )
