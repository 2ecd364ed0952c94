"""The token gate (`access.gate.mode = "token"`, docs/access.md) end to end through each proxy: a
stream, a subtitle and the WebSocket - which Jellyfin 10.11 (and the stand-in) serve without
a token, or with any token the socket's own check accepts - are refused without a token
Jellyfin confirms, with a forged one and with a revoked one once the cache time is over;
every token form a client sends passes; the web client's page and the public system info
still load without one."""

from __future__ import annotations

import hashlib
import subprocess
import time

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

from stackgen.proxies import available

USER_TOKEN = "0c1d2e3f40516273a4b5c6d7e8f90123"  # a session token's shape: 32 hex digits
REVOKED = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
CACHE_SECONDS = 2
STREAM = "/Videos/0123abcd/stream.mkv?static=true"
SUBTITLE = "/Videos/0123abcd/4567ef/Subtitles/0/Stream.vtt"
FIRST_KIB = {"Range": "bytes=0-1023"}
UPLOAD = bytes(range(256)) * (4 * 1024 * 1024 // 256)


def _subpath(proxy: str) -> str:
    # Both forms across the five proxies, as the contract test does.
    return "/jellyfin" if available().index(proxy) % 2 else ""


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f'MediaBrowser Client="pytest", Device="d", Token="{token}"'}


