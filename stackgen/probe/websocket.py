"""A WebSocket client whose socket (and TLS session) is used by one thread only.

`websockets.sync.client` starts a thread that blocks in `recv()` on the connection as soon
as it exists, while the calling thread sends the upgrade request and every frame: two
threads in one OpenSSL session at once, which OpenSSL does not support. Under load, right
after a TLS 1.3 handshake (when the server's session tickets arrive), that lost upgrade
requests: the server never saw a request line (docs/flakes.md). Here the websockets
library only parses and builds bytes (its Sans-I/O `ClientProtocol`); the caller's thread
does every read and write, each bounded by a deadline.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

RECV_SIZE = 65536
SEND_TIMEOUT = 10.0  # a frame the server does not take within this is a dead connection
CLOSE_TIMEOUT = 2.0  # the closing handshake is a courtesy: never wait long for it


class WebSocketError(Exception):
    """The upgrade failed or the connection broke; the message is one readable line."""


@dataclass
class WebSocketRefused(WebSocketError):
    """The server answered the upgrade request with something other than 101."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def __str__(self) -> str:
        return f"the upgrade was answered {self.status}, not 101"


@dataclass
class WebSocketClosed(WebSocketError):
    """The connection ended: `code` is the server's close code, None when it dropped the
    connection without a close frame."""

    code: int | None
    reason: str = ""

    def __str__(self) -> str:
        if self.code is None:
            return "the connection dropped without a close frame"
        return f"closed with code {self.code} {self.reason!r}".rstrip()


class WebSocket:
    """An open WebSocket: text frames in and out, from the thread that opened it."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol, response: Response) -> None:
        self._sock = sock
        self._protocol = protocol
        self.response = response
        self._frames: deque[Frame] = deque()

    def send_text(self, text: str) -> None:
        if self._protocol.state is not State.OPEN:
            raise self._closed()
        self._protocol.send_text(text.encode())
        try:
            _flush(self._sock, self._protocol, time.monotonic() + SEND_TIMEOUT)
        except OSError as error:
            raise self._closed() from error

    def recv_text(self, timeout: float) -> str:
        """The next text message (control frames are answered on the way); TimeoutError
        when none is complete within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        parts: list[bytes] = []
        while True:
            while self._frames:
                frame = self._frames.popleft()
                if frame.opcode in (Opcode.TEXT, Opcode.CONT):
                    parts.append(bytes(frame.data))
                    if frame.fin:
                        return b"".join(parts).decode()
                elif frame.opcode is Opcode.BINARY:
                    raise WebSocketError("a binary frame where text was expected")
            if self._protocol.close_rcvd is not None or _ended(self._protocol):
                raise self._closed()
            if not _receive(self._sock, self._protocol, deadline):
                raise TimeoutError(f"no WebSocket message within {timeout:g} s")
            self._frames.extend(e for e in self._protocol.events_received() if isinstance(e, Frame))
            try:
                _flush(self._sock, self._protocol, deadline)  # pongs, the reply to a close
            except OSError as error:
                if self._protocol.close_rcvd is None:
                    raise self._closed() from error
                # The server closed first and is gone: the reply was a courtesy.

    def close(self) -> None:
        """Send a close frame and wait (briefly) for the server's, then close the socket."""
        try:
            if self._protocol.state is State.OPEN:
                deadline = time.monotonic() + CLOSE_TIMEOUT
                self._protocol.send_close(1000)
                _flush(self._sock, self._protocol, deadline)
                while not _ended(self._protocol) and _receive(self._sock, self._protocol, deadline):
                    self._protocol.events_received()
                    _flush(self._sock, self._protocol, deadline)
        except (OSError, WebSocketError):
            pass  # closing a broken connection: nothing left to tell
        finally:
            self._sock.close()

    def _closed(self) -> WebSocketClosed:
        received = self._protocol.close_rcvd
        if received is None:
            return WebSocketClosed(None)
        return WebSocketClosed(int(received.code), received.reason)

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_websocket(
    uri: str,
    *,
    timeout: float,
    sock: socket.socket | None = None,
    context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    user_agent: str | None = None,
) -> WebSocket:
    """Open `uri` (ws:// or wss://) over `sock` (a connected TCP socket; by default one to
    the URI's host): TLS handshake (wss, with `context` and SNI `server_hostname`), upgrade
    request, 101. Everything within `timeout` seconds, else TimeoutError. A refusal raises
    WebSocketRefused with the server's status, headers and body; a broken or invalid
    handshake, WebSocketError. The socket is closed on any failure."""
    deadline = time.monotonic() + timeout
    parsed = parse_uri(uri)
    if sock is None:
        sock = socket.create_connection((parsed.host, parsed.port), timeout=timeout)
    try:
        if parsed.secure:
            sock = _start_tls(sock, context, server_hostname or parsed.host, deadline, timeout)
        protocol = ClientProtocol(parsed)
        request = protocol.connect()
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in pairs:
            request.headers[name] = value
        if user_agent is not None:
            request.headers["User-Agent"] = user_agent
        protocol.send_request(request)
        _flush(sock, protocol, deadline)
        response, frames = _await_response(sock, protocol, deadline, timeout)
    except BaseException:
        sock.close()
        raise
    websocket = WebSocket(sock, protocol, response)
    websocket._frames.extend(frames)
    return websocket


