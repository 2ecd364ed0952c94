"""A small HTTP/1.1 client for API calls, WebSocket handshakes and paced streams.

Small and ours so that what is timed is exactly one request on a kept-alive connection
(or one handshake), with no library retrying or pooling behind our back. All socket
operations are bounded by a timeout; streams are bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from stackgen.bench.endpoint import Endpoint

USER_AGENT = "stackgen-bench/1"
MAX_HEAD = 64 * 1024
MAX_API_BODY = 4 << 20


class HttpError(Exception):
    pass


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names, last value wins
    body: bytes


def _request_head(ep: Endpoint, method: str, path: str, extra: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {ep.netloc}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    text = raw.decode("latin-1")
    status_line, *header_lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HttpError(f"bad status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


# --- asyncio: API calls and WebSocket handshakes -----------------------------------------


class AsyncConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True

    @classmethod
    async def open(cls, ep: Endpoint) -> AsyncConnection:
        reader, writer = await asyncio.open_connection(
            ep.address,
            ep.socket_port,
            ssl=ep.context if ep.scheme == "https" else None,
            server_hostname=ep.host if ep.scheme == "https" else None,
            limit=MAX_HEAD,
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(
        self, ep: Endpoint, method: str, path: str, headers: dict[str, str] | None = None
    ) -> Response:
        self.writer.write(_request_head(ep, method, path, headers or {}))
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, response_headers = _parse_head(head[:-4])
        body = await self._body(method, status, response_headers)
        if response_headers.get("connection", "").lower() == "close":
            self.reusable = False
        return Response(status, response_headers, body)

    async def _body(self, method: str, status: int, headers: dict[str, str]) -> bytes:
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = bytearray()
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers expected
                    return bytes(out)
                if len(out) + size > MAX_API_BODY:
                    raise HttpError("response body too large for an API call")
                out += await self.reader.readexactly(size + 2)
                del out[-2:]
        length = headers.get("content-length")
        if length is None:
            self.reusable = False
            return await self.reader.read(MAX_API_BODY)
        if int(length) > MAX_API_BODY:
            raise HttpError("response body too large for an API call")
        return await self.reader.readexactly(int(length))

    def close(self) -> None:
        self.writer.close()


class ConnectionPool:
    """Idle kept-alive connections; a request finding none opens a new one (counted),
    as a browser would, instead of queueing behind a slow one (that would close the loop).

    A server may close an idle kept-alive connection at any moment (idle timeout, graceful
    reload) while our request is on its way. Like browsers and HTTP client libraries
    (RFC 9110 section 9.2.2: idempotent requests), a GET on a *reused* connection that
    ends before a single response byte is retried once on a new connection; the retry
    is counted and its time stays in the request's latency.
    """

    def __init__(self, ep: Endpoint, max_connections: int = 16) -> None:
        self.ep = ep
        self.idle: list[AsyncConnection] = []
        self.opened = 0
        self.stale_retries = 0
        # At most this many connections at once, like a browser's per-host limit: when the
        # server stalls (a reload), requests wait for a connection (their latency still
        # counts from the scheduled time) instead of each opening one more TLS connection
        # until the client itself, not the server, is what collapses.
        self.slots = asyncio.Semaphore(max_connections)

    async def request(self, method: str, path: str, headers: dict[str, str]) -> Response:
        async with self.slots:
            return await self._request(method, path, headers)

    async def _request(self, method: str, path: str, headers: dict[str, str]) -> Response:
        conn = self.idle.pop() if self.idle else None
        if conn is not None:
            try:
                return self._keep(conn, await conn.request(self.ep, method, path, headers))
            except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if getattr(exc, "partial", b"") or method not in ("GET", "HEAD"):
                    raise
                self.stale_retries += 1
            except BaseException:
                conn.close()
                raise
        conn = await AsyncConnection.open(self.ep)
        self.opened += 1
        try:
            return self._keep(conn, await conn.request(self.ep, method, path, headers))
        except BaseException:
            conn.close()
            raise

    def _keep(self, conn: AsyncConnection, response: Response) -> Response:
        if conn.reusable:
            self.idle.append(conn)
        else:
            conn.close()
        return response

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


async def websocket_handshake(ep: Endpoint, path: str) -> float:
    """Seconds from connect to the 101 answer (TCP + TLS + upgrade), on a new connection."""
    started = time.perf_counter()
    conn = await AsyncConnection.open(ep)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        head = _request_head(
            ep,
            "GET",
            path,
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13",
            },
        )
        conn.writer.write(head)
        await conn.writer.drain()
        raw = await conn.reader.readuntil(b"\r\n\r\n")
        elapsed = time.perf_counter() - started
        status, _headers = _parse_head(raw[:-4])
        if status != 101:
            raise HttpError(f"WebSocket upgrade answered {status}")
        return elapsed
    finally:
        conn.close()


# --- threads: paced streams ----------------------------------------------------------------

MEDIA_MODULUS = 251  # the stand-in's media: byte i is i % 251


class Stop(Protocol):
    """A threading or multiprocessing Event: players run as threads or processes."""

    def is_set(self) -> bool: ...


@dataclass
class PacedStream:
    bytes: int = 0
    requests: int = 0
    max_gap_ms: float = 0.0  # longest wait for data the player was ready to take
    max_gap_at_s: float = 0.0  # when that wait began, seconds after the start
    max_head_gap_ms: float = 0.0  # longest of those waits that was for a response head
    first_byte_ms: float | None = None  # start-up: first request to its response head
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0  # chunks that differ from the stand-in's byte pattern
    reconnects: int = 0  # kept-alive connections closed between responses, reopened

    def waited(self, began: float, ended: float, started: float, *, head: bool) -> None:
        """Count one wait for data. The wait for the very first response head is the
        stream's start-up (a player shows a spinner then), not a gap between chunks."""
        if self.first_byte_ms is None:
            return  # the first response head: timed as a whole by the caller
        ms = (ended - began) * 1000
        if head:
            self.max_head_gap_ms = max(self.max_head_gap_ms, ms)
        if ms > self.max_gap_ms:
            self.max_gap_ms = ms
            self.max_gap_at_s = began - started


