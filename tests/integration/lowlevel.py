"""A deliberately separate, minimal client for the integration tests.

It shares no code with stackgen's probe library, so a bug there cannot hide a broken stack -
except the WebSocket client (`open_websocket`), the one every WebSocket of stackgen opens:
websockets' threaded client loses upgrade requests over TLS (docs/flakes.md), and the
probe's own client is proven by its unit tests against local servers.
Everything goes to 127.0.0.1 (the test stacks publish on loopback) with SNI and Host set to
the stack's name. Trust is Pebble's issuing root alone: a handshake only verifies when the
proxy serves the full chain (leaf + intermediate).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackgen.probe import WebSocketRefused, open_websocket

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def tls_context(root: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(root))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Conn(http.client.HTTPSConnection):
    def __init__(self, name: str, port: int, context: ssl.SSLContext, pause: float = 0.0) -> None:
        super().__init__(name, port, context=context, timeout=30)
        self._name = name
        self._pause = pause

    def connect(self) -> None:
        # `pause`: a slow client (a phone, a browser's preconnect) waits after connecting
        # and again after the handshake, half of it each time, before it sends its request.
        raw = socket.create_connection((LOOPBACK, self.port), timeout=self.timeout)
        time.sleep(self._pause / 2)
        self.sock = self._context.wrap_socket(raw, server_hostname=self._name)  # type: ignore[attr-defined]
        time.sleep(self._pause / 2)


def https(
    name: str,
    port: int,
    root: Path,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    pause: float = 0.0,
) -> Reply:
    conn = _Conn(name, port, tls_context(root), pause)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def post_watching(
    name: str, port: int, root: Path, path: str, body: bytes, headers: dict[str, str]
) -> tuple[Reply, int]:
    """POST `body` over HTTP/1.1 as a careful client does (RFC 9112, 9.5): watch for an
    answer while sending and stop sending when one comes. Returns the reply and how many
    body bytes were sent before it."""
    raw = socket.create_connection((LOOPBACK, port), timeout=30)
    tls = tls_context(root).wrap_socket(raw, server_hostname=name)
    try:
        authority = name if port == 443 else f"{name}:{port}"
        head = [f"POST {path} HTTP/1.1", f"Host: {authority}", f"Content-Length: {len(body)}"]
        head += ["Connection: close", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        tls.sendall("\r\n".join(head).encode("latin-1"))
        sent, piece, first = 0, 16 * 1024, b""
        with contextlib.suppress(OSError):
            while sent < len(body):
                # Send only what the socket takes at once, and look for an answer first:
                # blocked in a send, we could miss an answer the server then drops.
                readable, writable, _ = select.select([tls], [tls], [], 30)
                if tls.pending() or readable:
                    tls.settimeout(0)
                    try:
                        first = tls.recv(65536)
                        break  # an answer (or the end) came
                    except ssl.SSLWantReadError:
                        pass  # a TLS 1.3 session ticket, no answer yet
                    finally:
                        tls.settimeout(30)
                if writable:
                    tls.sendall(body[sent : sent + piece])
                    sent = min(len(body), sent + piece)
        stream = io.BufferedReader(_Prefixed(first, tls))
        response = http.client.HTTPResponse(_FileSocket(stream), method="POST")  # type: ignore[arg-type]
        response.begin()
        return Reply(response.status, response.headers, response.read()), sent
    finally:
        tls.close()


class _Prefixed(io.RawIOBase):
    def __init__(self, first: bytes, sock: ssl.SSLSocket) -> None:
        self.first, self.sock = first, sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.first:
            n = min(len(buffer), len(self.first))
            buffer[:n] = self.first[:n]
            self.first = self.first[n:]
            return n
        return self.sock.recv_into(buffer)


@dataclass(frozen=True)
class _FileSocket:
    stream: io.BufferedReader

    def makefile(self, _mode: str) -> io.BufferedReader:
        return self.stream


def plain_http(name: str, port: int, path: str) -> Reply:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": name if port == 80 else f"{name}:{port}"})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def served_chain_verifies(name: str, port: int, root: Path) -> str:
    """The negotiated protocol of a verified handshake (raises when verification fails)."""
    raw = socket.create_connection((LOOPBACK, port), timeout=30)
    with tls_context(root).wrap_socket(raw, server_hostname=name) as tls:
        return str(tls.version())


def negotiated_alpn(name: str, port: int, root: Path) -> str | None:
    """What the proxy selects when a client offers h2 and http/1.1 (as browsers do)."""
    context = tls_context(root)
    context.set_alpn_protocols(["h2", "http/1.1"])
    raw = socket.create_connection((LOOPBACK, port), timeout=30)
    with context.wrap_socket(raw, server_hostname=name) as tls:
        return tls.selected_alpn_protocol()


def websocket_keepalive(
    name: str, port: int, root: Path, path: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Open wss://name{path} and exchange a KeepAlive; return the frames received."""
    raw = socket.create_connection((LOOPBACK, port), timeout=30)
    authority = name if port == 443 else f"{name}:{port}"
    frames: list[dict[str, Any]] = []
    with open_websocket(
        f"wss://{authority}{path}",
        sock=raw,
        context=tls_context(root),
        server_hostname=name,
        headers=headers or {},
        timeout=30,
    ) as ws:
        ws.send_text(json.dumps({"MessageType": "KeepAlive"}))
        for _ in range(5):
            frame = json.loads(ws.recv_text(timeout=10))
            frames.append(frame)
            if frame.get("MessageType") == "KeepAlive":
                break
    return frames


