"""One HTTP/3 request over QUIC (aioquic), to the target's address with SNI = the public name.

Used by `client` only. QUIC runs on UDP, so it cannot share `client.open_tls`; the address
still comes from the target's `--resolve` map, and the whole exchange is bounded by one
deadline. The certificate is not verified here: trust is tls.name's question.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent


@dataclass(frozen=True)
class Http3Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Http3Error(OSError):
    """No QUIC handshake, or the connection ended before a response."""


class _Client(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic)
        self._stream_id: int | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()
        self._limit = 0
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated) and not self._done.done():
            self._done.set_exception(
                Http3Error(f"QUIC connection closed: {event.reason_phrase or event.error_code}")
            )
            return
        for h3_event in self._h3.handle_event(event):
            self._on_h3(h3_event)

    def _on_h3(self, event: H3Event) -> None:
        if getattr(event, "stream_id", None) != self._stream_id or self._done.done():
            return
        if isinstance(event, HeadersReceived):
            self._headers.extend(event.headers)
        elif isinstance(event, DataReceived):
            self._body += event.data[: max(0, self._limit - len(self._body))]
        if getattr(event, "stream_ended", False) or len(self._body) >= self._limit:
            self._done.set_result(None)

    async def get(
        self, authority: str, path: str, headers: Mapping[str, str], limit: int
    ) -> Http3Response:
        self._limit = limit
        self._stream_id = self._quic.get_next_available_stream_id()
        request = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ]
        self._h3.send_headers(self._stream_id, request, end_stream=True)
        self.transmit()
        await self._done
        text = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._headers]
        status = next((v for k, v in text if k == ":status"), "")
        return Http3Response(
            status=int(status) if status.isdigit() else 0,
            headers=tuple((k, v) for k, v in text if not k.startswith(":")),
            body=bytes(self._body),
        )


async def _get(
    address: str,
    port: int,
    server_name: str,
    authority: str,
    path: str,
    headers: Mapping[str, str],
    limit: int,
) -> Http3Response:
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        verify_mode=ssl.CERT_NONE,
        server_name=server_name,
    )
    async with connect(
        address,
        port,
        configuration=configuration,
        create_protocol=_Client,
        wait_connected=True,
    ) as protocol:
        assert isinstance(protocol, _Client)
        return await protocol.get(authority, path, headers, limit)


def get(
    address: str,
    port: int,
    server_name: str,
    authority: str,
    path: str,
    headers: Mapping[str, str],
    *,
    timeout: float,
    limit: int,
) -> Http3Response:
    """GET over HTTP/3; raises Http3Error (no answer in time, or the connection ended)."""
    try:
        return asyncio.run(
            asyncio.wait_for(
                _get(address, port, server_name, authority, path, headers, limit), timeout
            )
        )
    except TimeoutError as exc:
        raise Http3Error(f"no HTTP/3 answer within {timeout:g} s (UDP {port})") from exc
    except ConnectionError as exc:
        raise Http3Error(f"QUIC: {exc}") from exc