def _start_tls(
    sock: socket.socket,
    context: ssl.SSLContext | None,
    hostname: str,
    deadline: float,
    timeout: float,
) -> ssl.SSLSocket:
    context = context or ssl.create_default_context()
    tls = context.wrap_socket(sock, server_hostname=hostname, do_handshake_on_connect=False)
    tls.settimeout(_remaining(deadline))
    try:
        tls.do_handshake()
    except TimeoutError:
        tls.close()
        raise TimeoutError(f"no TLS handshake within {timeout:g} s") from None
    except BaseException:
        tls.close()
        raise
    return tls


def _await_response(
    sock: socket.socket, protocol: ClientProtocol, deadline: float, timeout: float
) -> tuple[Response, list[Frame]]:
    """The 101, and the frames that came in the same read (Jellyfin's ForceKeepAlive)."""
    while True:
        events = protocol.events_received()
        for n, event in enumerate(events):
            if isinstance(event, Response):
                if isinstance(protocol.handshake_exc, InvalidStatus):
                    raise WebSocketRefused(
                        event.status_code, list(event.headers.raw_items()), bytes(event.body)
                    )
                if protocol.handshake_exc is not None:
                    raise WebSocketError(f"invalid upgrade answer: {protocol.handshake_exc}")
                return event, [e for e in events[n + 1 :] if isinstance(e, Frame)]
        if protocol.handshake_exc is not None:
            cause = protocol.handshake_exc.__cause__
            detail = f" ({cause!r})" if cause is not None else ""
            raise WebSocketError(f"{protocol.handshake_exc}{detail}")
        if not _receive(sock, protocol, deadline):
            raise TimeoutError(f"no answer to the WebSocket upgrade within {timeout:g} s")


def _receive(sock: socket.socket, protocol: ClientProtocol, deadline: float) -> bool:
    """Read once and feed the protocol; False when the deadline passed first."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    sock.settimeout(remaining)
    try:
        data = sock.recv(RECV_SIZE)
    except TimeoutError:
        return False
    except ssl.SSLEOFError:
        data = b""  # closed without TLS's close_notify: an end all the same
    if data:
        protocol.receive_data(data)
    else:
        protocol.receive_eof()
    return True


def _flush(sock: socket.socket, protocol: ClientProtocol, deadline: float) -> None:
    for data in protocol.data_to_send():
        if not data:  # the protocol's end of stream: no more writes from us
            continue
        sock.settimeout(_remaining(deadline))
        sock.sendall(data)


def _ended(protocol: ClientProtocol) -> bool:
    # A function, not an inline test: mypy would keep `state` narrowed across the I/O.
    return protocol.state is State.CLOSED


def _remaining(deadline: float) -> float:
    # A zero timeout would make the socket non-blocking; a tiny one still times out.
    return max(deadline - time.monotonic(), 0.001)
