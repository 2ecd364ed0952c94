"""In-process fake "proxy + Jellyfin" for the probe tests: no Docker, loopback only.

`FakeStack` starts two threaded servers on 127.0.0.1 — HTTPS (the proxy's :443, with
Jellyfin's routes behind it) and plain HTTP (the proxy's :80) — from a `FakeConfig`
whose defaults pass every check; each broken variant flips one field. Certificates come
from a throwaway root -> intermediate -> leaf PKI made with `cryptography`. The public
name is `jellyfin.test`, mapped to 127.0.0.1 through Target.resolve, so no DNS is used.

Routes imitate docs/jellyfin.md (and the stand-in in tests/images): `/` redirects to
`web/`, `/health` says Healthy, `/System/Info/Public` is JSON, `/socket` upgrades and
answers KeepAlive, `/Videos/...` and `/web/index.html` honour Range, image POSTs get 401
like a real Jellyfin without a token.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import re
import socket
import ssl
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from h2 import events as h2events
from h2.config import H2Configuration
from h2.connection import H2Connection

from stackgen.probe import Target

NAME = "jellyfin.test"
INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
GOOD_CSP = (
    "default-src 'self' https: data: blob:; script-src 'self' 'unsafe-inline' 'unsafe-eval' "
    "https://www.gstatic.com; worker-src 'self' blob:; object-src 'none'"
)
MEDIA_SIZE = 1 << 20
INDEX_HTML = (
    b"<!DOCTYPE html><html><head><title>fake jellyfin-web</title></head><body>"
    + b"<!-- padding -->" * 400
    + b"</body></html>"
)
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# --- PKI -----------------------------------------------------------------------------------


Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: Key,
    issuer: tuple[x509.Certificate, Key] | None,
    *,
    ca: bool,
    days: int,
    san: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name = issuer[0].subject if issuer else _name(subject)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class PKI:
    """Files of a throwaway PKI. `root_pem` is the --ca-file a user would pass;
    `bundle_pem` (root + intermediate) plays a store that caches the intermediate."""

    dir: Path
    root_pem: Path
    bundle_pem: Path

    def leaf(self, kind: str) -> tuple[Path, Path, Path]:
        """(fullchain, leaf only, key) for kind in ec / rsa / expiring."""
        return (
            self.dir / f"{kind}-fullchain.pem",
            self.dir / f"{kind}-leaf.pem",
            self.dir / f"{kind}-key.pem",
        )


def make_pki(directory: Path) -> PKI:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("stackgen test root", root_key, None, ca=True, days=3650)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert("stackgen test intermediate", inter_key, (root, root_key), ca=True, days=365)
    leaf_keys: dict[str, Key] = {
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "expiring": ec.generate_private_key(ec.SECP256R1()),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for kind, key in leaf_keys.items():
        days = 10 if kind == "expiring" else 90
        leaf = _cert(NAME, key, (inter, inter_key), ca=False, days=days, san=NAME)
        (directory / f"{kind}-fullchain.pem").write_bytes(_pem(leaf, inter))
        (directory / f"{kind}-leaf.pem").write_bytes(_pem(leaf))
        (directory / f"{kind}-key.pem").write_bytes(_key_pem(key))
    (directory / "root.pem").write_bytes(_pem(root))
    (directory / "bundle.pem").write_bytes(_pem(root, inter))
    return PKI(directory, directory / "root.pem", directory / "bundle.pem")


# --- configuration of the fake ---------------------------------------------------------------


@dataclass(frozen=True)
class FakeConfig:
    # TLS
    cert: str = "ec"  # ec / rsa / expiring
    full_chain: bool = True
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
    ciphers: str = INTERMEDIATE_CIPHERS
    curve: str = "X25519"
    # port 80
    redirect_status: int = 301
    redirect_keeps_query: bool = True
    acme_redirected: bool = False
    hsts_on_http: bool = False
    # headers on HTTPS
    hsts: str | None = "max-age=63072000; includeSubDomains"
    security_headers: bool = True
    extra_headers: tuple[tuple[str, str], ...] = ()
    csp: str | None = GOOD_CSP
    server_header: str = "fake-proxy"
    # Jellyfin
    base: str = ""
    health_status: int = 200
    health_body: str = "Healthy"
    upstream_down: bool = False  # every HTTPS request gets the proxy's own 502 (nginx-like)
    # Where {base}/web redirects (None: {base}/web/); Jellyfin builds an absolute URL
    web_redirect: str | None = None
    # Jellyfin's main app still loading: 503 "loading" to all but /System/Ping
    loading: bool = False
    upload_status: int | None = None  # the answer to an upload, read whole (None: 401)
    local_address: str | None = None  # None: https://{Host}{base}, as honoured XF headers give
    # keepalive / none / refuse-403 (Jellyfin's) / proxy-403 / refuse-401 / auth-close
    websocket: str = "keepalive"
    upload_limit: int | None = None  # bytes; larger bodies get 413 (nginx-like)
    range_support: bool = True
    http2: bool = False  # offer h2 in ALPN (served through _serve_http2)
    h2_strips_range: bool = False  # an h2-only bug: Range lost on the h2 path only
    # What the public URL exposes (exposure.*); the defaults are a locked-down stack.
    metrics_open: bool = False  # /metrics answers 200 (else the proxy's 403)
    wizard_unfinished: bool = False  # StartupWizardCompleted false
    wizard_refused: bool = True  # /Startup/* refused (403) from here
    public_users: int = 0  # names /Users/Public lists
    media_open: bool = False  # streams/images/subtitles of unknown ids answer without a token
    images_open: bool = False  # only images do (a token gate with access.gate.images "open")
    login_limit: int | None = 5  # 429 after this many login requests (None: never)
    login_retry_after: bool = True
    trusts_client_xff: bool = False  # the limit is keyed on a client's X-Forwarded-For


# --- the servers ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the probe's parallel handshakes must not overflow the backlog

    def __init__(self, handler: type[BaseHTTPRequestHandler], stack: FakeStack, tls: bool):
        super().__init__(("127.0.0.1", 0), handler)
        self.stack = stack
        self.tls_context = stack.tls_context if tls else None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(5)
        try:
            tls = self.tls_context.wrap_socket(request, server_side=True)
        except OSError:
            return  # the probes abort handshakes on purpose
        try:
            if tls.selected_alpn_protocol() == "h2":
                _serve_http2(tls, self, client_address)
            else:
                self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hang up mid-body by design (TTFB, upload); stay quiet


_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"}


def _serve_http2(tls: ssl.SSLSocket, server: _Server, client_address: Any) -> None:
    """An h2 front on the same fake: each stream becomes one HTTP/1.1 exchange with the
    usual handler over a socket pair (a gateway, like the proxies), so the good fake is
    the same stack over both protocols."""
    conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    requests: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
    pending: dict[int, bytearray] = {}
    while True:
        try:
            data = tls.recv(65536)
        except OSError:
            return
        if not data:
            return
        for event in conn.receive_data(data):
            if isinstance(event, h2events.RequestReceived) and event.stream_id is not None:
                headers = [(str(k), str(v)) for k, v in event.headers or []]
                requests[event.stream_id] = (headers, bytearray())
            elif isinstance(event, h2events.DataReceived) and event.stream_id in requests:
                requests[event.stream_id][1].extend(event.data or b"")
                conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
            elif isinstance(event, h2events.StreamEnded) and event.stream_id in requests:
                head, body = requests.pop(event.stream_id)
                status, response_headers, payload = _gateway(server, client_address, head, body)
                conn.send_headers(event.stream_id, [(":status", str(status)), *response_headers])
                pending[event.stream_id] = bytearray(payload)
        for stream_id, payload in list(pending.items()):
            while payload:
                size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if size <= 0:
                    break
                conn.send_data(stream_id, bytes(payload[:size]))
                del payload[:size]
            if not payload:
                conn.end_stream(stream_id)
                del pending[stream_id]
        tls.sendall(conn.data_to_send())


def _gateway(
    server: _Server, client_address: Any, head: list[tuple[str, str]], body: bytearray
) -> tuple[int, list[tuple[str, str]], bytes]:
    pseudo = {k: v for k, v in head if k.startswith(":")}
    lines = [f"{pseudo[':method']} {pseudo[':path']} HTTP/1.1", f"Host: {pseudo[':authority']}"]
    dropped = {"content-length"} | ({"range"} if server.stack.config.h2_strips_range else set())
    lines += [f"{k}: {v}" for k, v in head if not k.startswith(":") and k not in dropped]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    near, far = socket.socketpair()

    def handle() -> None:
        # The handler runs outside the server's own request thread, so `handle_error`'s
        # silence does not cover it: a client that hangs up mid-body (on purpose) ends with
        # a broken pipe here, which is no failure of the fake.
        with contextlib.suppress(OSError):
            server.RequestHandlerClass(far, client_address, server)

    worker = threading.Thread(target=handle, daemon=True)
    worker.start()
    try:
        near.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + bytes(body))
        resp = http.client.HTTPResponse(near, method=pseudo[":method"])
        resp.begin()
        payload = resp.read()
        headers = [(k.lower(), v) for k, v in resp.getheaders() if k.lower() not in _HOP_HEADERS]
        return resp.status, headers, payload
    finally:
        near.close()
        worker.join(5)
        far.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _Server

    @property
    def cfg(self) -> FakeConfig:
        return self.server.stack.config

    def version_string(self) -> str:
        return self.cfg.server_header

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.server.tls_context is not None:
            self._proxy_headers()
        elif self.cfg.hsts_on_http:
            self.send_header("Strict-Transport-Security", "max-age=63072000")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _proxy_headers(self) -> None:
        cfg = self.cfg
        if cfg.hsts:
            self.send_header("Strict-Transport-Security", cfg.hsts)
        if cfg.security_headers:
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "strict-origin-when-cross-origin")
            self.send_header("Permissions-Policy", "geolocation=(), camera=()")
        if cfg.csp:
            self.send_header("Content-Security-Policy", cfg.csp)
        for name, value in cfg.extra_headers:
            self.send_header(name, value)

    # -- verbs

    def do_GET(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        if self.server.tls_context is None:
            self._plain_http()
        else:
            self._https()

    # -- port 80

    def _plain_http(self) -> None:
        stack = self.server.stack
        if self.path.startswith("/.well-known/acme-challenge/") and not self.cfg.acme_redirected:
            self._send(404, b"no such challenge")
            return
        target = self.path if self.cfg.redirect_keeps_query else self.path.split("?", 1)[0]
        location = f"https://{NAME}:{stack.https_port}{target}"
        self._send(self.cfg.redirect_status, headers={"Location": location})

    # -- port 443 (proxy + Jellyfin)

    def _https(self) -> None:
        cfg = self.cfg
        base = cfg.base
        raw_path = self.path.split("?", 1)[0]
        path = raw_path.lower()
        rel: str | None = path  # the path below the base; None = outside it
        if base:
            prefix = base.lower()
            inside = path == prefix or path.startswith(prefix + "/")
            rel = path[len(prefix) :] if inside else None
        upgrade = self.headers.get("Upgrade", "").lower() == "websocket"
        if cfg.upstream_down:
            if self.command == "POST":
                self._drain()
            self._send(502, b"<html><title>502 Bad Gateway</title></html>", "text/html")
            return
        if upgrade and rel is not None and cfg.websocket != "none":
            if cfg.websocket == "refuse-403":
                self._send(403, b"Error processing request.")  # Jellyfin: SecurityException
            elif cfg.websocket == "proxy-403":
                self._send(403, b"<html><title>403 Forbidden</title></html>", "text/html")
            elif cfg.websocket == "refuse-401":
                self._send(401, b"Unauthorized")
            else:
                self._websocket()
            return
        if cfg.loading and rel is not None and rel != "/system/ping":
            if self.command == "POST":
                self._drain()
            self._send(503, b"Jellyfin Server is loading. Please try again shortly.", "text/html")
            return
        if rel is None or rel in ("", "/"):
            self._send(302, headers={"Location": f"{base}/web/" if base else "web/"})
        elif rel == "/system/ping":
            self._send(200, b'"Jellyfin Server"', "application/json")
        elif rel == "/health":
            self._send(cfg.health_status, cfg.health_body.encode())
        elif rel == "/system/info/public":
            host = self.headers.get("Host", NAME)
            info = {
                "LocalAddress": cfg.local_address or f"https://{host}{base}",
                "ServerName": "fake",
                "Version": "10.11.0-fake",
                "ProductName": "Jellyfin Server",
                "OperatingSystem": "Linux",
                "Id": "0123456789abcdef",
                "StartupWizardCompleted": not cfg.wizard_unfinished,
            }
            self._send(200, json.dumps(info).encode(), "application/json")
        elif rel in ("/metrics", "/users/public", "/users/authenticatebyname") or (
            rel.startswith("/startup/")
        ):
            self._exposure(rel)
        elif re.fullmatch(r"/items/[0-9a-f]{32}/.*", rel) and cfg.images_open:
            self._send(404, b"")
        elif re.fullmatch(r"/(videos|items)/[0-9a-f]{32}/.*", rel) and not cfg.media_open:
            self._send(401, b"")
        elif rel == "/web":
            self._send(301, headers={"Location": cfg.web_redirect or f"{base}/web/"})
        elif rel in ("/web/", "/web/index.html"):
            self._ranged(INDEX_HTML, "text/html; charset=utf-8")
        elif rel.startswith("/videos/"):
            self._ranged(self.server.stack.media, "video/mp4")
        elif rel.startswith("/items/") and self.command == "POST":
            self._upload()
        else:
            self._send(404, b"not found")

    def _exposure(self, rel: str) -> None:
        cfg = self.cfg
        if rel == "/metrics":
            self._send(200 if cfg.metrics_open else 403, b"# metrics")
        elif rel.startswith("/startup/"):
            self._send(403 if cfg.wizard_refused else 200, b"{}")
        elif rel == "/users/public":
            users = [{"Name": f"user{i}"} for i in range(cfg.public_users)]
            self._send(200, json.dumps(users).encode(), "application/json")
        else:  # a login request: counted per client, like a proxy's limit
            self._drain()
            claimed = self.headers.get("X-Forwarded-For") if cfg.trusts_client_xff else None
            key = claimed or self.client_address[0]
            counts = self.server.stack.logins
            counts[key] = counts.get(key, 0) + 1
            if cfg.login_limit is not None and counts[key] > cfg.login_limit:
                headers = {"Retry-After": "12"} if cfg.login_retry_after else {}
                self._send(429, b"Too Many Requests", headers=headers)
            else:
                self._send(400, b"")

    def _ranged(self, data: bytes, content_type: str) -> None:
        header = self.headers.get("Range", "")
        if not (self.cfg.range_support and header.startswith("bytes=")):
            self._send(200, data, content_type, {"Accept-Ranges": "bytes"})
            return
        first, _, last = header[6:].partition("-")
        start = int(first)
        end = min(int(last), len(data) - 1) if last else len(data) - 1
        if start >= len(data):
            self._send(416, headers={"Content-Range": f"bytes */{len(data)}"})
            return
        self._send(
            206,
            data[start : end + 1],
            content_type,
            {"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{len(data)}"},
        )

    def _upload(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        limit = self.cfg.upload_limit
        if limit is not None and length > limit:
            # Like nginx: answer 413 at once, then drain (lingering close) so it is read.
            self.close_connection = True
            self._send(413, b"Request Entity Too Large", headers={"Connection": "close"})
            with contextlib.suppress(OSError):
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(65536, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            return
        if not self._drain():
            return
        if self.cfg.upload_status is not None:
            self._send(self.cfg.upload_status, b"<html>error page</html>", "text/html")
            return
        self._send(401, b"Unauthorized")  # real Jellyfin without a token

    def _drain(self) -> bool:
        remaining = int(self.headers.get("Content-Length", "0"))
        while remaining > 0:
            chunk = self.rfile.read(min(65536, remaining))
            if not chunk:
                return False
            remaining -= len(chunk)
        return True

    # -- WebSocket (just enough of RFC 6455)

    def _websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.close_connection = True
        if self.cfg.websocket == "auth-close":
            self._ws_send(0x8, struct.pack("!H", 1008) + b"auth required")
            return
        self._ws_send(0x1, json.dumps({"MessageType": "ForceKeepAlive", "Data": 60}).encode())
        while True:
            opcode, payload = self._ws_recv()
            if opcode is None or opcode == 0x8:
                with contextlib.suppress(OSError):
                    self._ws_send(0x8, payload[:2] if payload else b"")
                return
            if opcode == 0x9:
                self._ws_send(0xA, payload)
            elif opcode == 0x1:
                message = json.loads(payload)
                if message.get("MessageType") == "KeepAlive":
                    self._ws_send(0x1, json.dumps({"MessageType": "KeepAlive"}).encode())

    def _ws_send(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
        self.wfile.write(header + payload)

    def _ws_recv(self) -> tuple[int | None, bytes]:
        head = self.rfile.read(2)
        if len(head) < 2:
            return None, b""
        opcode = head[0] & 0x0F
        size = head[1] & 0x7F
        if size == 126:
            size = struct.unpack("!H", self.rfile.read(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self.rfile.read(8))[0]
        mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = self.rfile.read(size)
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@dataclass
class FakeStack:
    config: FakeConfig
    pki: PKI
    media: bytes = field(default=bytes(i % 251 for i in range(MEDIA_SIZE)), repr=False)
    https_port: int = 0
    http_port: int = 0
    tls_context: ssl.SSLContext | None = None
    logins: dict[str, int] = field(default_factory=dict)  # login requests per client

    def _context(self) -> ssl.SSLContext:
        cfg = self.config
        fullchain, leaf, key = self.pki.leaf(cfg.cert)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(fullchain if cfg.full_chain else leaf, key)
        with warnings.catch_warnings():  # TLSVersion.TLSv1 is deprecated; we want it anyway
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = cfg.min_version
            ctx.maximum_version = cfg.max_version
        ctx.set_ciphers(cfg.ciphers)
        ctx.set_ecdh_curve(cfg.curve)
        if cfg.http2:
            ctx.set_alpn_protocols(["h2", "http/1.1"])
        return ctx

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeStack]:
        self.tls_context = self._context()
        servers = [_Server(_Handler, self, tls=True), _Server(_Handler, self, tls=False)]
        self.https_port = servers[0].server_address[1]
        self.http_port = servers[1].server_address[1]
        # A short poll interval: shutdown() waits for it, once per server and per test.
        threads = [
            threading.Thread(target=s.serve_forever, args=(0.02,), daemon=True) for s in servers
        ]
        for t in threads:
            t.start()
        try:
            yield self
        finally:
            for s in servers:
                s.shutdown()
                s.server_close()

    def target(self, **overrides: Any) -> Target:
        values: dict[str, Any] = {
            "url": f"https://{NAME}:{self.https_port}{self.config.base}",
            "resolve": {NAME: "127.0.0.1"},
            "ca_file": self.pki.root_pem,
            "http_port": self.http_port,
            "known_proxies": ["172.30.0.0/24"],
            "proxy_addresses": ["172.30.0.2"],
            "timeout": 5.0,
        }
        values.update(overrides)
        return Target(**values)


@contextlib.contextmanager
def fake_stack(pki: PKI, **changes: Any) -> Iterator[FakeStack]:
    with FakeStack(replace(FakeConfig(), **changes), pki).running() as stack:
        yield stack


# --- a TLS "server" that only answers the first flight, for what OpenSSL won't do ------------


@contextlib.contextmanager
def crafted_tls12_server(*, compression: int, renegotiation_info: bool) -> Iterator[int]:
    """Answers any ClientHello with a fixed TLS 1.2 ServerHello + ServerHelloDone: how a
    server with TLS compression or without RFC 5746 would look on the wire. Everything
    after that (a real handshake) fails, which is fine for tls.compression/renegotiation."""
    extensions = b"\xff\x01\x00\x01\x00" if renegotiation_info else b""
    body = (
        b"\x03\x03"
        + b"\x11" * 32
        + b"\x00"
        + b"\xc0\x2f"
        + bytes([compression])
        + len(extensions).to_bytes(2, "big")
        + extensions
    )
    flight = b"\x02" + len(body).to_bytes(3, "big") + body + b"\x0e\x00\x00\x00"
    record = b"\x16\x03\x03" + len(flight).to_bytes(2, "big") + flight
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    if conn.recv(65536):
                        conn.sendall(record)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(2)
