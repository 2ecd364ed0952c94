"""What players need from the proxy: WebSocket upgrades, byte ranges without buffering,
and large request bodies (docs/jellyfin.md: media, uploads, WebSocket)."""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import time
from collections.abc import Iterator

from stackgen.probe import client
from stackgen.probe.base import (
    UPSTREAM,
    NotApplicable,
    Outcome,
    check,
    failed,
    passed,
    warned,
)
from stackgen.probe.checks.reach import GATEWAY_ERRORS
from stackgen.probe.context import ProbeContext
from stackgen.probe.result import redact
from stackgen.probe.websocket import (
    WebSocketClosed,
    WebSocketError,
    WebSocketRefused,
    open_websocket,
)

# A token no Jellyfin has issued: without a key of its own, verify proves the upgrade by
# Jellyfin's refusal of this one (see _judge_refused_upgrade).
WS_QUERY = "api_key=stackgen-verify-not-a-key&deviceId=stackgen-verify"
# What Jellyfin's ExceptionMiddleware writes for the SecurityException of a refused socket.
JELLYFIN_ERROR_BODY = "Error processing request."
TTFB_WARN_S = 2.0
TTFB_FAIL_S = 10.0
TTFB_READ = 64 * 1024
UPLOAD_SIZE = 20 * 1024 * 1024
UPLOAD_CHUNK = 64 * 1024
# Close codes that mean "upgrade worked, but you are not allowed" (policy / app-level auth).
AUTH_CLOSE_CODES = {1008, 4001, 4003, 4401, 4403}

HINT_WEBSOCKET = (
    "pass WebSocket upgrades over HTTP/1.1: nginx `proxy_http_version 1.1; proxy_set_header "
    "Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;` (map); Apache "
    "`ProxyPass / http://jellyfin:8096/ upgrade=websocket` (2.4.47+); HAProxy needs "
    "`timeout tunnel`; Traefik and Caddy do it by themselves"
)
HINT_RANGE = (
    "pass Range/If-Range through and do not buffer media: nginx `proxy_buffering off;` and no "
    '`proxy_set_header Range ""`; no cache/compression middleware on /Videos and /Audio'
)
HINT_TTFB = (
    "the proxy buffers or slows media: nginx `proxy_buffering off;`, no caching/compression "
    "of media responses, long read timeouts (nginx `proxy_read_timeout`, HAProxy `timeout server`)"
)
HINT_UPLOAD = (
    "accept request bodies of at least 20 MB: nginx `client_max_body_size 20M;` (default 1 MB); "
    "Apache `LimitRequestBody`; Traefik buffering middleware maxRequestBodyBytes; HAProxy and "
    "Caddy have no limit by default"
)


def _media_context(ctx: ProbeContext) -> ssl.SSLContext:
    """A user-supplied media path may carry an api_key: it is only ever sent over a
    verified connection. Our own default path carries nothing secret."""
    if ctx.target.media_path_is_user_supplied:
        return ctx.verifying_context()
    return ctx.insecure_context()


def _media_request(ctx: ProbeContext, byte_range: str) -> client.Response:
    path = ctx.url.base + ctx.target.effective_media_path
    try:
        return client.request(
            ctx.target,
            path,
            headers={"Range": byte_range},
            context=_media_context(ctx),
            protocol=ctx.protocol,
        )
    except client.ProbeError as exc:
        if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
            raise client.ProbeError(
                "the certificate is not trusted (see tls.name); the media path is not sent "
                "over an unverified connection because it may carry an api_key"
            ) from exc
        raise client.ProbeError(redact(str(exc))) from exc


# --- websocket ---------------------------------------------------------------------------


NO_UPGRADE_ANSWER = "no answer to the upgrade request"


# HTTP/1.1 only: clients upgrade over 1.1 (RFC 8441 WebSockets over h2 is not what they use).
@check(
    "websocket.keepalive",
    "WebSocket upgrade reaches Jellyfin",
    HINT_WEBSOCKET,
    http1=True,
    needs=UPSTREAM,
)
def websocket_keepalive(ctx: ProbeContext) -> Outcome:
    """One attempt: an upgrade request without an answer is a failure, never retried."""
    return _websocket_attempt(ctx)


