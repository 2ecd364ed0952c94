"""A minimal HTTPS and WebSocket client that connects to one address with the stack's name.

Like tests/integration/lowlevel.py, but aimed at a swarm node's address instead of
loopback: the swarm publishes on the edge node itself (`mode: host`). SNI, Host and the
certificate name check keep the public name; trust is the stack's own CA file only.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackgen.probe import open_websocket


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Endpoint:
    """`name` served at `address:port`, verified against `ca_file`."""

    name: str
    address: str
    port: int
    ca_file: Path

    @property
    def authority(self) -> str:
        return self.name if self.port == 443 else f"{self.name}:{self.port}"

    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=str(self.ca_file))
        return context

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection((self.address, self.port), timeout=timeout)

    def get(
        self, path: str, headers: dict[str, str] | None = None, *, timeout: float = 30
    ) -> Reply:
        endpoint = self

        class Connection(http.client.HTTPSConnection):
            def connect(self) -> None:
                self.sock = endpoint.context().wrap_socket(
                    endpoint.connect(self.timeout or 30), server_hostname=endpoint.name
                )

        conn = Connection(self.name, self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def websocket_keepalive(self, path: str) -> list[dict[str, Any]]:
        """Open wss://name{path}, send a KeepAlive, return the frames up to its answer."""
        frames: list[dict[str, Any]] = []
        with open_websocket(
            f"wss://{self.authority}{path}",
            sock=self.connect(),
            context=self.context(),
            server_hostname=self.name,
            timeout=30,
        ) as ws:
            ws.send_text(json.dumps({"MessageType": "KeepAlive"}))
            for _ in range(5):
                frame = json.loads(ws.recv_text(timeout=10))
                frames.append(frame)
                if frame.get("MessageType") == "KeepAlive":
                    break
        return frames
