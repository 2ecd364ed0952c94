"""Tests for the Jellyfin stand-in (tests/images/jellyfin-standin), without Docker.

The server runs as a real subprocess on 127.0.0.1 with a temporary config dir, the way
the container runs it: that exercises the environment handling, network.xml, the
access log on stdout and SIGTERM too. Set STANDIN_TEST_PYTHON=/usr/bin/python3 to run
the server under Debian's python3-aiohttp (3.8), the interpreter the image uses.
Pure functions (forwarded-header trust, ranges, scrubbing) are also tested directly,
for peers that loopback traffic cannot produce.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import importlib.util
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stackgen.probe import WebSocketClosed, open_websocket

APP = Path(__file__).resolve().parents[1] / "images" / "jellyfin-standin" / "jellyfin_standin.py"
PYTHON = os.environ.get("STANDIN_TEST_PYTHON", sys.executable)
MEDIA_BYTES = 3_000_000
KEY = "key-under-test"
REVOCABLE = "key-to-revoke"
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
FORWARDED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "media.example.com",
}


def _load_standin() -> ModuleType:
    # The app is a script in a hyphenated folder, so it is loaded by path.
    spec = importlib.util.spec_from_file_location("jellyfin_standin", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


standin = _load_standin()


def network_xml(
    base_url: str = "", known_proxies: tuple[str, ...] = (), *, by_request: bool = False
) -> str:
    proxies = "".join(f"<string>{p}</string>" for p in known_proxies)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<NetworkConfiguration xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<BaseUrl>{base_url}</BaseUrl><InternalHttpPort>8096</InternalHttpPort>"
        f"<KnownProxies>{proxies}</KnownProxies>"
        f"<EnablePublishedServerUriByRequest>{str(by_request).lower()}"
        "</EnablePublishedServerUriByRequest></NetworkConfiguration>\n"
    )


@dataclasses.dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class StandinProcess:
    """The stand-in as a subprocess on an ephemeral loopback port.

    Construction only launches it, so several can start in parallel; ``ready()`` waits
    for the "listening on" line that names the port.
    """

    def __init__(self, config_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.config_dir = config_dir
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONUNBUFFERED": "1",
            "JELLYFIN_CONFIG_DIR": str(config_dir),
            "STANDIN_BIND": "127.0.0.1",
            "STANDIN_PORT": "0",
            "STANDIN_MEDIA_BYTES": str(MEDIA_BYTES),
            "STANDIN_SERVER_NAME": "standin-under-test",
            "STANDIN_API_KEYS": f"{KEY},second-key",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [PYTHON, str(APP)],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._eof = False
        self._terminated = False
        self._changed = threading.Condition()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()
        self.port = 0

    def ready(self) -> StandinProcess:
        line = self.wait_for_line(lambda text: "listening on" in text)
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        self.port = int(match.group(1))
        return self

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    raise AssertionError("expected line not logged:\n" + "\n".join(self.lines))
                self._changed.wait(remaining)

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return self.request("GET", path, headers)

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def terminate(self) -> None:
        # Once only: a second SIGTERM during interpreter teardown, after asyncio has
        # removed its handler, would kill the process with the default action.
        if not self._terminated and self.proc.poll() is None:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        self.terminate()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        finally:
            self._pump_thread.join(timeout=5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, StandinProcess]]:
    """The long-lived servers, started in parallel to keep the suite fast."""
    proxied_config = tmp_path_factory.mktemp("proxied")
    (proxied_config / "network.xml").write_text(
        network_xml("jellyfin/", ("10.9.8.7", "172.30.77.0/24"), by_request=True)
    )
    servers = {
        # No network.xml at all: defaults, no base URL, forwarding disabled.
        "plain": StandinProcess(tmp_path_factory.mktemp("plain") / "config"),
        # Base URL /jellyfin, KnownProxies set, LocalAddress built from the request.
        "proxied": StandinProcess(proxied_config),
        # Published URL set; the SIGTERM test shuts this one down.
        "published": StandinProcess(
            tmp_path_factory.mktemp("published"),
            {"JELLYFIN_PublishedServerUrl": "https://tv.example.org/jf/"},
        ),
    }
    try:
        for server in servers.values():
            server.ready()
        yield servers
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.stop()


@pytest.fixture
def plain(fleet: dict[str, StandinProcess]) -> StandinProcess:
    return fleet["plain"]


@pytest.fixture
def proxied(fleet: dict[str, StandinProcess]) -> StandinProcess:
    return fleet["proxied"]


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("   ", ""),
        ("/", ""),
        ("jellyfin", "/jellyfin"),
        ("/jellyfin/", "/jellyfin"),
        ("/media/jellyfin", "/media/jellyfin"),
    ],
)
def test_base_url_is_normalised_like_jellyfin(raw: str, expected: str) -> None:
    assert standin.normalise_base_url(raw) == expected


def test_network_xml_fields_are_read() -> None:
    config = standin.parse_network_xml(
        "<NetworkConfiguration><BaseUrl>/jf/</BaseUrl><InternalHttpPort>8097</InternalHttpPort>"
        "<KnownProxies><string>10.0.0.1</string><string>proxy</string></KnownProxies>"
        "<EnableIPv6>true</EnableIPv6><Unknown>ignored</Unknown></NetworkConfiguration>"
    )
    assert (config.base_url, config.internal_http_port) == ("/jf", 8097)
    assert config.known_proxies == ("10.0.0.1", "proxy")
    assert config.enable_ipv6 and not config.enable_published_server_uri_by_request
    assert config.errors == ()


def test_broken_network_xml_is_reported_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "network.xml"
    path.write_text("<ServerConfiguration/>")
    config = standin.load_network_config(tmp_path)
    assert config.base_url == "" and config.known_proxies == ()
    assert "NetworkConfiguration" in config.errors[0]
    assert path.read_text() == "<ServerConfiguration/>"


def test_missing_network_xml_is_created_with_defaults(plain: StandinProcess) -> None:
    created = plain.config_dir / "network.xml"
    assert standin.parse_network_xml(created.read_text()) == standin.NetworkConfig()
    assert plain.get("/__standin/echo").json()["config_errors"] == []


# --------------------------------------------------------------------------------------
# Forwarded headers: trust decisions for arbitrary peers
# --------------------------------------------------------------------------------------


def _trust(*entries: str, **flags: bool) -> Any:
    config = standin.NetworkConfig(known_proxies=entries, **flags)
    fake_dns = {"proxy.test": [ipaddress.ip_address("198.51.100.4")]}
    return standin.build_proxy_trust(config, resolve=lambda name: fake_dns[name])


def _forward(peer: str, trust: Any, **headers: str) -> Any:
    names = {"xff": "x-forwarded-for", "xfp": "x-forwarded-proto", "xfh": "x-forwarded-host"}
    lines = {names[key]: [value] for key, value in headers.items()}
    return standin.apply_forwarded_headers((peer, 50000), "http", "backend:8096", lines, trust)


def test_empty_known_proxies_disables_forwarding() -> None:
    assert _trust() is None
    view = _forward("172.30.77.5", None, xff="203.0.113.7", xfp="https", xfh="a.example")
    assert (view.client_address, view.scheme, view.host) == ("172.30.77.5", "http", "backend:8096")
    assert not view.honoured and not view.peer_trusted


def test_trust_set_holds_entries_plus_aspnet_loopback_defaults() -> None:
    trust = _trust("172.30.77.0/24", "10.9.8.7", "::ffff:192.0.2.9", "fd00::/8", "proxy.test")
    assert sorted(trust.describe()) == sorted(
        ["::1", "10.9.8.7", "192.0.2.9", "198.51.100.4", "127.0.0.0/8", "172.30.77.0/24"]
    )  # fd00::/8 dropped: IPv6 is disabled by default, as in Jellyfin
    assert "fd00::/8" in _trust("fd00::/8", enable_ipv6=True).describe()


@pytest.mark.parametrize(
    ("peer", "xff", "client", "honoured"),
    [
        ("172.30.77.5", "203.0.113.7", "203.0.113.7", True),  # CIDR member
        ("10.9.8.7", "203.0.113.7", "203.0.113.7", True),  # exact IP
        ("198.51.100.4", "203.0.113.7", "203.0.113.7", True),  # resolved host name
        ("::ffff:172.30.77.5", "203.0.113.7", "203.0.113.7", True),  # IPv4-mapped peer
        ("127.0.0.1", "203.0.113.7", "203.0.113.7", True),  # loopback: ASP.NET default
        ("192.0.2.50", "203.0.113.7", "192.0.2.50", False),  # peer not in the list
        ("172.30.77.5", "198.51.100.1, 10.9.8.7", "198.51.100.1", True),  # two known hops
        ("172.30.77.5", "6.6.6.6, 203.0.113.7", "203.0.113.7", True),  # spoofed left part
        ("172.30.77.5", "unknown", "172.30.77.5", False),  # unparsable stops the walk
        ("172.30.77.5", "203.0.113.7:4711", "203.0.113.7", True),
        ("172.30.77.5", "[2001:db8::1]:443", "2001:db8::1", True),
    ],
)
def test_forwarded_for_walk(peer: str, xff: str, client: str, honoured: bool) -> None:
    trust = _trust("172.30.77.0/24", "10.9.8.7", "proxy.test")
    view = _forward(peer, trust, xff=xff, xfp="https", xfh="media.example.com")
    assert (view.client_address, view.honoured) == (client, honoured)
    assert (view.scheme, view.host) == (
        ("https", "media.example.com") if honoured else ("http", "backend:8096")
    )


def test_forwarded_proto_and_host_align_from_the_right() -> None:
    trust = _trust("172.30.77.0/24")
    view = _forward("172.30.77.5", trust, xff="203.0.113.7", xfp="http, https", xfh="bad host")
    # One trusted hop consumes only the right-most entry; an invalid host is skipped.
    assert (view.scheme, view.host) == ("https", "backend:8096")


# --------------------------------------------------------------------------------------
# Ranges, media bytes and log scrubbing
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["bytes=0-9"], (0, 9)),
        (["bytes=990-2000"], (990, 999)),
        (["bytes=500-"], (500, 999)),
        (["bytes=-100"], (900, 999)),
        (["bytes=-5000"], (0, 999)),
        (["bytes=1000-"], "unsatisfiable"),
        (["bytes=-0"], "unsatisfiable"),
        (["bytes=0-1,5-6"], None),  # multiple ranges: served whole, as ASP.NET does
        (["bytes=9-1"], None),
        (["items=0-1"], None),
        (["bytes=0-1", "bytes=2-3"], None),
    ],
)
def test_select_range(header: list[str], expected: object) -> None:
    assert standin.select_range(header, 1000) == expected


def test_media_bytes_formula() -> None:
    assert standin.media_bytes(0, 4) == bytes([0, 1, 2, 3])
    assert standin.media_bytes(249, 4) == bytes([249, 250, 0, 1])
    big = standin.media_bytes(70_000, 140_000)
    assert all(big[i] == (70_000 + i) % 251 for i in range(0, 140_000, 997))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/socket?api_key=s3cr3t&deviceId=d", "/socket?api_key=***&deviceId=d"),
        ("/a?ApiKey=s3cr3t", "/a?ApiKey=***"),
        ("/a?API_KEY=s3cr3t", "/a?API_KEY=***"),
        ("/a?api%5Fkey=s3cr3t", "/a?api%5Fkey=***"),
        ("/a?x=api_key", "/a?x=api_key"),
        ("/api_key=x", "/api_key=x"),
    ],
)
def test_scrub_tokens(target: str, expected: str) -> None:
    assert standin.scrub_tokens(target) == expected


# --------------------------------------------------------------------------------------
# HTTP behaviour, no base URL, forwarding disabled
# --------------------------------------------------------------------------------------


def test_health_body_is_exactly_healthy(plain: StandinProcess) -> None:
    reply = plain.get("/health")
    assert (reply.status, reply.body) == (200, b"Healthy")
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.headers["Server"] == "Kestrel"


def test_root_redirects_to_web_and_web_serves_html(plain: StandinProcess) -> None:
    root = plain.get("/")
    assert (root.status, root.headers["Location"]) == (302, "web/")
    # Absolute, from the connection's scheme and Host: no KnownProxies, so the forwarded
    # headers are ignored and the client would be sent to the internal address.
    bare = plain.get("/web?x=1", {**FORWARDED, "Host": "jellyfin:8096"})
    assert (bare.status, bare.headers["Location"]) == (301, "http://jellyfin:8096/web/?x=1")
    for path in ("/web/", "/web/index.html", "/WEB/"):
        page = plain.get(path)
        assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "<title>Jellyfin stand-in</title>" in page.text
    assert plain.get("/web/missing.js").status == 404
    assert plain.get("/no/such/route").status == 404


def test_ping_and_methods(plain: StandinProcess) -> None:
    for method in ("GET", "POST"):
        reply = plain.request(method, "/System/Ping")
        assert (reply.status, reply.json()) == (200, "Jellyfin Server")
    assert plain.request("DELETE", "/System/Ping").status == 405


def test_paths_are_case_insensitive(plain: StandinProcess) -> None:
    assert plain.get("/HEALTH").body == b"Healthy"
    assert plain.get("/system/ping").json() == "Jellyfin Server"
    assert plain.get("/SYSTEM/INFO/PUBLIC/").json()["ProductName"] == "Jellyfin Server"
    assert plain.request("HEAD", "/videos/abc/STREAM.mp4").status == 200


def test_public_info_fields(plain: StandinProcess) -> None:
    info = plain.get("/System/Info/Public", FORWARDED).json()
    assert info["OperatingSystem"] == ""  # obsolete in Jellyfin, never set
    assert set(info) == {
        "LocalAddress", "ServerName", "Version", "ProductName",
        "OperatingSystem", "Id", "StartupWizardCompleted",
    }  # fmt: skip
    assert info["ProductName"] == "Jellyfin Server" and info["StartupWizardCompleted"] is True
    assert info["Version"].startswith("10.11.") and info["ServerName"] == "standin-under-test"
    assert re.fullmatch(r"[0-9a-f]{32}", info["Id"])
    # Jellyfin's default: the bind address, not the (here ignored) forwarded host.
    assert info["LocalAddress"] == f"http://127.0.0.1:{plain.port}"


def test_forwarded_headers_ignored_without_known_proxies(plain: StandinProcess) -> None:
    echo = plain.get("/__standin/echo?a=1&b=two", {**FORWARDED, "X-Custom": "yes"}).json()
    assert echo["client_address"] == echo["peer_address"] == "127.0.0.1"
    assert (echo["scheme"], echo["host"]) == ("http", f"127.0.0.1:{plain.port}")
    assert echo["forwarded_headers_honoured"] is False and echo["peer_trusted"] is False
    assert echo["known_proxies"] == [] and echo["trusted_proxies"] == []
    assert echo["headers"]["x-forwarded-for"] == "203.0.113.7"
    assert ["X-Custom", "yes"] in echo["header_list"]
    assert (echo["path"], echo["query_string"]) == ("/__standin/echo", "a=1&b=two")
    assert echo["query"] == {"a": "1", "b": "two"} and echo["base_url"] == ""


def test_full_stream_is_the_documented_byte_pattern(plain: StandinProcess) -> None:
    reply = plain.get("/Videos/item1/stream?static=true")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "video/mp4"
    assert reply.headers["Accept-Ranges"] == "bytes"
    assert reply.headers["ETag"] is None  # like Jellyfin's static stream
    assert reply.body == standin.media_bytes(0, MEDIA_BYTES)


def test_range_requests(plain: StandinProcess) -> None:
    path = "/Videos/item1/stream?static=true"
    part = plain.get(path, {"Range": "bytes=1000000-1000499"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 1000000-1000499/{MEDIA_BYTES}"
    assert part.body == standin.media_bytes(1_000_000, 500)

    tail = plain.get(path, {"Range": "bytes=-300"})
    assert tail.status == 206 and tail.body == standin.media_bytes(MEDIA_BYTES - 300, 300)
    open_ended = plain.get(path, {"Range": f"bytes={MEDIA_BYTES - 10}-"})
    assert open_ended.body == standin.media_bytes(MEDIA_BYTES - 10, 10)

    unsatisfiable = plain.get(path, {"Range": f"bytes={MEDIA_BYTES}-"})
    assert unsatisfiable.status == 416
    assert unsatisfiable.headers["Content-Range"] == f"bytes */{MEDIA_BYTES}"
    assert plain.get(path, {"Range": "bytes=0-1,5-6"}).status == 200

    head = plain.request("HEAD", path, {"Range": "bytes=0-99"})
    assert (head.status, head.headers["Content-Length"], head.body) == (206, "100", b"")


def test_if_range(plain: StandinProcess) -> None:
    path = "/Videos/item1/stream"
    last_modified = plain.request("HEAD", path).headers["Last-Modified"]
    same = plain.get(path, {"Range": "bytes=10-19", "If-Range": last_modified})
    assert (same.status, same.body) == (206, standin.media_bytes(10, 10))
    stale = {"Range": "bytes=10-19", "If-Range": "Mon, 01 Jan 2024 00:00:00 GMT"}
    changed = plain.get(path, stale)
    assert changed.status == 200 and len(changed.body) == MEDIA_BYTES
    # No ETag on the resource, so an entity-tag validator cannot mismatch (ASP.NET).
    assert plain.get(path, {"Range": "bytes=10-19", "If-Range": '"x"'}).status == 206
    assert plain.get(path, {"If-Modified-Since": last_modified}).status == 304


def test_media_comes_from_a_real_file_and_keeps_ranges(tmp_path: Path) -> None:
    """The zero-copy path (sendfile from the written file) serves the same bytes and the
    same Range answers as the in-memory path; `memory` keeps the old behaviour."""
    media = tmp_path / "media.bin"
    server = StandinProcess(tmp_path, {"STANDIN_MEDIA_FILE": str(media)}).ready()
    try:
        server.wait_for_line(lambda text: "media file ready" in text)
        assert media.read_bytes() == standin.media_bytes(0, MEDIA_BYTES)
        path = "/Videos/item1/stream?static=true"
        assert server.get(path).body == standin.media_bytes(0, MEDIA_BYTES)
        part = server.get(path, {"Range": "bytes=1000000-1000499"})
        assert part.status == 206 and part.body == standin.media_bytes(1_000_000, 500)
        tail = server.get(path, {"Range": "bytes=-300"})
        assert tail.body == standin.media_bytes(MEDIA_BYTES - 300, 300)
    finally:
        assert server.stop() == 0
    memory = StandinProcess(tmp_path, {"STANDIN_MEDIA_FILE": "memory"}).ready()
    try:
        part = memory.get(path, {"Range": "bytes=10-19"})
        assert (part.status, part.body) == (206, standin.media_bytes(10, 10))
        assert "media file ready" not in memory.output
    finally:
        assert memory.stop() == 0


def test_upload_of_20_mb(plain: StandinProcess) -> None:
    body = os.urandom(20 * 1024 * 1024)
    reply = plain.request("POST", "/__standin/upload", {"Content-Type": "image/jpeg"}, body)
    assert reply.status == 200
    assert reply.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    image = plain.request("POST", "/Items/abc/Images/Primary", {"X-Emby-Token": KEY}, body)
    assert image.status == 204


@pytest.mark.parametrize(
    "path",
    [
        "/Items/abc/Images/Primary",
        "/Items/abc/Images/Backdrop/1",
        "/Users/u1/Images/Primary",
        "/UserImage",
        "/Videos/abc/Subtitles",
    ],
)
@pytest.mark.parametrize("token", [None, "wrong"])
def test_uploads_are_refused_before_the_body_is_read(
    plain: StandinProcess, path: str, token: str | None
) -> None:
    """[Authorize] answers 401 before the controller reads the body: the stand-in answers
    while the client has sent only the headers of a 20 MiB upload."""
    headers = {"Content-Type": "image/jpeg", "Content-Length": str(20 * 1024 * 1024)}
    if token:
        headers["X-Emby-Token"] = token
    conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=5)
    try:
        conn.putrequest("POST", path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()  # no body sent: only an early answer gets here
        assert response.status == 401
    finally:
        conn.close()


def test_websocket_keepalive_round_trip(plain: StandinProcess) -> None:
    with open_websocket(plain.ws_url(f"/socket?api_key={KEY}&deviceId=dev"), timeout=5) as ws:
        hello = json.loads(ws.recv_text(timeout=5))
        assert (hello["MessageType"], hello["Data"]) == ("ForceKeepAlive", 60)
        ws.send_text(json.dumps({"MessageType": "KeepAlive"}))
        assert json.loads(ws.recv_text(timeout=5))["MessageType"] == "KeepAlive"


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?deviceId=dev", {}),
        ("?api_key=wrong", {}),
        ("?ApiKey=wrong", {}),
        ("", {"X-Emby-Token": "wrong"}),
        ("", {"X-MediaBrowser-Token": "wrong"}),
        ("", {"Authorization": 'MediaBrowser Client="t", Token="wrong"'}),
        ("", {"X-Emby-Authorization": 'Emby Client="t", Token="wrong"'}),
        ("", {"Authorization": f"Bearer {KEY}"}),  # not a scheme Jellyfin reads
        # The header's token comes first: a valid query key does not rescue a bad one.
        (f"?api_key={KEY}", {"X-Emby-Token": "wrong"}),
    ],
)
def test_websocket_refuses_a_missing_or_bad_token_with_403(
    plain: StandinProcess, query: str, headers: dict[str, str]
) -> None:
    """WebSocketManager throws SecurityException; ExceptionMiddleware answers 403
    "Error processing request." - never 401, never 101."""
    reply = plain.get(f"/socket{query}", {**UPGRADE, **headers})
    assert (reply.status, reply.body) == (403, b"Error processing request.")
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert plain.get(f"/socket{query}", headers).status == 404  # without Upgrade: no route


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        (f"?api_key={KEY}", {}),
        (f"?APIKEY={KEY}", {}),  # query names in any case
        ("", {"X-Emby-Token": "second-key"}),
        ("", {"X-MediaBrowser-Token": KEY}),
        ("", {"Authorization": f'MediaBrowser Client="t", DeviceId="d", Token="{KEY}"'}),
        ("", {"X-Emby-Authorization": f'Emby Token="{KEY}", Client="t"'}),
    ],
)
def test_websocket_accepts_a_valid_key_in_every_form(
    plain: StandinProcess, query: str, headers: dict[str, str]
) -> None:
    with open_websocket(plain.ws_url(f"/any/path{query}"), headers=headers, timeout=5) as ws:
        assert json.loads(ws.recv_text(timeout=5))["MessageType"] == "ForceKeepAlive"


def test_authorization_header_parts_like_jellyfin() -> None:
    parts = standin.authorization_parts('MediaBrowser Client="a, b", Token="x%2By", Version=1')
    assert parts == {"Client": "a, b", "Token": "x+y", "Version": "1"}
    assert standin.authorization_parts("Basic abc") is None
    assert standin.authorization_parts("MediaBrowser") is None


def test_unset_keys_mean_the_documented_default() -> None:
    settings = standin.Settings.from_env({})
    assert settings.api_keys == {standin.DEFAULT_API_KEY}
    assert standin.Settings.from_env({"STANDIN_API_KEYS": ""}).api_keys == frozenset()


def test_keepalive_is_kestrels_unless_the_test_knob_says_otherwise() -> None:
    """Jellyfin 10.11 leaves Kestrel's KeepAliveTimeout (130 s); aiohttp's own is 75 s."""
    assert standin.Settings.from_env({}).keepalive_seconds == 130
    knob = standin.Settings.from_env({"STANDIN_KEEPALIVE_SECONDS": "2"})
    assert knob.keepalive_seconds == 2
    with pytest.raises(ValueError, match="STANDIN_KEEPALIVE_SECONDS"):
        standin.Settings.from_env({"STANDIN_KEEPALIVE_SECONDS": "-1"})


def _seconds_until_closed(server: StandinProcess, limit: float) -> float:
    """Seconds from the end of a kept-alive response until the server closes the idle
    connection (EOF), or ``limit`` when it is still open then."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.read() == b"Healthy"
        assert not response.will_close
        assert conn.sock is not None
        idle_since = time.monotonic()
        conn.sock.settimeout(limit)
        try:
            assert conn.sock.recv(1) == b""
        except TimeoutError:
            return limit
        return time.monotonic() - idle_since
    finally:
        conn.close()


