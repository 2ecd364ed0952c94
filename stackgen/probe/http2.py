"""One HTTP/2 request on the probe's own TLS socket, driven by the `h2` state machine.

Used by `client` only: the socket still comes from `client.open_tls` (the `--resolve`
address, SNI = the public name), so h2 requests go exactly where HTTP/1.1 ones go. One
stream per connection, like the HTTP/1.1 side's `Connection: close`, so a check's
response never depends on another's. Every socket read is bounded by the socket's timeout.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from h2 import events
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.exceptions import H2Error

# HTTP/1.1 connection headers are forbidden in HTTP/2 (RFC 9113, 8.2.2); Host is :authority.
_CONNECTION_HEADERS = frozenset(
    {"connection", "host", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)


class Http2Error(OSError):
    """The server broke the exchange (reset, GOAWAY, closed): an OSError like a reset socket."""


class Http2Exchange:
    """A request's stream: headers sent on creation, body and response on demand."""

    def __init__(
        self,
        sock: ssl.SSLSocket,
        method: str,
        authority: str,
        path: str,
        headers: Mapping[str, str],
        *,
        has_body: bool = False,
    ) -> None:
        if sock.selected_alpn_protocol() != "h2":
            raise Http2Error(
                f"the server did not negotiate h2 (ALPN: {sock.selected_alpn_protocol()})"
            )
        self.sock = sock
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.stream_id = self.conn.get_next_available_stream_id()
        self.status: int | None = None
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self._buffer = bytearray()
        self.ended = False
        self.complete = False  # the response ended (END_STREAM)
        self.problem: str | None = None
        request = [
            (":method", method),
            (":scheme", "https"),
            (":authority", authority),
            (":path", path),
            *((k.lower(), v) for k, v in headers.items() if k.lower() not in _CONNECTION_HEADERS),
        ]
        self.conn.send_headers(self.stream_id, request, end_stream=not has_body)
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _pump(self) -> None:
        """Read once from the socket and apply what arrived."""
        data = self.sock.recv(65536)
        if not data:
            self.ended = True
            self.problem = self.problem or "the server closed the connection"
            return
        try:
            received = self.conn.receive_data(data)
        except H2Error as exc:
            raise Http2Error(f"HTTP/2 protocol error: {exc}") from exc
        for event in received:
            self._apply(event)
        self._flush()

    def _apply(self, event: events.Event) -> None:
        if isinstance(event, events.ResponseReceived) and event.stream_id == self.stream_id:
            self.headers = [
                (_text(k), _text(v)) for k, v in event.headers or [] if not _text(k).startswith(":")
            ]
            status = next((_text(v) for k, v in event.headers or [] if _text(k) == ":status"), "")
            self.status = int(status) if status.isdigit() else 0
        elif isinstance(event, events.DataReceived) and event.stream_id == self.stream_id:
            self._buffer += event.data or b""
            self.conn.acknowledge_received_data(event.flow_controlled_length or 0, self.stream_id)
        elif isinstance(event, events.StreamEnded) and event.stream_id == self.stream_id:
            self.ended = self.complete = True
        elif isinstance(event, events.StreamReset) and event.stream_id == self.stream_id:
            self.ended = True
            if self.complete and event.error_code == 0:
                # RFC 9113, 8.1: after a complete response, RST_STREAM(NO_ERROR) asks the
                # client to stop sending its body; the response stands.
                return
            self.problem = f"the server reset the stream (HTTP/2 error {event.error_code})"
        elif isinstance(event, events.ConnectionTerminated):
            self.ended = True
            self.problem = self.problem or f"GOAWAY (HTTP/2 error {event.error_code})"

    def send_body(self, chunk: bytes) -> None:
        """Send within the flow-control window, waiting for WINDOW_UPDATEs; stops with an
        error as soon as the server answered or reset (a 413 before the body is through)."""
        view = memoryview(chunk)
        while view:
            if self.ended or self.status is not None:
                raise Http2Error(self.problem or f"the server answered {self.status} mid-body")
            try:
                window = min(
                    self.conn.local_flow_control_window(self.stream_id),
                    self.conn.max_outbound_frame_size,
                )
                if window <= 0:
                    self._pump()
                    continue
                self.conn.send_data(self.stream_id, view[:window].tobytes())
            except H2Error as exc:  # the stream was closed under us
                raise Http2Error(self.problem or f"HTTP/2: {exc}") from exc
            view = view[window:]
            self._flush()

    def end_body(self) -> None:
        try:
            self.conn.end_stream(self.stream_id)
        except H2Error as exc:
            raise Http2Error(self.problem or f"HTTP/2: {exc}") from exc
        self._flush()

    def wait_response(self) -> None:
        while self.status is None:
            if self.ended:
                raise Http2Error(self.problem or "the stream ended without a response")
            self._pump()

    def read1(self, limit: int = 65536) -> bytes:
        while not self._buffer and not self.ended:
            self._pump()
        if not self._buffer and self.problem and not self.problem.startswith("GOAWAY"):
            raise Http2Error(self.problem)
        chunk = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return chunk

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self.headers)


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