def _websocket_attempt(ctx: ProbeContext) -> Outcome:
    path = f"{ctx.url.base}/socket?{WS_QUERY}"
    uri = f"wss://{ctx.url.netloc}{path}"
    timeout = ctx.target.timeout
    sock = client.open_tcp(ctx.target, ctx.url.host, ctx.url.port)
    details: dict[str, object] = {"url": uri}
    upgraded = False
    try:
        with open_websocket(
            uri,
            sock=sock,
            context=ctx.insecure_context(),
            server_hostname=ctx.url.host,
            timeout=timeout,
            user_agent=client.USER_AGENT,
        ) as ws:
            upgraded = True
            ws.send_text(json.dumps({"MessageType": "KeepAlive"}))
            deadline = time.monotonic() + timeout
            seen: list[str] = []
            while (remaining := deadline - time.monotonic()) > 0:
                raw = ws.recv_text(timeout=remaining)
                try:
                    message = json.loads(raw)
                except ValueError:
                    seen.append("non-JSON frame")
                    continue
                kind = message.get("MessageType") if isinstance(message, dict) else None
                seen.append(str(kind))
                if kind == "KeepAlive":
                    return passed("101 upgrade, KeepAlive answered", frames=seen, **details)
                # ForceKeepAlive (the interval announcement) and others: keep waiting.
            return failed(
                f"101 upgrade, but no KeepAlive reply within {timeout:g} s (frames seen: {seen})",
                "the proxy holds WebSocket frames back; " + HINT_WEBSOCKET,
                **details,
            )
    except WebSocketRefused as refused:
        body = refused.body.decode("utf-8", "replace")
        return _judge_refused_upgrade(ctx, path, refused.status, body, details)
    except WebSocketClosed as closed:
        code = closed.code
        details["close_code"] = code
        if code in AUTH_CLOSE_CODES:
            return passed(
                f"101 upgrade, then closed with {code} for the probe's dummy token", **details
            )
        if code is None:
            return failed(
                "101 upgrade, then the connection dropped without a close frame",
                HINT_WEBSOCKET,
                **details,
            )
        return warned(f"101 upgrade, then closed with code {code}", HINT_WEBSOCKET, **details)
    except TimeoutError:
        what = "no KeepAlive reply" if upgraded else NO_UPGRADE_ANSWER
        return failed(f"{what} within {timeout:g} s", HINT_WEBSOCKET, **details)
    except WebSocketError as exc:
        return failed(f"the WebSocket handshake failed: {exc}", HINT_WEBSOCKET, **details)
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _judge_refused_upgrade(
    ctx: ProbeContext, path: str, status: int, body: str, details: dict[str, object]
) -> Outcome:
    """Jellyfin refuses an upgrade with no token or an invalid one *before* the 101:
    WebSocketManager throws SecurityException, which ExceptionMiddleware answers with 403
    `text/plain` "Error processing request." - never 401, never 101. Only the WebSocket
    handler answers so: without the Upgrade headers (a proxy that drops them) the same URL
    is an ordinary request, and /socket is no route (404). So Jellyfin's 403 for the
    probe's made-up token, where a plain GET gets something else, proves the upgrade
    request reached Jellyfin intact."""
    plain = ctx.https(path)
    details.update(upgrade_status=status, upgrade_body=body[:80], plain_status=plain.status)
    jellyfins = status == 403 and body.strip() == JELLYFIN_ERROR_BODY
    if jellyfins and plain.status != 403:
        return passed(
            "the upgrade reached Jellyfin's WebSocket handler: 403 for the probe's made-up "
            f"token, as Jellyfin refuses it (a plain GET gets {plain.status})",
            **details,
        )
    if ctx.target.token_gate and status == 401 and plain.status == status:
        # The gate refuses the made-up token before Jellyfin could: nothing tells whether an
        # upgrade with a valid token would pass, and the warning's fix would not apply.
        raise NotApplicable(
            "the token gate answers 401 to the probe's made-up token before Jellyfin "
            "(an upgrade with a valid token is not judged without one)"
        )
    if status in (401, 403) and plain.status == status:
        return warned(
            f"could not judge: every request to /socket gets {status} (authentication in front?)",
            HINT_WEBSOCKET,
            **details,
        )
    if status in (401, 403):
        return warned(
            f"could not judge: {status} {body.strip()[:40]!r} is not Jellyfin's refusal of a "
            "token (403 'Error processing request.'): something in front of Jellyfin "
            "answered the upgrade",
            HINT_WEBSOCKET,
            **details,
        )
    return failed(
        f"no WebSocket upgrade: {status} instead of 101 (a plain GET gets {plain.status})",
        HINT_WEBSOCKET,
        **details,
    )


# --- byte ranges -------------------------------------------------------------------------

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.I)


@check(
    "stream.range", "Byte ranges pass through (206)", HINT_RANGE, per_protocol=True, needs=UPSTREAM
)
def stream_range(ctx: ProbeContext) -> Outcome:
    resp = _media_request(ctx, "bytes=100-199")
    content_range = resp.header("Content-Range")
    details = {
        "path": redact(ctx.target.effective_media_path),
        "status": resp.status,
        "content_range": content_range,
        "length": len(resp.body),
    }
    if resp.status == 200:
        return failed(
            "Range ignored: 200 with the whole body instead of 206", HINT_RANGE, **details
        )
    if resp.status == 416:
        return warned(
            "416: the media file is shorter than 200 bytes; use --media-path", HINT_RANGE, **details
        )
    if resp.status != 206:
        return failed(f"{resp.status} {resp.reason} instead of 206", HINT_RANGE, **details)
    m = _CONTENT_RANGE.match(content_range or "")
    if not m or (int(m.group(1)), int(m.group(2))) != (100, 199):
        return failed(
            f"206 with Content-Range {content_range!r}, expected bytes 100-199/N",
            HINT_RANGE,
            **details,
        )
    if len(resp.body) != 100:
        return failed(f"206 with {len(resp.body)} bytes instead of 100", HINT_RANGE, **details)
    return passed(f"206, Content-Range {content_range}, 100 bytes", **details)