def test_an_idle_connection_is_closed_after_the_keepalive(
    plain: StandinProcess, tmp_path: Path
) -> None:
    """The close a proxy's pooled connection can race with (docs/flakes.md): after
    STANDIN_KEEPALIVE_SECONDS of idleness, not before; the default server keeps it open."""
    short = StandinProcess(tmp_path, {"STANDIN_KEEPALIVE_SECONDS": "1"}).ready()
    try:
        closed_after = _seconds_until_closed(short, limit=8)
    finally:
        short.stop()
    assert 0.9 <= closed_after < 8, closed_after
    assert _seconds_until_closed(plain, limit=3) == 3


def test_access_log_scrubs_tokens(plain: StandinProcess) -> None:
    plain.get("/System/Info/Public?api_key=SECRET-ONE&deviceId=d1")
    plain.get("/System/Info/Public?ApiKey=SECRET-TWO&deviceId=d2")
    plain.wait_for_line(lambda line: "deviceId=d2" in line)
    plain.wait_for_line(lambda line: "deviceId=d1" in line)
    assert "api_key=***&deviceId=d1" in plain.output
    assert "SECRET-ONE" not in plain.output and "SECRET-TWO" not in plain.output


# --------------------------------------------------------------------------------------
# HTTP behaviour behind a base URL with known proxies
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/", "jellyfin/web/"),
        ("/jellyfin", "jellyfin/web/"),
        ("/JELLYFIN", "jellyfin/web/"),
        ("/jellyfin/", "web/"),
        ("/other?x=1", "jellyfin/web/"),
        ("/a/b", "../jellyfin/web/"),
        ("/health", "/jellyfin/health"),
    ],
)
def test_outside_the_base_url_redirects_to_web(
    proxied: StandinProcess, path: str, location: str
) -> None:
    """BaseUrlRedirectionMiddleware: relative to the requested path (Uri.MakeRelativeUri),
    except /health."""
    reply = proxied.get(path)
    assert (reply.status, reply.headers["Location"]) == (302, location)


