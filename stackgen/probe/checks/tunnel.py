"""The tunnel between the proxy and Jellyfin (the edge-home target): judged from what the
stack's side reports (`Target.tunnel`), never probed."""

from __future__ import annotations

from stackgen.probe.base import NotApplicable, Outcome, check, failed, passed, warned
from stackgen.probe.context import ProbeContext
from stackgen.probe.target import Tunnel

# WireGuard renews a session after 120 s of use (REKEY_AFTER_TIME) and drops one older than
# 180 s (REJECT_AFTER_TIME).
LATE_AFTER = 135
REJECT_AFTER = 180
HINT_HANDSHAKE = (
    "home dials the edge: `stackgen status --side home` and the endpoint's log (`stackgen logs "
    "wireguard --side home`); the edge's UDP port (deploy.wg_port) must be open"
)
HINT_ALLOWED = "wireguard/wg0.conf was edited: AllowedIPs must be the other side's /32 only"


def _tunnel(ctx: ProbeContext) -> Tunnel:
    if ctx.target.tunnel is None:
        raise NotApplicable("the stack has no tunnel")
    return ctx.target.tunnel


@check("tunnel.handshake", "The tunnel's last handshake is recent", HINT_HANDSHAKE, needs=None)
def tunnel_handshake(ctx: ProbeContext) -> Outcome:
    age = _tunnel(ctx).handshake_age
    if age is None:
        return failed("no handshake yet: the other side has not connected", HINT_HANDSHAKE)
    if age >= REJECT_AFTER:
        return failed(f"last handshake {age} s ago: the tunnel is down", HINT_HANDSHAKE, age=age)
    if age > LATE_AFTER:
        return warned(
            f"last handshake {age} s ago (a session is renewed every 120 s)",
            HINT_HANDSHAKE,
            age=age,
        )
    return passed(f"last handshake {age} s ago", age=age)


@check(
    "tunnel.allowed-ips",
    "The tunnel carries only the other side's address",
    HINT_ALLOWED,
    needs=None,
)
def tunnel_allowed_ips(ctx: ProbeContext) -> Outcome:
    tunnel = _tunnel(ctx)
    allowed = list(tunnel.allowed_ips)
    if allowed != [tunnel.expected_peer]:
        return failed(
            f"AllowedIPs {allowed or 'empty'}, expected exactly {tunnel.expected_peer}",
            HINT_ALLOWED,
            allowed_ips=allowed,
        )
    return passed(f"AllowedIPs {tunnel.expected_peer} only", allowed_ips=allowed)


CHECKS = (tunnel_handshake, tunnel_allowed_ips)
