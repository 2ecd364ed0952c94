"""The WebSocket client (stackgen/probe/websocket.py) against local TLS servers: an upgrade
and a KeepAlive round trip, Jellyfin's refusal, a server that never answers, and the one
property it exists for - no thread of its own touches the connection."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from stackgen.probe import (
    WebSocket,
    WebSocketClosed,
    WebSocketError,
    WebSocketRefused,
    open_websocket,
)

from .probe_fixtures import NAME, PKI, fake_stack, make_pki

KEEPALIVE = json.dumps({"MessageType": "KeepAlive"})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("websocket-pki"))


def _open(
    pki: PKI,
    port: int,
    path: str = "/socket",
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
    user_agent: str | None = None,
) -> WebSocket:
    return open_websocket(
        f"wss://{NAME}:{port}{path}",
        sock=socket.create_connection(("127.0.0.1", port), timeout=timeout),
        context=ssl.create_default_context(cafile=str(pki.root_pem)),
        server_hostname=NAME,
        timeout=timeout,
        headers=headers or {},
        user_agent=user_agent,
    )


def test_upgrade_and_keepalive_round_trip(pki: PKI) -> None:
    with fake_stack(pki) as stack, _open(pki, stack.https_port) as ws:
        assert ws.response.status_code == 101
        assert json.loads(ws.recv_text(timeout=5)) == {"MessageType": "ForceKeepAlive", "Data": 60}
        ws.send_text(KEEPALIVE)
        assert json.loads(ws.recv_text(timeout=5)) == {"MessageType": "KeepAlive"}


def test_no_thread_of_its_own_touches_the_connection(
    pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cause of the lost upgrades (docs/flakes.md): a reader thread in the TLS session while the
    caller writes. Opening, exchanging and closing start no thread (the fake server starts
    its own, from its own thread)."""
    caller = threading.current_thread()
    started: list[threading.Thread] = []
    start = threading.Thread.start

    def recording_start(thread: threading.Thread) -> None:
        if threading.current_thread() is caller:
            started.append(thread)
        start(thread)

    with fake_stack(pki) as stack:
        monkeypatch.setattr(threading.Thread, "start", recording_start)
        with _open(pki, stack.https_port) as ws:
            ws.recv_text(timeout=5)
            ws.send_text(KEEPALIVE)
            ws.recv_text(timeout=5)
        monkeypatch.undo()
    assert started == []


def test_headers_and_user_agent_are_sent(pki: PKI) -> None:
    """The fake refuses by its mode, so the request's own headers are checked on a plain
    server that records what it reads."""
    seen: list[bytes] = []
    with (
        _raw_server(pki, lambda tls: seen.append(_read_head(tls))) as port,
        pytest.raises(WebSocketError),
    ):
        _open(pki, port, headers={"X-Emby-Token": "t"}, user_agent="ua/1", timeout=2)
    head = seen[0].decode()
    assert head.startswith("GET /socket HTTP/1.1\r\n")
    assert "\r\nX-Emby-Token: t\r\n" in head and "\r\nUser-Agent: ua/1\r\n" in head


def test_refusal_carries_status_headers_and_body(pki: PKI) -> None:
    with (
        fake_stack(pki, websocket="refuse-403") as stack,
        pytest.raises(WebSocketRefused) as refused,
    ):
        _open(pki, stack.https_port, "/socket?api_key=not-a-key")
    assert refused.value.status == 403
    assert refused.value.body == b"Error processing request."
    assert ("Content-Length", "25") in refused.value.headers
    assert str(refused.value) == "the upgrade was answered 403, not 101"


def test_a_close_frame_is_the_servers_code(pki: PKI) -> None:
    with (
        fake_stack(pki, websocket="auth-close") as stack,
        _open(pki, stack.https_port) as ws,
        pytest.raises(WebSocketClosed) as closed,
    ):
        ws.recv_text(timeout=5)
    assert (closed.value.code, closed.value.reason) == (1008, "auth required")


def test_a_server_that_never_answers_the_upgrade_times_out_in_time(pki: PKI) -> None:
    answered = threading.Event()  # never set before the client gives up
    with _raw_server(pki, lambda tls: (_read_head(tls), answered.wait(5))) as port:
        started = time.monotonic()
        with pytest.raises(
            TimeoutError, match=r"^no answer to the WebSocket upgrade within 0.5 s$"
        ):
            _open(pki, port, timeout=0.5)
        assert time.monotonic() - started < 2
        answered.set()


def test_a_server_that_never_finishes_the_tls_handshake_times_out(pki: PKI) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel) and says nothing
    with listener:
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"^no TLS handshake within 0.5 s$"):
            _open(pki, port, timeout=0.5)
        assert time.monotonic() - started < 2


def test_no_message_within_the_timeout_is_a_timeout(pki: PKI) -> None:
    with fake_stack(pki) as stack, _open(pki, stack.https_port) as ws:
        ws.recv_text(timeout=5)  # ForceKeepAlive; nothing more comes unasked
        with pytest.raises(TimeoutError, match=r"^no WebSocket message within 0.3 s$"):
            ws.recv_text(timeout=0.3)


def _read_head(tls: ssl.SSLSocket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = tls.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


@contextlib.contextmanager
def _raw_server(pki: PKI, serve: Callable[[ssl.SSLSocket], object]) -> Iterator[int]:
    """A TLS server that hands each connection, after the handshake, to `serve`."""
    fullchain, _leaf, key = pki.leaf("ec")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(fullchain, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def run() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                serve(tls)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(timeout=5)
        listener.close()