def websocket_refusal(
    name: str, port: int, root: Path, path: str, headers: dict[str, str] | None = None
) -> Reply:
    """Ask for an upgrade at wss://name{path} that must be refused: the refusal's answer.
    An upgrade that succeeds is an assertion error."""
    raw = socket.create_connection((LOOPBACK, port), timeout=30)
    authority = name if port == 443 else f"{name}:{port}"
    try:
        with open_websocket(
            f"wss://{authority}{path}",
            sock=raw,
            context=tls_context(root),
            server_hostname=name,
            headers=headers or {},
            timeout=30,
        ):
            pass
    except WebSocketRefused as refused:
        return Reply(refused.status, _message(refused.headers), refused.body)
    raise AssertionError(f"{path} with {headers}: upgraded (101) where a refusal was due")


def _message(items: Iterable[tuple[str, str]]) -> http.client.HTTPMessage:
    message = http.client.HTTPMessage()
    for header, value in items:
        message[header] = value
    return message


class RequestLoop(threading.Thread):
    """Requests `path` over verified HTTPS, a new connection (and handshake) each time, and
    counts what failed. Nothing is retried: a connection closed without an answer is a
    failure. With `pause`, each connection stays open that long before its request (a slow
    client). Bounded in count and in time: it stops by itself."""

    def __init__(
        self,
        host: str,
        port: int,
        root: Path,
        path: str = "/health",
        *,
        max_requests: int,
        max_seconds: float,
        pause: float = 0.0,
    ) -> None:
        super().__init__(daemon=True)
        self.host, self.port, self.root, self.path = host, port, root, path
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.pause = pause
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while (
            not self.stop.is_set()
            and time.monotonic() < deadline
            and self.ok + len(self.failures) < self.max_requests
        ):
            try:
                reply = https(self.host, self.port, self.root, self.path, pause=self.pause)
            except OSError as error:  # ssl.SSLError and RemoteDisconnected included
                self.failures.append(f"{time.time():.3f} {error!r}")
                continue
            if reply.status == 200 and reply.body == b"Healthy":
                self.ok += 1
            else:
                self.failures.append(f"{time.time():.3f} HTTP {reply.status}")


class RequestLoops:
    """What a reload meets on a busy server: `clients` loops opening connections as fast as
    they can, plus `slow_clients` whose connections wait SLOW_PAUSE before their request.
    Whenever the proxy switches, some connection is mid-handshake and some is open but has
    not sent its request yet, so a proxy that drops either kind shows it on every reload."""

    SLOW_PAUSE = 1.0

    def __init__(
        self,
        host: str,
        port: int,
        root: Path,
        *,
        clients: int,
        slow_clients: int,
        max_requests: int,
        max_seconds: float,
    ) -> None:
        self.loops = [
            RequestLoop(
                host,
                port,
                root,
                max_requests=max_requests,
                max_seconds=max_seconds,
                pause=self.SLOW_PAUSE if n < slow_clients else 0.0,
            )
            for n in range(slow_clients + clients)
        ]

    def __enter__(self) -> RequestLoops:
        slow = [loop for loop in self.loops if loop.pause]
        for loop in self.loops:
            loop.start()
            if loop.pause:  # staggered: one of them is always waiting
                time.sleep(self.SLOW_PAUSE / len(slow))
        return self

    def __exit__(self, *_exc: object) -> None:
        for loop in self.loops:
            loop.stop.set()
        for loop in self.loops:
            loop.join(timeout=60)

    @property
    def ok(self) -> int:
        return sum(loop.ok for loop in self.loops)

    @property
    def failures(self) -> list[str]:
        return sorted(failure for loop in self.loops for failure in loop.failures)