def test_routes_live_under_the_base_url(proxied: StandinProcess) -> None:
    assert proxied.get("/jellyfin/health").body == b"Healthy"
    assert proxied.get("/JellyFin/Health").body == b"Healthy"
    # Trusted proxy: scheme and host from X-Forwarded-Proto/-Host.
    web_redirect = proxied.get("/jellyfin/web", FORWARDED).headers["Location"]
    assert web_redirect == "https://media.example.com/jellyfin/web/"
    assert "stand-in" in proxied.get("/jellyfin/web/").text
    assert proxied.get("/jellyfinx/health").status == 404  # prefix matches whole segments
    part = proxied.get("/jellyfin/Videos/1/stream", {"Range": "bytes=5-9"})
    assert part.body == standin.media_bytes(5, 5)


def test_forwarded_headers_honoured_from_trusted_peer(proxied: StandinProcess) -> None:
    echo = proxied.get("/jellyfin/__standin/echo", FORWARDED).json()
    assert echo["peer_address"] == "127.0.0.1" and echo["peer_trusted"] is True
    assert echo["forwarded_headers_honoured"] is True
    assert (echo["client_address"], echo["scheme"], echo["host"]) == (
        "203.0.113.7", "https", "media.example.com",
    )  # fmt: skip
    assert echo["known_proxies"] == ["10.9.8.7", "172.30.77.0/24"]
    assert "172.30.77.0/24" in echo["trusted_proxies"] and echo["base_url"] == "/jellyfin"

    chain = {**FORWARDED, "X-Forwarded-For": "198.51.100.1, 10.9.8.7"}
    assert proxied.get("/jellyfin/__standin/echo", chain).json()["client_address"] == (
        "198.51.100.1"
    )


