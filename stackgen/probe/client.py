"""The one place that opens connections to the target.

Every check connects through `open_tcp`/`open_tls`: the socket goes to the `--resolve`
address (or DNS), while SNI and the Host header keep the public name, exactly like
`curl --resolve`. HTTP is HTTP/1.1 through `http.client` with `connect` overridden, or
HTTP/2 (`protocol="h2"`, see http2.py) on the same kind of socket, so no redirect is ever
followed behind our back and every socket operation is bounded by the target's timeout.
Nothing here talks to any address but the target's.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin

from stackgen.probe import http3
from stackgen.probe.http2 import Http2Exchange
from stackgen.probe.target import Target

USER_AGENT = "stackgen-verify/1"
MAX_BODY = 1 << 20  # checks never need more than 1 MiB of a body
HTTP1 = "http/1.1"
HTTP2 = "h2"


class ProbeError(Exception):
    """A network-level problem reported as one readable line (becomes a check's reason)."""


def open_tcp(target: Target, host: str, port: int) -> socket.socket:
    address = target.address_for(host)
    try:
        return socket.create_connection((address, port), timeout=target.timeout)
    except TimeoutError as exc:
        raise ProbeError(f"timed out connecting to {host} ({address}) port {port}") from exc
    except OSError as exc:
        raise ProbeError(
            f"could not connect to {host} ({address}) port {port}: {exc.strerror or exc}"
        ) from exc


def open_tls(target: Target, context: ssl.SSLContext, host: str, port: int) -> ssl.SSLSocket:
    """TCP connect + TLS handshake with SNI = host. Handshake errors propagate as SSLError."""
    sock = open_tcp(target, host, port)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


# --- TLS contexts -------------------------------------------------------------------


def verifying_context(target: Target, alpn: tuple[str, ...] = (HTTP1,)) -> ssl.SSLContext:
    """What a browser-like client trusts: the system store plus --ca-file."""
    ctx = ssl.create_default_context()
    if target.ca_file is not None:
        ctx.load_verify_locations(cafile=str(target.ca_file))
    # OpenSSL's DEFAULT suites (Python's own list drops CBC/RSA-kx suites): whether the
    # suites are good is tls.ciphers' question, not a reason to fail the trust check.
    # The security level stays the system's, so weak keys/signatures still fail here.
    ctx.set_ciphers("DEFAULT")
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def insecure_context(alpn: tuple[str, ...] = (HTTP1,)) -> ssl.SSLContext:
    """For checks about the proxy's HTTP behaviour. Trust is judged by tls.name/tls.chain
    only, so a certificate problem is reported once instead of failing every check."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # Talk to whatever the server speaks: its TLS settings are judged by the tls.* checks.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def pinned_context(version: ssl.TLSVersion, *, group: str | None = None) -> ssl.SSLContext:
    """A context offering exactly one protocol version (and optionally one group).

    `@SECLEVEL=0` lets OpenSSL 3 offer what its defaults refuse; we want to see what the
    *server* accepts, not what our library likes. `set_ecdh_curve` calls
    SSL_CTX_set1_groups on OpenSSL >= 1.1, so it restricts the offered groups (and the
    TLS 1.3 key share) to that single group for TLS 1.2 *and* 1.3.
    """
    ctx = insecure_context()  # already DEFAULT:@SECLEVEL=0
    ctx.minimum_version = version
    ctx.maximum_version = version
    if group is not None:
        ctx.set_ecdh_curve(group)
    return ctx


@dataclass(frozen=True)
class HandshakeInfo:
    version: str | None
    cipher: str | None
    compression: str | None
    peer_der: bytes | None
    alpn: str | None = None  # the application protocol the server selected


def handshake(target: Target, context: ssl.SSLContext) -> HandshakeInfo:
    """Complete a handshake with the public origin and hang up."""
    url = target.base_url
    with open_tls(target, context, url.host, url.port) as tls:
        cipher = tls.cipher()
        return HandshakeInfo(
            version=tls.version(),
            cipher=cipher[0] if cipher else None,
            compression=tls.compression(),
            peer_der=tls.getpeercert(binary_form=True),
            alpn=tls.selected_alpn_protocol(),
        )


# --- HTTP ----------------------------------------------------------------------------


class StreamedResponse(Protocol):
    """What a check reads from a response whose body is still on the wire (HTTP/1.1's
    `http.client.HTTPResponse`, or an HTTP/2 stream)."""

    status: int
    reason: str

    def getheaders(self) -> list[tuple[str, str]]: ...

    def read1(self, n: int = -1, /) -> bytes: ...


class _Http2Response:
    def __init__(self, exchange: Http2Exchange) -> None:
        self._exchange = exchange
        self.status = exchange.status or 0
        self.reason = ""

    def getheaders(self) -> list[tuple[str, str]]:
        return self._exchange.getheaders()

    def read1(self, n: int = -1, /) -> bytes:
        return self._exchange.read1(65536 if n < 0 else n)


def _request_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",  # byte ranges must mean raw bytes
        **(headers or {}),
    }


@contextmanager
def _open_http2(
    target: Target,
    path: str,
    method: str,
    headers: Mapping[str, str],
    context: ssl.SSLContext | None,
    *,
    has_body: bool = False,
) -> Iterator[Http2Exchange]:
    url = target.base_url
    ctx = context or insecure_context((HTTP2,))
    with open_tls(target, ctx, url.host, url.port) as tls:
        yield Http2Exchange(tls, method, url.netloc, path, headers, has_body=has_body)


class _HTTPConnection(http.client.HTTPConnection):
    """http.client with our socket factory; Host header stays the public name."""

    def __init__(
        self, host: str, port: int, timeout: float, opener: Callable[[], socket.socket]
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._opener = opener

    def connect(self) -> None:
        self.sock = self._opener()


class _HTTPSConnection(_HTTPConnection):
    default_port = 443  # so "Host: name" carries no ":443", like browsers send it


@dataclass(frozen=True)
class Response:
    url: str  # absolute URL that was requested (for resolving relative Locations)
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    elapsed_ms: int

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)

    def header_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and self.header("Location") is not None

    @property
    def location(self) -> str:
        """Where a redirect points, made absolute against the requested URL (a relative
        Location is resolved as a browser does)."""
        return urljoin(self.url, self.header("Location") or "")

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _connection(target: Target, scheme: str, context: ssl.SSLContext | None) -> _HTTPConnection:
    url = target.base_url
    if scheme == "https":
        ctx = context or insecure_context()
        return _HTTPSConnection(
            url.host,
            url.port,
            target.timeout,
            lambda: open_tls(target, ctx, url.host, url.port),
        )
    return _HTTPConnection(
        url.host,
        target.http_port,
        target.timeout,
        lambda: open_tcp(target, url.host, target.http_port),
    )


def absolute_url(target: Target, scheme: str, path: str) -> str:
    url = target.base_url
    if scheme == "https":
        return url.url(path)
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = "" if target.http_port == 80 else f":{target.http_port}"
    return f"http://{host}{port}{path}"


@contextmanager
def open_response(
    target: Target,
    path: str,
    *,
    scheme: str = "https",
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    protocol: str = HTTP1,
) -> Iterator[tuple[StreamedResponse, float]]:
    """Send one request and yield the response with headers read (body unread) and the
    monotonic time the request was fully sent. The connection is closed afterwards.
    `protocol="h2"` (https only) needs a context that offers h2 in ALPN."""
    if protocol == HTTP2 and scheme == "https":
        with _open_http2(target, path, method, _request_headers(headers), context) as exchange:
            sent = time.monotonic()
            exchange.wait_response()
            yield _Http2Response(exchange), sent
        return
    conn = _connection(target, scheme, context)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("User-Agent", USER_AGENT)
        conn.putheader("Accept-Encoding", "identity")  # byte ranges must mean raw bytes
        conn.putheader("Connection", "close")
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        sent = time.monotonic()
        yield conn.getresponse(), sent
    finally:
        conn.close()


def read_bounded(resp: StreamedResponse, limit: int, deadline: float) -> bytes:
    """Read at most `limit` body bytes, giving up at `deadline` (monotonic)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        if time.monotonic() > deadline:
            raise ProbeError("the response body did not arrive within the timeout")
        chunk = resp.read1(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def request(
    target: Target,
    path: str,
    *,
    scheme: str = "https",
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    max_body: int = MAX_BODY,
    protocol: str = HTTP1,
) -> Response:
    """One request, one connection, no redirects followed; body capped at `max_body`."""
    start = time.monotonic()
    try:
        with open_response(
            target,
            path,
            scheme=scheme,
            method=method,
            headers=headers,
            context=context,
            protocol=protocol,
        ) as (resp, _sent):
            body = (
                b""
                if method == "HEAD"
                else read_bounded(resp, max_body, start + 3 * target.timeout)
            )
            return Response(
                url=absolute_url(target, scheme, path),
                status=resp.status,
                reason=resp.reason,
                headers=tuple(resp.getheaders()),
                body=body,
                elapsed_ms=round((time.monotonic() - start) * 1000),
            )
    except (http.client.HTTPException, OSError) as exc:
        raise ProbeError(
            f"{method} {absolute_url(target, scheme, path)}: {type(exc).__name__}: {exc}"
        ) from exc


@dataclass(frozen=True)
class UploadOutcome:
    status: int | None  # None: no response at all
    sent_bytes: int
    send_error: str | None  # the server stopped reading before the body was sent
    receive_error: str | None  # no response could be read


def upload(
    target: Target,
    path: str,
    body: Iterable[bytes],
    size: int,
    headers: Mapping[str, str],
    protocol: str = HTTP1,
) -> UploadOutcome:
    """POST a streamed body of `size` bytes. A proxy that refuses large bodies answers
    413 early and/or resets the connection, and Jellyfin answers an upload without a token
    401 before reading it; the proxy may then close the connection while we still send. So,
    as RFC 9112 (9.5) asks of a client, we watch for an answer while sending and stop
    sending when one comes; and a send failure is not the end: we still try to read
    whatever response is already waiting."""
    if protocol == HTTP2:
        return _upload_http2(target, path, body, size, headers)
    conn = _connection(target, "https", None)
    sent = 0
    send_error: str | None = None
    try:
        conn.putrequest("POST", path, skip_accept_encoding=True)
        conn.putheader("User-Agent", USER_AGENT)
        conn.putheader("Content-Length", str(size))
        conn.putheader("Connection", "close")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        try:
            for piece in _pieces(body, SEND_PIECE):
                early = _writable_or_answer(conn.sock, target.timeout)
                if early is not None:
                    conn.sock = _Replayed(conn.sock, early)  # getresponse() reads it first
                    break
                conn.send(piece)
                sent += len(piece)
        except OSError as exc:
            send_error = f"{type(exc).__name__}: {exc}"
        try:
            resp = conn.getresponse()
            status = resp.status
            read_bounded(resp, 65536, time.monotonic() + target.timeout)
        except (OSError, http.client.HTTPException) as exc:
            return UploadOutcome(None, sent, send_error, f"{type(exc).__name__}: {exc}")
        return UploadOutcome(status, sent, send_error, None)
    finally:
        conn.close()


# Small pieces, each sent only when the socket takes it: a server that answers early and
# stops reading must never leave us blocked in a send while its answer waits (a server
# that then closes for good makes the kernel drop an answer nobody read).
SEND_PIECE = 16 * 1024


def _pieces(body: Iterable[bytes], size: int) -> Iterator[bytes]:
    for chunk in body:
        for start in range(0, len(chunk), size):
            yield chunk[start : start + size]


def _writable_or_answer(sock: socket.socket | None, timeout: float) -> bytes | None:
    """Wait until the socket can take more body (None) or the server answered (what it
    sent; b"" when it closed). A TLS 1.3 session ticket makes the socket readable but
    carries no answer: that is read and waited past."""
    if sock is None:
        return None
    deadline = time.monotonic() + timeout
    while True:
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
        wait = 0 if pending else max(0.0, deadline - time.monotonic())
        readable, writable, _ = select.select([sock], [sock], [], wait)
        if pending or readable:
            previous = sock.gettimeout()
            sock.settimeout(0)
            try:
                return sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            finally:
                sock.settimeout(previous)
        if writable or time.monotonic() >= deadline:
            return None  # a send that cannot go out times out by itself


class _Replayed:
    """A socket whose first bytes were read already: http.client reads them again."""

    def __init__(self, sock: socket.socket, first: bytes) -> None:
        self._sock, self._first = sock, first

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_PrefixedReader(self._first, self._sock))

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class _PrefixedReader(io.RawIOBase):
    def __init__(self, first: bytes, sock: socket.socket) -> None:
        self._first, self._sock = first, sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._first:
            n = min(len(buffer), len(self._first))
            buffer[:n] = self._first[:n]
            self._first = self._first[n:]
            return n
        return self._sock.recv_into(buffer)


def _upload_http2(
    target: Target, path: str, body: Iterable[bytes], size: int, headers: Mapping[str, str]
) -> UploadOutcome:
    sent = 0
    send_error: str | None = None
    all_headers = {**_request_headers(headers), "Content-Length": str(size)}
    try:
        with _open_http2(target, path, "POST", all_headers, None, has_body=True) as exchange:
            try:
                for chunk in body:
                    exchange.send_body(chunk)
                    sent += len(chunk)
                exchange.end_body()
            except OSError as exc:
                send_error = f"{type(exc).__name__}: {exc}"
            try:
                exchange.wait_response()
                status = exchange.status
                read_bounded(_Http2Response(exchange), 65536, time.monotonic() + target.timeout)
            except OSError as exc:
                return UploadOutcome(None, sent, send_error, f"{type(exc).__name__}: {exc}")
            return UploadOutcome(status, sent, send_error, None)
    except OSError as exc:
        return UploadOutcome(None, sent, send_error, f"{type(exc).__name__}: {exc}")


def request_http3(target: Target, path: str, port: int, *, max_body: int = MAX_BODY) -> Response:
    """One GET over HTTP/3 (QUIC on UDP `port`), to the same address as every request."""
    url = target.base_url
    start = time.monotonic()
    try:
        answer = http3.get(
            target.address_for(url.host),
            port,
            url.host,
            url.netloc,
            path,
            {"user-agent": USER_AGENT, "accept-encoding": "identity"},
            timeout=target.timeout,
            limit=max_body,
        )
    except OSError as exc:
        raise ProbeError(f"GET {url.url(path)} over HTTP/3: {exc}") from exc
    return Response(
        url=url.url(path),
        status=answer.status,
        reason="",
        headers=answer.headers,
        body=answer.body,
        elapsed_ms=round((time.monotonic() - start) * 1000),
    )
