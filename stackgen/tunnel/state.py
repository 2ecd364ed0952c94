"""The tunnel's state as `wg show` reports it in a side's endpoint, read without its private
key: `wg show wg0 dump` starts with the interface's private key, so only the per-peer
fields are asked for (`latest-handshakes`, `transfer`, `endpoints`, `allowed-ips`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# WireGuard drops a session older than this (REJECT_AFTER_TIME): no handshake for longer
# means no tunnel.
REJECT_AFTER_SECONDS: Final = 180
# A session is renewed after 120 s (REKEY_AFTER_TIME); one without a handshake for longer
# than this is late.
LATE_AFTER_SECONDS: Final = 135


@dataclass(frozen=True)
class TunnelState:
    handshake_age: int | None  # seconds since the last handshake; None: never
    received: int  # bytes from the peer
    sent: int  # bytes to the peer
    endpoint: str | None  # where the peer's packets come from (None: not known yet)
    allowed_ips: tuple[str, ...]

    @property
    def up(self) -> bool:
        return self.handshake_age is not None and self.handshake_age < REJECT_AFTER_SECONDS

    def line(self) -> str:
        if self.handshake_age is None:
            return "down: no handshake yet"
        if not self.up:
            return f"down: no handshake for {self.handshake_age} s"
        peer = f", peer at {self.endpoint}" if self.endpoint else ""
        return (
            f"up, last handshake {self.handshake_age} s ago, {self.received} bytes received, "
            f"{self.sent} bytes sent{peer}"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "up": self.up,
            "handshake_age": self.handshake_age,
            "received": self.received,
            "sent": self.sent,
            "endpoint": self.endpoint,
            "allowed_ips": list(self.allowed_ips),
            "summary": self.line(),
        }


def _values(text: str) -> list[str]:
    """The value columns of `wg show wg0 <field>` for its one peer (the key column dropped)."""
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            return fields[1:]
    return []


def parse(
    handshakes: str, transfer: str, endpoints: str, allowed_ips: str, now: int
) -> TunnelState:
    """From the four `wg show wg0 ...` outputs and the current time (epoch seconds)."""
    latest = _values(handshakes)
    stamp = int(latest[0]) if latest and latest[0].isdigit() else 0
    moved = _values(transfer)
    received, sent = (int(moved[0]), int(moved[1])) if len(moved) == 2 else (0, 0)
    endpoint = (_values(endpoints) or ["(none)"])[0]
    allowed = (_values(allowed_ips) or [""])[0]
    return TunnelState(
        handshake_age=max(0, now - stamp) if stamp else None,
        received=received,
        sent=sent,
        endpoint=None if endpoint == "(none)" else endpoint,
        allowed_ips=tuple(allowed.split()),
    )