def test_local_address_from_the_request(proxied: StandinProcess) -> None:
    def local_address(headers: Mapping[str, str]) -> str:
        info: dict[str, Any] = proxied.get("/jellyfin/System/Info/Public", headers).json()
        return str(info["LocalAddress"])

    assert local_address(FORWARDED) == "https://media.example.com/jellyfin"
    odd_port = {**FORWARDED, "X-Forwarded-Host": "media.example.com:8443"}
    assert local_address(odd_port) == "https://media.example.com:8443/jellyfin"
    assert local_address({}) == f"http://127.0.0.1:{proxied.port}/jellyfin"


def test_websocket_under_the_base_url(proxied: StandinProcess) -> None:
    url = proxied.ws_url(f"/jellyfin/socket?api_key={KEY}&deviceId=d")
    with open_websocket(url, timeout=5) as ws:
        assert json.loads(ws.recv_text(timeout=5))["Data"] == 60
        ws.send_text(json.dumps({"MessageType": "KeepAlive"}))
        assert json.loads(ws.recv_text(timeout=5))["MessageType"] == "KeepAlive"
    outside = proxied.get(f"/socket?api_key={KEY}", UPGRADE)
    assert (outside.status, outside.headers["Location"]) == (302, "jellyfin/web/")


# --------------------------------------------------------------------------------------
# Start-up phase, published URL, shutdown
# --------------------------------------------------------------------------------------


