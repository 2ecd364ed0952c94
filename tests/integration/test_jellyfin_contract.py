"""Jellyfin's contract as a client meets it through each proxy (docs/jellyfin.md): the
stand-in refuses a WebSocket with a missing or bad token by 403 and upgrades only with a
valid key, redirects `{base}/web` to an absolute URL built from the forwarded headers it
trusts, answers an unauthenticated upload 401, and starts in phases - which `stackgen up`,
the proxies' health checks and `verify` must meet without mistaking a starting Jellyfin for
a ready one."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass

import pytest
from integration import lowlevel
from integration.conftest import (
    DOMAIN,
    HTTPS_PORT,
    STANDIN_API_KEY,
    Stack,
    StackFactory,
    add_standin_environment,
    stackgen,
)

from stackgen.probe import Report, Status
from stackgen.proxies import available

ERROR_BODY = b"Error processing request."
LOADING = b"Jellyfin Server is loading. Please try again shortly."
# Missing and bad tokens in every form Jellyfin reads at the socket.
REFUSED = [
    ("?deviceId=pytest", {}),
    ("?api_key=not-a-key&deviceId=pytest", {}),
    ("?ApiKey=not-a-key", {}),
    ("", {"X-Emby-Token": "not-a-key"}),
    ("", {"Authorization": 'MediaBrowser Client="pytest", Token="not-a-key"'}),
]
UPLOAD = bytes(range(256)) * (20 * 1024 * 1024 // 256)


def _subpath(proxy: str) -> str:
    # Both forms across the five proxies: the redirects differ with a base URL.
    return "/jellyfin" if available().index(proxy) % 2 else ""


@pytest.mark.parametrize("proxy", available())
def test_jellyfin_contract_through_the_proxy(make_stack: StackFactory, proxy: str) -> None:
    base = _subpath(proxy)
    stack = make_stack(proxy, subpath=base, tls="internal")
    root = stack.directory / "tls/ca.pem"

    # The socket: 403 "Error processing request." for a missing or bad token, through the
    # proxy; 101 and a KeepAlive round trip only with a valid key, in the query or a header.
    for query, headers in REFUSED:
        refusal = lowlevel.websocket_refusal(
            DOMAIN, HTTPS_PORT, root, f"{base}/socket{query}", headers
        )
        assert (refusal.status, refusal.body) == (403, ERROR_BODY), (query, headers)
    frames = lowlevel.websocket_keepalive(
        DOMAIN, HTTPS_PORT, root, f"{base}/socket?api_key={STANDIN_API_KEY}&deviceId=pytest"
    )
    assert frames[-1]["MessageType"] == "KeepAlive"
    header = {"Authorization": f'MediaBrowser Client="pytest", Token="{STANDIN_API_KEY}"'}
    frames = lowlevel.websocket_keepalive(DOMAIN, HTTPS_PORT, root, f"{base}/socket", header)
    assert frames[-1]["MessageType"] == "KeepAlive"

    # {base}/web: an absolute redirect built from X-Forwarded-Proto/-Host, which Jellyfin
    # honours from the proxy (KnownProxies): the public origin, not http://internal-host.
    web = lowlevel.https(DOMAIN, HTTPS_PORT, root, f"{base}/web")
    assert web.status == 301
    assert web.headers["Location"] == f"https://{DOMAIN}:{HTTPS_PORT}{base}/web/"

    # Uploads: 401 for a client without a key - Jellyfin answers before reading the body,
    # and the answer reaches a client that watches for it while sending - and the whole
    # body through with one.
    image = f"{base}/Items/standin/Images/Primary"
    kind = {"Content-Type": "image/jpeg"}
    refused, sent = lowlevel.post_watching(DOMAIN, HTTPS_PORT, root, image, UPLOAD, kind)
    assert refused.status == 401, (refused, sent)
    print(f"{proxy}: 401 for an upload without a key after {sent} of {len(UPLOAD)} bytes")
    keyed = {**kind, "X-Emby-Token": STANDIN_API_KEY}
    stored = lowlevel.https(
        DOMAIN, HTTPS_PORT, root, image, method="POST", body=UPLOAD, headers=keyed
    )
    assert stored.status == 204

    # verify's verdict on the same behaviour: its WebSocket check judges Jellyfin's 403.
    report = _verify(stack, "reach", "websocket", "jellyfin", "upload")
    problems = [
        f"{c['id']}: {c['status']}: {c['reason']}"
        for c in report["checks"]
        if c["status"] != "pass"
    ]
    assert problems == [], "\n".join(problems)
    socket_check = next(c for c in report["checks"] if c["id"] == "websocket.keepalive")
    assert "403 for the probe's made-up token" in socket_check["reason"]


def _verify(stack: Stack, *only: str) -> dict[str, object]:
    arguments = [arg for check in only for arg in ("--only", check)]
    result = stackgen("verify", "--dir", str(stack.directory), "--json", *arguments, check=False)
    report: dict[str, object] = json.loads(result.stdout)
    return report


# --- start-up ------------------------------------------------------------------------------

PHASES = {
    "STANDIN_CLOSED_SECONDS": 4.0,
    "STANDIN_STARTUP_SECONDS": 6.0,
    # Long enough that verify's reach checks, run when the first "loading" answer is seen,
    # still meet it.
    "STANDIN_LOADING_SECONDS": 12.0,
}
WATCH_INTERVAL = 0.25
WATCH_LIMIT_S = 300.0


@dataclass(frozen=True)
class Seen:
    at: float
    path: str
    status: int | None  # None: no HTTPS answer (the proxy not up yet)
    body: bytes


class Watcher(threading.Thread):
    """Asks `{base}/health` and `{base}/System/Ping` through the proxy, over and over, and
    records the answers; bounded in time, stops when told. On the first "loading" answer it
    runs verify's reach checks once."""

    def __init__(self, stack: Stack, base: str) -> None:
        super().__init__(daemon=True)
        self.stack, self.base = stack, base
        self.root = stack.directory / "tls/ca.pem"
        self.seen: list[Seen] = []
        self.reach_while_loading: Report | None = None
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + WATCH_LIMIT_S
        while not self.done.is_set() and time.monotonic() < deadline:
            for path in (f"{self.base}/health", f"{self.base}/System/Ping"):
                try:
                    reply = lowlevel.https(DOMAIN, HTTPS_PORT, self.root, path)
                except (OSError, ValueError, http.client.HTTPException):
                    self.seen.append(Seen(time.monotonic(), path, None, b""))
                    continue
                self.seen.append(Seen(time.monotonic(), path, reply.status, reply.body[:200]))
                if reply.body == LOADING and self.reach_while_loading is None:
                    # In-process (no interpreter to start): fast enough for the phase.
                    self.reach_while_loading = self.stack.verify(only=["reach"], timeout=5.0)
            self.done.wait(WATCH_INTERVAL)

    def health(self) -> list[Seen]:
        return [s for s in self.seen if s.path.endswith("/health") and s.status is not None]