def _media_size(ctx: ProbeContext) -> int | None:
    resp = _media_request(ctx, "bytes=0-0")
    m = _CONTENT_RANGE.match(resp.header("Content-Range") or "")
    if resp.status == 206 and m and m.group(3) != "*":
        return int(m.group(3))
    return None


@check(
    "stream.ttfb",
    "Seeking answers fast (time to first byte)",
    HINT_TTFB,
    per_protocol=True,
    needs=UPSTREAM,
)
def stream_ttfb(ctx: ProbeContext) -> Outcome:
    size = _media_size(ctx)
    start = (size // 2) if size else 0
    byte_range = f"bytes={start}-"
    path = ctx.url.base + ctx.target.effective_media_path
    t0 = time.monotonic()
    try:
        with client.open_response(
            ctx.target,
            path,
            headers={"Range": byte_range},
            context=_media_context(ctx),
            protocol=ctx.protocol,
        ) as (resp, sent):
            first = resp.read1(1) if resp.status in (200, 206) else b""
            ttfb = time.monotonic() - sent
            got = len(first)
            # Read a little more, then hang up: enough to see data flowing, never the file.
            deadline = time.monotonic() + ctx.target.timeout
            while first and got < TTFB_READ and time.monotonic() < deadline:
                chunk = resp.read1(min(16384, TTFB_READ - got))
                if not chunk:
                    break
                got += len(chunk)
            status = resp.status
    except TimeoutError as exc:
        raise client.ProbeError(f"no first byte within {ctx.target.timeout:g} s") from exc
    connect_ms = round((sent - t0) * 1000)
    details = {
        "ttfb_ms": round(ttfb * 1000),
        "connect_ms": connect_ms,
        "range": byte_range,
        "status": status,
        "bytes_read": got,
        "size": size,
        "path": redact(ctx.target.effective_media_path),
    }
    if status not in (200, 206) or got == 0:
        return failed(f"{status}, no media bytes for {byte_range}", HINT_RANGE, **details)
    where = "mid-file" if size else "from the start (size unknown: Range not honoured)"
    text = f"first byte after {ttfb * 1000:.0f} ms ({where})"
    if ttfb > TTFB_FAIL_S:
        return failed(text, HINT_TTFB, **details)
    if ttfb > TTFB_WARN_S:
        return warned(text, HINT_TTFB, **details)
    return passed(text, **details)


# --- uploads -----------------------------------------------------------------------------


def _body() -> Iterator[bytes]:
    block = bytes(range(256)) * (UPLOAD_CHUNK // 256)
    for _ in range(UPLOAD_SIZE // UPLOAD_CHUNK):
        yield block


@check(
    "upload.20mb",
    "A 20 MiB request body gets through",
    HINT_UPLOAD,
    per_protocol=True,
    needs=UPSTREAM,
)
def upload_20mb(ctx: ProbeContext) -> Outcome:
    path = f"{ctx.url.base}/Items/stackgen-probe/Images/Primary"
    t0 = time.monotonic()
    outcome = client.upload(
        ctx.target, path, _body(), UPLOAD_SIZE, {"Content-Type": "image/jpeg"}, ctx.protocol
    )
    details = {
        "status": outcome.status,
        "sent_bytes": outcome.sent_bytes,
        "send_error": outcome.send_error,
        "receive_error": outcome.receive_error,
        "elapsed_ms": round((time.monotonic() - t0) * 1000),
    }
    if outcome.status == 413:
        return failed(
            "413 Request Entity Too Large: the proxy refuses 20 MiB bodies", HINT_UPLOAD, **details
        )
    if outcome.status in GATEWAY_ERRORS:
        # The proxy's own error page: the body never reached Jellyfin, so nothing was proven.
        return failed(
            f"{outcome.status} from the proxy: the body did not reach Jellyfin",
            "Jellyfin did not answer the upload: see reach.upstream and Jellyfin's log",
            **details,
        )
    if outcome.status is None:
        return failed(
            f"connection reset before any response after {outcome.sent_bytes} bytes "
            f"({outcome.receive_error})",
            HINT_UPLOAD,
            **details,
        )
    early = (
        f" after {outcome.sent_bytes} of {UPLOAD_SIZE} bytes"
        if outcome.sent_bytes < UPLOAD_SIZE
        else ""
    )
    return passed(
        f"20 MiB body accepted by the proxy (Jellyfin answered {outcome.status}{early})",
        **details,
    )


CHECKS = (websocket_keepalive, stream_range, stream_ttfb, upload_20mb)