def _poll(server: StandinProcess, path: str, body: bytes, timeout: float = 10) -> Reply:
    """GET `path` until it answers `body` (the port may be closed in between)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = server.get(path)
        except OSError:
            reply = None
        if reply is not None and reply.body == body:
            return reply
        assert time.monotonic() < deadline, f"{path} never answered {body!r}"
        time.sleep(0.05)


def test_startup_phases(tmp_path: Path) -> None:
    """Jellyfin 10.11: port closed; SetupServer (no BaseUrl; /health 200 Degraded, public
    info, everything else 503 Retry-After); port closed again; the main app answering 503
    "loading" to all but /System/Ping (and WebSockets, /web); then ready."""
    (tmp_path / "network.xml").write_text(network_xml("/jellyfin"))
    server = StandinProcess(
        tmp_path,
        {
            "STANDIN_CLOSED_SECONDS": "1",
            "STANDIN_STARTUP_SECONDS": "1.5",
            "STANDIN_SWITCH_SECONDS": "0.5",
            "STANDIN_LOADING_SECONDS": "1.5",
        },
    )
    try:
        server.wait_for_line(lambda text: "port closed for 1.0s" in text)
        assert "listening on" not in server.output
        server.ready()
        assert "phase=setup" in server.wait_for_line(lambda text: "listening on" in text)
        degraded = server.get("/health")
        assert (degraded.status, degraded.body) == (200, b"Degraded")
        for path in ("/jellyfin/health", "/System/Ping", "/jellyfin/System/Ping", "/"):
            busy = server.get(path)
            assert (busy.status, busy.headers["Retry-After"]) == (503, "005"), path
            assert busy.headers["Content-Type"].startswith("text/html")
        assert server.get("/System/Info/Public").json()["StartupWizardCompleted"] is False

        server.wait_for_line(lambda text: "phase=loading" in text)
        loading = server.get("/jellyfin/health")
        assert (loading.status, loading.text) == (503, standin.LOADING_MESSAGE)
        assert "Retry-After" not in loading.headers
        assert server.get("/jellyfin/System/Ping").json() == "Jellyfin Server"
        assert server.get("/jellyfin/web/").status == 200
        assert server.get("/health").headers["Location"] == "/jellyfin/health"
        ws_url = server.ws_url(f"/jellyfin/socket?api_key={KEY}")
        with open_websocket(ws_url, timeout=5) as ws:
            assert json.loads(ws.recv_text(timeout=5))["MessageType"] == "ForceKeepAlive"

        _poll(server, "/jellyfin/health", b"Healthy")
        assert server.get("/jellyfin/System/Info/Public").json()["StartupWizardCompleted"]
    finally:
        server.stop()
    # The order of the phases, as the log tells it.
    events = ("port closed", "phase=setup", "start-up server stopped", "phase=loading",
              "start-up complete", "stopped")  # fmt: skip
    seen = [next(e for e in events if e in line) for line in server.lines
            if any(e in line for e in events)]  # fmt: skip
    assert seen == list(events)


def test_listens_where_jellyfin_would(tmp_path: Path) -> None:
    """EnableIPv6 with EnableIPv4: one dual-mode socket on [::], like Kestrel's; IPv4 only
    (the default): 0.0.0.0."""
    dual = tmp_path / "dual"
    dual.mkdir()
    (dual / "network.xml").write_text(
        "<NetworkConfiguration><EnableIPv6>true</EnableIPv6></NetworkConfiguration>"
    )
    server = StandinProcess(dual, {"STANDIN_BIND": ""})
    try:
        line = server.wait_for_line(lambda text: "listening on" in text)
        port = int(re.search(r"listening on http://\[::\]:(\d+)", line).group(1))  # type: ignore[union-attr]
        for host in ("127.0.0.1", "::1"):
            conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", "/health")
            assert conn.getresponse().read() == b"Healthy", host
            conn.close()
    finally:
        server.stop()
    single = standin.listen_socket(None, standin.NetworkConfig(), 0)
    try:
        assert single.family == socket.AF_INET and single.getsockname()[0] == "0.0.0.0"
    finally:
        single.close()


def test_published_server_url_and_graceful_sigterm(fleet: dict[str, StandinProcess]) -> None:
    server = fleet["published"]
    info = server.get("/System/Info/Public").json()
    assert info["LocalAddress"] == "https://tv.example.org/jf"
    with open_websocket(server.ws_url(f"/socket?api_key={KEY}"), timeout=5) as ws:
        ws.recv_text(timeout=5)
        started = time.monotonic()
        server.terminate()
        with pytest.raises(WebSocketClosed) as closed:
            ws.recv_text(timeout=5)
        assert closed.value.code == 1001
    assert server.stop() == 0
    assert time.monotonic() - started < 5
    assert "stopped" in server.output


def test_web_page_honours_ranges_like_static_files(plain: StandinProcess) -> None:
    """ASP.NET static files answer Range on /web/: verify's default range probe relies on it."""
    reply = plain.get("/web/index.html", {"Range": "bytes=0-14"})
    assert reply.status == 206
    assert reply.headers["Content-Range"].startswith("bytes 0-14/")
    assert reply.body == b"<!DOCTYPE html>"