@pytest.mark.parametrize(("proxy", "base"), [("nginx", ""), ("haproxy", "/jellyfin")])
def test_up_waits_out_a_slowly_starting_jellyfin(
    make_stack: StackFactory, proxy: str, base: str
) -> None:
    """Jellyfin starts in phases: port closed, the start-up server (/health 200 "Degraded"),
    the main app still loading (503 to all but /System/Ping), ready. `up` must return only
    once /health says Healthy through the proxy - never on a 200 Degraded or a 503."""
    stack = make_stack(proxy, subpath=base, tls="internal", start=False)
    add_standin_environment(stack, {name: str(value) for name, value in PHASES.items()})
    watcher = Watcher(stack, base)
    watcher.start()
    started = time.monotonic()
    try:
        up = stackgen("up", "--dir", str(stack.directory), "--timeout", "180", check=False)
        returned = time.monotonic()
        # Right after `up`, Jellyfin is ready through the proxy.
        health = lowlevel.https(DOMAIN, HTTPS_PORT, watcher.root, f"{base}/health")
    finally:
        watcher.done.set()
        watcher.join(timeout=30)
    assert up.returncode == 0, up.stderr
    assert (health.status, health.body) == (200, b"Healthy")
    assert returned - started >= sum(PHASES.values()), "up returned before Jellyfin could be up"

    answers = watcher.health()
    starting = [s for s in answers if s.body != b"Healthy"]
    first_healthy = next(s.at for s in answers if s.body == b"Healthy")
    assert starting, "the watcher never saw Jellyfin starting"
    assert all(s.at < first_healthy for s in starting), "Healthy, then starting again"
    assert first_healthy <= returned
    bodies = {s.body for s in starting}
    print(f"{proxy}: seen while starting: {sorted(bodies)}")
    if proxy == "haproxy":
        # HAProxy's health check (expect string Healthy) keeps a starting Jellyfin out of
        # rotation: clients get HAProxy's own 503, never a Degraded or a loading page.
        assert b"Degraded" not in bodies and LOADING not in bodies, bodies
    else:
        # The proxy passes each phase through: the start-up server's Degraded (root base
        # only: it knows no BaseUrl), then the main app's loading page.
        assert b"Degraded" in bodies and LOADING in bodies, bodies
        pings = [s for s in watcher.seen if s.path.endswith("/System/Ping") and s.status]
        assert any(s.status == 200 and s.at < first_healthy for s in pings), pings
        assert watcher.reach_while_loading is not None
        upstream = watcher.reach_while_loading.get("reach.upstream")
        assert upstream is not None
        assert upstream.details["status"] == 503, upstream  # it met the loading phase
        assert upstream.status is Status.PASS, upstream
        assert "still loading" in upstream.reason
