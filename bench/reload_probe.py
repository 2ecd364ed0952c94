"""Load held during `make bench`'s reloads: run in the client namespace, prints JSON.

For `--seconds`: API calls at `--rate` per second (open loop), one paced stream checked
byte for byte against the stand-in's pattern, and one WebSocket that sends Jellyfin's
KeepAlive every second and must stay open. The orchestrator reloads the proxy meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from stackgen.bench import h1
from stackgen.bench.endpoint import Endpoint, url_endpoint
from stackgen.bench.schedule import run_open_loop
from stackgen.bench.stats import percentile

KEEPALIVE = json.dumps({"MessageType": "KeepAlive"}).encode()


def _frame(payload: bytes) -> bytes:
    """A masked client text frame (RFC 6455 5.2); payloads here are small."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked


async def hold_websocket(ep: Endpoint, path: str, seconds: float) -> dict[str, Any]:
    conn = await h1.AsyncConnection.open(ep)
    result: dict[str, Any] = {"opened": False, "kept": False, "closed_after_s": None}
    started = time.monotonic()
    try:
        head = h1._request_head(
            ep,
            "GET",
            path,
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                "Sec-WebSocket-Version": "13",
            },
        )
        conn.writer.write(head)
        await conn.writer.drain()
        raw = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 10)
        status, _ = h1._parse_head(raw[:-4])
        result["opened"] = status == 101
        if status != 101:
            return result
        replies = 0
        deadline = started + seconds
        while time.monotonic() < deadline:
            conn.writer.write(_frame(KEEPALIVE))
            await conn.writer.drain()
            try:
                data = await asyncio.wait_for(conn.reader.read(4096), 1.0)
            except TimeoutError:
                continue
            if not data or data[0] & 0x0F == 0x8:  # EOF or a close frame
                result["closed_after_s"] = round(time.monotonic() - started, 2)
                return result
            replies += 1
            await asyncio.sleep(max(0.0, 1.0 - 0.001))
        result["kept"] = True
        result["replies"] = replies
    except (OSError, h1.HttpError, TimeoutError) as exc:
        result["closed_after_s"] = round(time.monotonic() - started, 2)
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--ca-file", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--bitrate-mbps", type=float, default=20)
    args = parser.parse_args()
    host = args.url.split("//", 1)[1].split(":", 1)[0]
    ep = url_endpoint(
        "proxied", args.url, resolve={host: args.address}, ca_file=args.ca_file, http2=False
    )
    media = "/Videos/stackgen-bench/stream?static=true"
    stop = threading.Event()
    stream_box: dict[str, Any] = {}

    def stream() -> None:
        stream_box["result"] = h1.paced_stream(
            ep,
            media,
            size=args.size,
            bitrate_bps=args.bitrate_mbps * 1e6,
            duration=args.seconds,
            check_bytes=True,
            stop=stop,
        )

    thread = threading.Thread(target=stream)
    thread.start()

    pool = h1.ConnectionPool(ep)

    async def load() -> tuple[Any, dict[str, Any]]:

        async def send() -> None:
            reply = await pool.request("GET", ep.path("/System/Info/Public"), {})
            if reply.status != 200:
                raise h1.HttpError(f"status {reply.status}")

        ws_task = asyncio.create_task(
            hold_websocket(ep, ep.path("/socket?api_key=stackgen-bench"), args.seconds)
        )
        try:
            api = await run_open_loop(args.rate, args.seconds, send)
        finally:
            pool.close()
        return api, await ws_task

    try:
        api, ws = asyncio.run(load())
    finally:
        stop.set()
        thread.join(timeout=args.seconds + 30)
    paced: h1.PacedStream = stream_box.get("result", h1.PacedStream(errors=["no result"]))
    print(
        json.dumps(
            {
                "api": {
                    "sent": api.sent,
                    "errors": api.errors,
                    "stale_retries": pool.stale_retries,
                    "error_samples": api.error_samples,
                    "p99_ms": percentile(api.latencies_ms, 99),
                    "max_ms": max(api.latencies_ms, default=None),
                },
                "stream": {
                    "bytes": paced.bytes,
                    "mismatches": paced.mismatches,
                    "reconnects": paced.reconnects,
                    "errors": paced.errors,
                    "max_gap_ms": round(paced.max_gap_ms, 2),
                },
                "websocket": ws,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
