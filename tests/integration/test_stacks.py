"""Every proxy x {subdomain, subpath} x {Jellyfin host, bridge}: init, up, proven over
HTTPS with Pebble-issued certificates, then down leaves nothing behind.

The subpath-bridge stack of each proxy has `http2 = false` (a stack fewer than testing it
apart): it must select http/1.1 for a client that offers h2; the others are verified over
both HTTP/1.1 and h2. The root-host stack of each proxy with HTTP/3 (all but Apache) has
`http3 = true` and must answer verify's QUIC request."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from integration import lowlevel
from integration.conftest import (
    DOMAIN,
    HTTP_PORT,
    HTTPS_PORT,
    STANDIN_API_KEY,
    Stack,
    StackFactory,
    exposure_audit,
)

from stackgen.proxies import available, get_proxy

MATRIX = [
    (proxy, subpath, network)
    for proxy in available()
    for subpath in ("", "/jellyfin")
    for network in ("host", "bridge")
]
MEDIA_BYTES = 64 * 1024 * 1024  # the stand-in's default generated file


def _id(proxy: str, subpath: str, network: str) -> str:
    return (
        f"{proxy}-{'subpath' if subpath else 'root'}-{network}"
        + ("" if _http2(subpath, network) else "-no-http2")
        + ("-http3" if _http3(proxy, subpath, network) else "")
    )


def _http3(proxy: str, subpath: str, network: str) -> bool:
    return get_proxy(proxy).supports_http3 and not subpath and network == "host"


def _http2(subpath: str, network: str) -> bool:
    return not (subpath and network == "bridge")


def _expected_bytes(start: int, end: int) -> bytes:
    # The stand-in's media file: byte i is i % 251.
    return bytes(i % 251 for i in range(start, end + 1))


@pytest.mark.parametrize(("proxy", "subpath", "network"), MATRIX, ids=[_id(*m) for m in MATRIX])
def test_stack_end_to_end(
    make_stack: StackFactory,
    pebble: object,
    sslyze: Path,
    proxy: str,
    subpath: str,
    network: str,
) -> None:
    http2, http3 = _http2(subpath, network), _http3(proxy, subpath, network)
    stack = make_stack(
        proxy, subpath=subpath, network=network, config={"http2": http2, "http3": http3}
    )
    root = pebble.issuer_root_file  # type: ignore[attr-defined]
    base = subpath

    # ALPN, seen by a client that offers h2 first: h2 exactly when it is on.
    assert lowlevel.negotiated_alpn(DOMAIN, HTTPS_PORT, root) == ("h2" if http2 else "http/1.1")

    # TLS: the chain verifies against Pebble's root alone, so the intermediate is served.
    assert lowlevel.served_chain_verifies(DOMAIN, HTTPS_PORT, root) in ("TLSv1.2", "TLSv1.3")

    # Health through the proxy: the body, not only the status.
    health = lowlevel.https(DOMAIN, HTTPS_PORT, root, f"{base}/health")
    assert (health.status, health.body) == (200, b"Healthy")
    assert "max-age=63072000" in (health.headers["Strict-Transport-Security"] or "")

    # HTTP -> HTTPS keeps path and query; the ACME path is not redirected.
    redirect = lowlevel.plain_http(DOMAIN, HTTP_PORT, f"{base}/web/index.html?a=1&b=two")
    assert redirect.status in (301, 308)
    location = urlsplit(redirect.headers["Location"])
    assert (location.scheme, location.hostname, location.port) == ("https", DOMAIN, HTTPS_PORT)
    assert (location.path, location.query) == (f"{base}/web/index.html", "a=1&b=two")
    acme = lowlevel.plain_http(DOMAIN, HTTP_PORT, "/.well-known/acme-challenge/not-a-token")
    assert acme.status not in (301, 302, 307, 308)

    # What the stand-in understood: real client (not the proxy), https, public host.
    echo = lowlevel.https(
        DOMAIN,
        HTTPS_PORT,
        root,
        f"{base}/__standin/echo",
        headers={"X-Forwarded-For": "203.0.113.66"},
    ).json()
    proxy_address = stack.config.known_proxies[0]
    assert echo["forwarded_headers_honoured"] is True
    assert echo["peer_address"] == proxy_address
    assert echo["client_address"] != proxy_address
    assert echo["client_address"] != "203.0.113.66", "a client-supplied XFF was trusted"
    assert echo["scheme"] == "https"
    assert echo["host"] == f"{DOMAIN}:{HTTPS_PORT}"
    info = lowlevel.https(DOMAIN, HTTPS_PORT, root, f"{base}/System/Info/Public").json()
    assert info["LocalAddress"] == f"https://{DOMAIN}:{HTTPS_PORT}{base}"

    # WebSocket at {base}/socket exchanges KeepAlive.
    frames = lowlevel.websocket_keepalive(
        DOMAIN, HTTPS_PORT, root, f"{base}/socket?api_key={STANDIN_API_KEY}&deviceId=pytest"
    )
    assert frames[-1]["MessageType"] == "KeepAlive"

    # Range: 206 with exactly the right bytes.
    start, end = 10_000_000, 10_000_999
    ranged = lowlevel.https(
        DOMAIN,
        HTTPS_PORT,
        root,
        f"{base}/Videos/standin/stream?static=true",
        headers={"Range": f"bytes={start}-{end}"},
    )
    assert ranged.status == 206
    assert ranged.headers["Content-Range"] == f"bytes {start}-{end}/{MEDIA_BYTES}"
    assert ranged.body == _expected_bytes(start, end)

    # A 20 MB upload is accepted whole.
    body = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    upload = lowlevel.https(
        DOMAIN,
        HTTPS_PORT,
        root,
        f"{base}/__standin/upload",
        method="POST",
        body=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert upload.status == 200
    assert upload.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    if subpath:
        bare = lowlevel.https(DOMAIN, HTTPS_PORT, root, subpath)
        assert bare.status in (301, 302, 307, 308)
        # Jellyfin's Location is relative to the requested path (jellyfin/web/).
        location = urljoin(f"https://{DOMAIN}:{HTTPS_PORT}{subpath}", bare.headers["Location"])
        assert urlsplit(location).path.startswith(f"{subpath}/")

    _assert_verify_is_clean(stack, http2, http3)
    _assert_mozilla_intermediate_by_sslyze(sslyze, root)
    _assert_status(stack)
    _assert_certificate_state(stack)
    _assert_down_leaves_nothing(stack)


def _assert_verify_is_clean(stack: Stack, http2: bool, http3: bool) -> None:
    """The product's own verdict: every check passes, with no warning, over h2 too when it
    is on (each request-level check once per protocol)."""
    from integration.conftest import stackgen

    result = stackgen(
        "verify",
        "--dir",
        str(stack.directory),
        "--json",
        "--media-path",
        "/Videos/standin/stream?static=true",
        check=False,
    )
    report = json.loads(result.stdout)
    problems = [
        f"{c['id']}: {c['status']}: {c['reason']}"
        for c in report["checks"]
        if c["status"] != "pass" and not exposure_audit(c["id"])
    ]
    assert problems == [], "\n".join(problems)
    assert result.returncode == 0, result.stderr
    protocols = {c["id"]: set() for c in report["checks"]}
    for c in report["checks"]:
        protocols[c["id"]].add(c["protocol"])
    expected = {"http/1.1", "h2"} if http2 else {"http/1.1"}
    for check_id in ("jellyfin.health", "jellyfin.redirect-loop", "stream.range", "stream.ttfb"):
        assert protocols[check_id] == expected, check_id
    for check_id in ("upload.20mb", "headers.security"):
        assert protocols[check_id] == expected, check_id
    assert protocols["websocket.keepalive"] == {"http/1.1"}
    alpn = next(c for c in report["checks"] if c["id"] == "tls.alpn")
    assert alpn["details"]["selected"] == ("h2" if http2 else "http/1.1")
    # HTTP/3 answered over QUIC exactly where it is on (otherwise nothing is advertised).
    assert ("http3.get" in protocols) is http3


def _assert_mozilla_intermediate_by_sslyze(sslyze: Path, root: Path) -> None:
    """An established third-party scanner's verdict on the TLS configuration."""
    result = subprocess.run(
        [
            str(sslyze),
            "--mozilla_config=intermediate",
            "--certinfo_ca_file",
            str(root),
            f"{DOMAIN}:{HTTPS_PORT}{{127.0.0.1}}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    verdict = result.stdout[result.stdout.find("COMPLIANCE AGAINST") :]
    assert result.returncode == 0 and "OK - Compliant" in verdict, verdict or result.stderr


def _assert_status(stack: Stack) -> None:
    from integration.conftest import stackgen

    status = json.loads(stackgen("status", "--dir", str(stack.directory), "--json").stdout)
    assert status["running"] and status["healthy"]
    assert {s["service"] for s in status["services"]} >= {"jellyfin", stack.config.proxy}
    certificate = status["certificate"]
    assert certificate["verified"], certificate["verify_error"]
    assert "Pebble" in certificate["issuer"]
    assert certificate["subject"] == f"CN={DOMAIN}"
    assert certificate["days_left"] > 21
    assert status["trust_file"]


def _assert_certificate_state(stack: Stack) -> None:
    if stack.config.proxy != "traefik":
        return
    acme = stack.directory / "traefik/acme.json"
    assert stat.S_IMODE(acme.stat().st_mode) == 0o600
    stored = json.loads(acme.read_text())
    domains = [c["domain"]["main"] for c in stored["acme"]["Certificates"]]
    assert domains == [DOMAIN]


def _assert_down_leaves_nothing(stack: Stack) -> None:
    from integration.conftest import stackgen

    stackgen("down", "--dir", str(stack.directory))
    label = f"label=com.docker.compose.project={stack.config.project}"
    containers = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", label], capture_output=True, text=True, check=True
    ).stdout.split()
    networks = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", label],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert containers == [] and networks == []