@pytest.mark.parametrize("proxy", available())
def test_the_token_gate_through_the_proxy(
    make_stack: StackFactory, images: dict[str, str], proxy: str
) -> None:
    base = _subpath(proxy)
    gate = {"mode": "token", "cache_seconds": CACHE_SECONDS, "image": images["debian-base"]}
    stack = make_stack(
        proxy,
        subpath=base,
        tls="internal",
        network="bridge",
        start=False,
        config={"access": {"gate": gate}},
    )
    add_standin_environment(
        stack, {"STANDIN_API_KEYS": f"{STANDIN_API_KEY},{USER_TOKEN},{REVOKED}"}
    )
    up = stackgen("up", "--dir", str(stack.directory), "--timeout", "180", check=False)
    assert up.returncode == 0, up.stderr
    root = stack.directory / "tls/ca.pem"

    def get(path: str, headers: dict[str, str] | None = None) -> lowlevel.Reply:
        # Media streams: the first KiB only (the stand-in's media file is 64 MiB).
        media = "/stream" in path.lower() and "/subtitles/" not in path.lower()
        ranged = FIRST_KIB if media else {}
        return lowlevel.https(
            DOMAIN, HTTPS_PORT, root, base + path, headers={**ranged, **(headers or {})}
        )

    # Before login: the web client's page and what it asks first, without a token.
    page = get("/web/")
    assert page.status == 200 and b"Jellyfin stand-in" in page.body
    assert get("/System/Info/Public").json()["ProductName"] == "Jellyfin Server"
    assert get("/emby/System/Ping").status == 200

    # No token, a forged one in each place, the attacker's own request line, a dot segment
    # behind an anonymous prefix: refused by the gate (401) on a stream and a subtitle,
    # which Jellyfin itself would serve to anyone.
    refusals: list[tuple[str, dict[str, str]]] = [
        (STREAM, {}),
        (SUBTITLE, {}),
        (STREAM + "&api_key=forged0000", {}),
        (STREAM + "&ApiKey=forged0000", {}),
        (SUBTITLE, {"X-Emby-Token": "forged0000"}),
        (STREAM, _bearer("forged0000")),
        (STREAM, {"X-Forwarded-Uri": f"{base}/System/Info/Public"}),
        ("/web/%2e%2e/Videos/0123abcd/stream", {}),
        ("/Users/Public", {}),
    ]
    for path, headers in refusals:
        assert get(path, headers).status == 401, (path, headers)
    for query, headers in [
        ("?deviceId=pytest", {}),
        ("?api_key=forged0000&deviceId=pytest", {}),
        ("", {"X-Emby-Token": "forged0000"}),
    ]:
        refusal = lowlevel.websocket_refusal(
            DOMAIN, HTTPS_PORT, root, f"{base}/socket{query}", headers
        )
        assert refusal.status == 401, (query, headers)

    # A valid token in each form clients send: served.
    for path, headers in [
        (STREAM, _bearer(USER_TOKEN)),
        (STREAM + f"&ApiKey={USER_TOKEN}", {}),
        (STREAM + f"&api_key={USER_TOKEN}", {}),
        (STREAM.lower() + f"&api_key={USER_TOKEN}", {}),
        ("/emby" + STREAM + f"&api_key={USER_TOKEN}", {}),
        (STREAM, {"X-Emby-Token": USER_TOKEN}),
    ]:
        assert get(path, headers).status == 206, (path, headers)
    # An upload (a poster): its body goes to Jellyfin, never to the gate, whatever the
    # proxy's sub-request does with a body.
    upload = lowlevel.https(
        DOMAIN,
        HTTPS_PORT,
        root,
        f"{base}/Items/0123abcd/Images/Primary",
        method="POST",
        body=UPLOAD,
        headers={"Content-Type": "image/jpeg", "X-Emby-Token": USER_TOKEN},
    )
    assert upload.status == 204
    whole = lowlevel.https(
        DOMAIN,
        HTTPS_PORT,
        root,
        f"{base}/__standin/upload",
        method="POST",
        body=UPLOAD,
        headers={"X-Emby-Token": USER_TOKEN},
    )
    assert whole.status == 200
    assert whole.json() == {"bytes": len(UPLOAD), "sha256": hashlib.sha256(UPLOAD).hexdigest()}
    subtitle = get(SUBTITLE, {"X-MediaBrowser-Token": USER_TOKEN})
    assert subtitle.status == 200 and subtitle.body.startswith(b"WEBVTT")
    socket_path = f"{base}/socket?api_key={USER_TOKEN}&deviceId=pytest"
    frames = lowlevel.websocket_keepalive(DOMAIN, HTTPS_PORT, root, socket_path)
    assert frames[-1]["MessageType"] == "KeepAlive"

    # Revoked: still served from the gate's cache for at most CACHE_SECONDS, then refused.
    assert get(STREAM, _bearer(REVOKED)).status == 206
    revoke = lowlevel.https(
        DOMAIN,
        HTTPS_PORT,
        root,
        f"{base}/Auth/Keys/{REVOKED}",
        method="DELETE",
        headers={"X-Emby-Token": STANDIN_API_KEY},
    )
    assert revoke.status == 204
    time.sleep(CACHE_SECONDS + 1)
    assert get(STREAM, _bearer(REVOKED)).status == 401
    assert get(SUBTITLE + f"?api_key={REVOKED}").status == 401
    refusal = lowlevel.websocket_refusal(
        DOMAIN, HTTPS_PORT, root, f"{base}/socket?api_key={REVOKED}&deviceId=pytest"
    )
    assert refusal.status == 401

    # No live token in any container's log (the gate logs none; the proxies log no query).
    # The revoked key is left out: Jellyfin's revocation route names it in its path.
    logs = _raw_logs(stack)
    for token in (USER_TOKEN, STANDIN_API_KEY):
        assert token not in logs, f"{token} in the logs"


def _raw_logs(stack: Stack) -> str:
    """The containers' logs as they are (the harness's own copy is redacted)."""
    result = subprocess.run(
        ["docker", "compose", "--project-directory", str(stack.directory), "logs", "--no-color"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout + result.stderr


def test_the_gate_reaches_a_host_network_jellyfin(
    make_stack: StackFactory, images: dict[str, str]
) -> None:
    """Jellyfin on the host's network (the default, for DLNA): the gate asks it the way the
    proxy reaches it, through the host gateway."""
    gate = {"mode": "token", "image": images["debian-base"]}
    stack = make_stack("caddy", tls="internal", network="host", config={"access": {"gate": gate}})
    root = stack.directory / "tls/ca.pem"

    def stream(headers: dict[str, str]) -> int:
        reply = lowlevel.https(DOMAIN, HTTPS_PORT, root, STREAM, headers={**FIRST_KIB, **headers})
        return reply.status

    assert stream({}) == 401
    assert stream({"X-Emby-Token": "forged0000"}) == 401
    assert stream({"X-Emby-Token": STANDIN_API_KEY}) == 206