# --- PublishedServerUriBySubnet (NetworkManager.MatchesPublishedServerUrl) -------------------

LAN_XML = """<NetworkConfiguration>
  <LocalNetworkSubnets><string>192.168.50.0/24</string></LocalNetworkSubnets>
  <PublishedServerUriBySubnet>
    <string>192.168.50.0/24=http://192.168.50.10:8096</string>
    <string>192.168.50.128/25=http://tv.lan:8096</string>
    <string>10.9.0.0/16=http://unreachable.lan</string>
    <string>external=https://jf.example.org</string>
  </PublishedServerUriBySubnet>
  <VirtualInterfaceNames><string>veth</string></VirtualInterfaceNames>
</NetworkConfiguration>"""


def _iface(name: str, cidr: str) -> Any:
    net = ipaddress.ip_interface(cidr)
    return standin.Interface(name, net.ip, net.network)


def test_subnet_urls_follow_the_client_address() -> None:
    config = standin.parse_network_xml(LAN_XML)
    assert config.local_network_subnets == ("192.168.50.0/24",)
    assert len(config.published_server_uri_by_subnet) == 4
    interfaces = standin.usable_interfaces(
        config, [_iface("eth0", "192.168.50.10/24"), _iface("veth1", "10.9.0.1/16")]
    )
    assert [i.name for i in interfaces] == ["eth0"]  # veth* is virtual, ignored
    uris = standin.PublishedUris.from_config(config, interfaces)

    def url(client: str) -> str | None:
        return uris.match(ipaddress.ip_address(client), interfaces)

    assert url("192.168.50.20") == "http://192.168.50.10:8096"
    # The /25 entry is more specific, but the server has no address inside it: skipped.
    assert url("192.168.50.200") == "http://192.168.50.10:8096"
    assert url("198.51.100.7") == "https://jf.example.org"
    # Private but not in LocalNetworkSubnets: external; the 10.9/16 entry has no interface.
    assert url("10.9.3.4") == "https://jf.example.org"
    assert url("127.0.0.1") is None  # loopback is LAN, and no LAN entry holds it
    with_tv = [*interfaces, _iface("eth1", "192.168.50.129/25")]
    assert uris.match(ipaddress.ip_address("192.168.50.200"), with_tv) == "http://tv.lan:8096"