def _blocking_socket(ep: Endpoint, timeout: float) -> socket.socket:
    sock = socket.create_connection((ep.address, ep.socket_port), timeout=timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if ep.scheme == "https" and ep.context is not None:
        return ep.context.wrap_socket(sock, server_hostname=ep.host)
    return sock


def paced_stream(
    ep: Endpoint,
    rel_path: str,
    *,
    size: int,
    bitrate_bps: float,
    duration: float,
    check_bytes: bool,
    stop: Stop,
    segment: int = 64 << 20,
    tick: float = 0.05,
    timeout: float = 10.0,
    connected: Callable[[], None] | None = None,
) -> PacedStream:
    """Read like a player at `bitrate_bps` for `duration` seconds: Range requests of
    `segment` bytes one after another (wrapping at the end of the file) on one kept-alive
    connection. A gap is the time one read waited while the player wanted data.
    `connected` is called once the first connection is up, before the clock starts (so
    many players can start together)."""
    out = PacedStream()
    rate = bitrate_bps / 8
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    pattern = bytes(range(MEDIA_MODULUS)) * (len(buf) // MEDIA_MODULUS + 2)
    offset = 0
    sock: socket.socket | None = None
    try:
        sock = _blocking_socket(ep, timeout)
        if connected is not None:
            connected()
        started = time.perf_counter()
        deadline = started + duration
        while time.perf_counter() < deadline and not stop.is_set():
            last = min(offset + segment, size) - 1
            request = _request_head(
                ep, "GET", ep.path(rel_path), {"Range": f"bytes={offset}-{last}"}
            )
            sock.sendall(request)
            out.requests += 1
            head = bytearray()
            retried = False
            sent = time.perf_counter()
            while b"\r\n\r\n" not in head:
                wait_start = time.perf_counter()
                try:
                    n = sock.recv_into(view[: 16 * 1024])
                except ConnectionResetError:
                    n = 0
                out.waited(wait_start, time.perf_counter(), started, head=True)
                if n == 0 and not head and out.requests > 1 and not retried:
                    # The server closed the kept-alive connection between two responses
                    # (idle timeout, graceful reload): a player reconnects, so do we, once.
                    sock.close()
                    sock = _blocking_socket(ep, timeout)
                    sock.sendall(request)
                    out.reconnects += 1
                    retried = True
                    continue
                if n == 0:
                    raise HttpError("connection closed before the response head")
                head += view[:n]
                if len(head) > MAX_HEAD:
                    raise HttpError("response head too large")
            if out.first_byte_ms is None:
                out.first_byte_ms = (time.perf_counter() - sent) * 1000
            raw_head, _, rest = bytes(head).partition(b"\r\n\r\n")
            status, headers = _parse_head(raw_head)
            if status != 206:
                raise HttpError(f"Range request answered {status}")
            remaining = int(headers.get("content-length", "0")) - len(rest)
            position = offset
            if check_bytes and rest != _expected(pattern, position, len(rest)):
                out.mismatches += 1
            position += len(rest)
            out.bytes += len(rest)
            while remaining > 0:
                now = time.perf_counter()
                if now >= deadline or stop.is_set():
                    return out
                allowed = rate * (now - started)
                if out.bytes >= allowed:
                    time.sleep(min(tick, (out.bytes - allowed) / rate + 0.001))
                    continue
                want = min(len(buf), remaining, int(allowed - out.bytes) + 1)
                wait_start = time.perf_counter()
                n = sock.recv_into(view[:want])
                out.waited(wait_start, time.perf_counter(), started, head=False)
                if n == 0:
                    raise HttpError("connection closed mid-body")
                if check_bytes and view[:n] != _expected(pattern, position, n):
                    out.mismatches += 1
                position += n
                remaining -= n
                out.bytes += n
            offset = 0 if last + 1 >= size else last + 1
    except (OSError, HttpError, ValueError) as exc:
        out.errors.append(f"{type(exc).__name__}: {exc}"[:200])
    finally:
        if sock is not None:
            sock.close()
    return out


def _expected(pattern: bytes, position: int, n: int) -> memoryview:
    phase = position % MEDIA_MODULUS
    return memoryview(pattern)[phase : phase + n]


@dataclass
class BufferedPlay:
    """What one buffered player saw (see `capacity.PlayerBuffer`)."""

    bytes: int = 0
    requests: int = 0
    seeks: int = 0
    stalls: int = 0
    stalled_s: float = 0.0
    first_stall_at_s: float | None = None
    first_byte_ms: float | None = None
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0


@dataclass(frozen=True)
class PlayerHabits:
    """How a player reads: start-up buffer, read-ahead, seeks, and when it starts."""

    start_s: float = 2.0  # seconds of media buffered before playback starts
    buffer_s: float = 8.0  # read-ahead: at most this many seconds held unplayed
    seek_every_s: float = 30.0  # a jump to a random position this often (0: never)
    start_delay_s: float = 0.0  # staggered starts: this player begins this much later
    seed: int = 0


def _open_range(ep: Endpoint, rel_path: str, offset: int, timeout: float) -> tuple[
    socket.socket, bytes, int
]:  # fmt: skip
    """An open-ended Range request from `offset`, as a video element makes one: the
    socket, the body bytes already read with the head, and the body's length."""
    sock = _blocking_socket(ep, timeout)
    try:
        sock.sendall(_request_head(ep, "GET", ep.path(rel_path), {"Range": f"bytes={offset}-"}))
        head = bytearray()
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(16 * 1024)
            if not chunk:
                raise HttpError("connection closed before the response head")
            head += chunk
            if len(head) > MAX_HEAD:
                raise HttpError("response head too large")
        raw_head, _, rest = bytes(head).partition(b"\r\n\r\n")
        status, headers = _parse_head(raw_head)
        if status != 206:
            raise HttpError(f"Range request answered {status}")
        return sock, rest, int(headers.get("content-length", "0"))
    except BaseException:
        sock.close()
        raise


def buffered_player(
    ep: Endpoint,
    rel_path: str,
    *,
    size: int,
    bitrate_bps: float,
    duration: float,
    habits: PlayerHabits,
    check_bytes: bool,
    stop: Stop,
    timeout: float = 10.0,
    tick: float = 0.05,
) -> BufferedPlay:
    """Play like a player for `duration` seconds after `habits.start_delay_s`: fill the
    start-up buffer, read ahead up to `buffer_s` while playing at `bitrate_bps`, seek now
    and then; count every time the buffer ran dry while playing (a stall)."""
    import random

    from stackgen.bench.capacity import PlayerBuffer

    out = BufferedPlay()
    rate = bitrate_bps / 8
    rng = random.Random(habits.seed)  # noqa: S311 - seek positions, not secrets
    pattern = bytes(range(MEDIA_MODULUS)) * ((1 << 20) // MEDIA_MODULUS + 2)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    if habits.start_delay_s > 0 and stop_wait(stop, habits.start_delay_s):
        return out
    player = PlayerBuffer(
        rate, rate * habits.start_s, rate * habits.buffer_s,
        start_timeout=max(2.0, 2 * habits.start_s),
    )  # fmt: skip
    started = time.perf_counter()
    player.begin(started)
    deadline = started + duration
    next_seek: float | None = None  # set once playback (re)starts
    offset = 0
    sock: socket.socket | None = None
    try:
        while time.perf_counter() < deadline and not stop.is_set():
            sent = time.perf_counter()
            sock, rest, remaining = _open_range(ep, rel_path, offset, timeout)
            out.requests += 1
            if out.first_byte_ms is None:
                out.first_byte_ms = (time.perf_counter() - sent) * 1000
            position = offset
            chunks = [rest] if rest else []
            while True:
                now = time.perf_counter()
                if now >= deadline or stop.is_set():
                    return out
                # A viewer seeks after watching a while, not while the spinner turns.
                if next_seek is None and player.playing_since is not None:
                    next_seek = now + habits.seek_every_s if habits.seek_every_s > 0 else None
                if next_seek is not None and now >= next_seek:
                    next_seek = None
                    offset = rng.randrange(0, max(1, size - int(rate * habits.buffer_s)))
                    player.seek(now)
                    out.seeks += 1
                    break
                data: bytes | memoryview
                if chunks:
                    data = chunks.pop()
                    n = len(data)
                else:
                    if remaining <= 0:
                        offset = 0  # the end of the media: start over, like a playlist
                        break
                    want = min(len(buf), remaining, player.want(now))
                    if want <= 0:
                        time.sleep(tick)
                        continue
                    n = sock.recv_into(view[:want])
                    if n == 0:
                        raise HttpError("connection closed mid-body")
                    data = view[:n]
                if check_bytes and data != _expected(pattern, position, n):
                    out.mismatches += 1
                position += n
                remaining -= n
                out.bytes += n
                player.feed(n, time.perf_counter(), ended=remaining <= 0)
            sock.close()
            sock = None
    except (OSError, HttpError, ValueError) as exc:
        out.errors.append(f"{type(exc).__name__}: {exc}"[:200])
    finally:
        if sock is not None:
            sock.close()
        end = min(time.perf_counter(), deadline)
        player.update(end)
        out.stalls = player.stalls
        out.stalled_s = round(player.stalled_s, 3)
        stall_times = [when for kind, when in player.events if kind != "seek"]
        if stall_times:
            out.first_stall_at_s = round(stall_times[0] - started, 3)
    return out


def stop_wait(stop: Stop, seconds: float) -> bool:
    """Sleep `seconds` in short steps; True when `stop` was set meanwhile."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if stop.is_set():
            return True
        time.sleep(min(0.05, max(0.0, end - time.perf_counter())))
    return stop.is_set()