def test_default_lan_and_a_broken_entry() -> None:
    config = standin.parse_network_xml(
        "<NetworkConfiguration><PublishedServerUriBySubnet>"
        "<string>10.0.0.0/8=http://a=b</string><string>all=http://x</string>"
        "</PublishedServerUriBySubnet></NetworkConfiguration>"
    )
    uris = standin.PublishedUris.from_config(config, [])
    assert uris.overrides == ()  # Jellyfin stops at an entry with two '='
    assert uris.is_local(ipaddress.ip_address("172.20.1.1"))  # RFC 1918 by default
    assert standin.smart_url("192.168.1.5:8920", 8096, "/jf") == "http://192.168.1.5:8920/jf"
    assert standin.smart_url("https://lan.example/", 8096, "/jf") == "https://lan.example"


def test_host_interfaces_lists_loopback() -> None:
    names = {(i.name, str(i.address)) for i in standin.host_interfaces()}
    assert ("lo", "127.0.0.1") in names


# --------------------------------------------------------------------------------------
# Users, logins and sessions
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinProcess]:
    logs = tmp_path_factory.mktemp("logs")
    server = StandinProcess(
        tmp_path_factory.mktemp("accounts"),
        {"STANDIN_USERS": "alice:wonder land,bob:", "JELLYFIN_LOG_DIR": str(logs)},
    )
    try:
        yield server.ready()
    finally:
        server.stop()


def _login(server: StandinProcess, name: str, password: str, path: str = "") -> Reply:
    body = json.dumps({"Username": name, "Pw": password}).encode()
    target = path or "/Users/AuthenticateByName"
    return server.request("POST", target, {"Content-Type": "application/json"}, body)


def test_a_login_hands_out_a_session_token_that_works_like_a_key(
    accounts: StandinProcess,
) -> None:
    reply = _login(accounts, "alice", "wonder land")
    assert reply.status == 200
    answer = json.loads(reply.body)
    token = answer["AccessToken"]
    assert answer["User"]["Name"] == "alice" and len(token) == 32
    me = accounts.get("/Users/Me", {"Authorization": f'MediaBrowser Token="{token}"'})
    assert me.status == 200 and json.loads(me.body)["Name"] == "alice"
    # Accepted everywhere a key is: the query spellings and a WebSocket.
    assert accounts.get(f"/users/me?api_key={token}").status == 200
    with open_websocket(accounts.ws_url(f"/socket?api_key={token}"), timeout=5) as ws:
        assert json.loads(ws.recv_text(timeout=5))["MessageType"] == "ForceKeepAlive"
    # A second login is a second session.
    assert json.loads(_login(accounts, "alice", "wonder land").body)["AccessToken"] != token


def test_logout_revokes_the_token(accounts: StandinProcess) -> None:
    token = json.loads(_login(accounts, "bob", "").body)["AccessToken"]
    header = {"X-Emby-Token": token}
    assert accounts.request("POST", "/Sessions/Logout", header).status == 204
    assert accounts.get("/Users/Me", header).status == 401
    assert accounts.request("POST", "/Sessions/Logout", header).status == 401


def test_an_api_key_has_no_user(accounts: StandinProcess) -> None:
    assert accounts.get("/Users/Me", {"X-Emby-Token": KEY}).status == 400
    assert accounts.get("/Users/Me").status == 401
    assert accounts.get("/Users/Me", {"X-Emby-Token": "forged"}).status == 401


def test_a_failed_login_is_401_and_logged_in_both_formats(
    accounts: StandinProcess,
) -> None:
    assert _login(accounts, "alice", "guess").status == 401
    assert _login(accounts, "mallory", "x").status == 401
    accounts.wait_for_line(
        lambda line: "Authentication request for mallory has been denied (IP: 127.0.0.1)." in line
    )
    text = (Path(_env_of(accounts)["JELLYFIN_LOG_DIR"]) / "log_standin.log").read_text()
    assert 'Authentication request for "alice" has been denied (IP: "127.0.0.1").' in text


def _env_of(server: StandinProcess) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in Path(f"/proc/{server.proc.pid}/environ").read_text().split("\0")
        if "=" in line
    )


def test_login_by_id_and_the_public_user_list(accounts: StandinProcess) -> None:
    users = json.loads(accounts.get("/Users/Public").body)
    assert [u["Name"] for u in users] == ["alice", "bob"]
    alice = users[0]["Id"]
    assert accounts.request("POST", f"/Users/{alice}/Authenticate?pw=wonder%20land").status == 200
    assert accounts.request("POST", f"/Users/{alice}/Authenticate?pw=no").status == 401
    assert accounts.request("POST", "/Users/0000/Authenticate?pw=no").status == 404
    assert _login(accounts, "alice", "wonder land", "/USERS/AUTHENTICATEBYNAME/").status == 200


def _post_json(server: StandinProcess, path: str, body: object, **headers: str) -> Reply:
    data = json.dumps(body).encode()
    return server.request("POST", path, {"Content-Type": "application/json", **headers}, data)


CLIENT = 'MediaBrowser Client="Android TV", Device="Living room", DeviceId="tv1", Version="1.0"'


def test_quick_connect_logs_a_device_in_once_a_user_authorises_it(
    accounts: StandinProcess,
) -> None:
    assert json.loads(accounts.get("/QuickConnect/Enabled").body) is True
    assert accounts.request("POST", "/QuickConnect/Initiate").status == 400  # no client info
    started = accounts.request("POST", "/QuickConnect/Initiate", {"Authorization": CLIENT})
    assert started.status == 200
    request = json.loads(started.body)
    secret, code = request["Secret"], request["Code"]
    assert request["Authenticated"] is False and len(code) == 6 and request["DeviceId"] == "tv1"
    assert accounts.get("/QuickConnect/Connect?secret=nope").status == 404
    # Not yet authorised: no session for the secret.
    assert (
        _post_json(accounts, "/Users/AuthenticateWithQuickConnect", {"Secret": secret}).status
        == 404
    )
    token = json.loads(_login(accounts, "alice", "wonder land").body)["AccessToken"]
    assert accounts.request("POST", f"/QuickConnect/Authorize?code={code}").status == 401
    authorised = accounts.request(
        "POST", f"/QuickConnect/Authorize?code={code}", {"X-Emby-Token": token}
    )
    assert authorised.status == 200
    assert json.loads(accounts.get(f"/QuickConnect/Connect?secret={secret}").body)["Authenticated"]
    login = _post_json(accounts, "/Users/AuthenticateWithQuickConnect", {"Secret": secret})
    assert login.status == 200
    device_token = json.loads(login.body)["AccessToken"]
    assert device_token != token
    assert json.loads(accounts.get(f"/Users/Me?ApiKey={device_token}").body)["Name"] == "alice"


def test_forgot_password_answers_alike_for_every_name(accounts: StandinProcess) -> None:
    known = json.loads(
        _post_json(accounts, "/Users/ForgotPassword", {"EnteredUsername": "alice"}).body
    )
    unknown = json.loads(
        _post_json(accounts, "/Users/ForgotPassword", {"EnteredUsername": "zed"}).body
    )
    assert known["Action"] == unknown["Action"] == "PinCode"
    pin = _post_json(accounts, "/Users/ForgotPassword/Pin", {"Pin": "12-34-56-78"})
    assert json.loads(pin.body) == {"Success": False, "UsersReset": []}


# --------------------------------------------------------------------------------------
# What the token gate needs (docs/access.md)
# --------------------------------------------------------------------------------------


def test_endpoint_info_answers_only_a_valid_token(plain: StandinProcess) -> None:
    assert plain.get("/System/Endpoint").status == 401
    assert plain.get("/System/Endpoint", {"X-Emby-Token": "forged"}).status == 401
    auth = {"Authorization": f'MediaBrowser Client="t", Token="{KEY}"'}
    reply = plain.get("/system/endpoint", auth)
    assert reply.status == 200 and set(reply.json()) == {"IsLocal", "IsInNetwork"}
    assert plain.get(f"/System/Endpoint?ApiKey={KEY}").status == 200


def test_legacy_prefixes_are_served_as_the_route(plain: StandinProcess) -> None:
    assert plain.get("/emby/System/Ping").json() == "Jellyfin Server"
    assert plain.get("/MediaBrowser/system/info/public").json()["ProductName"]
    assert plain.get(f"/EMBY/System/Endpoint?api_key={KEY}").status == 200
    assert plain.get("/embyx/System/Ping").status == 404


def test_subtitles_are_served_without_a_token(plain: StandinProcess) -> None:
    reply = plain.get("/Videos/abc/def/Subtitles/2/Stream.vtt")
    assert reply.status == 200 and reply.body.startswith(b"WEBVTT")
    assert reply.headers["Content-Type"].startswith("text/vtt")


def test_a_revoked_key_no_longer_authenticates(tmp_path: Path) -> None:
    server = StandinProcess(tmp_path, {"STANDIN_API_KEYS": f"{KEY},{REVOCABLE}"})
    try:
        server.ready()
        _revoke(server)
    finally:
        server.stop()


def _revoke(server: StandinProcess) -> None:
    assert server.get("/System/Endpoint", {"X-Emby-Token": REVOCABLE}).status == 200
    assert server.request("DELETE", f"/Auth/Keys/{REVOCABLE}").status == 401
    assert server.request("DELETE", f"/Auth/Keys/{REVOCABLE}", {"X-Emby-Token": KEY}).status == 204
    assert server.get("/System/Endpoint", {"X-Emby-Token": REVOCABLE}).status == 401
    assert server.get("/System/Endpoint", {"X-Emby-Token": KEY}).status == 200
