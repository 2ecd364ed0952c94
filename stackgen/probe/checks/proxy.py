"""Jellyfin's KnownProxies must cover the address the proxy connects from. Not visible
from outside, so judged from what the user/stack tells us (network.xml, compose)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from stackgen.probe.base import NotApplicable, Outcome, check, failed, passed, warned
from stackgen.probe.context import ProbeContext

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HINT_KNOWN = (
    "list the proxy's address or its network's CIDR in KnownProxies in "
    "/config/config/network.xml (`<KnownProxies><string>172.30.0.0/24</string></KnownProxies>`), "
    "pin that subnet in compose, and restart Jellyfin"
)


def _normalise(addr: IPAddress) -> IPAddress:
    # Dual-stack sockets show IPv4 peers as ::ffff:a.b.c.d; Jellyfin compares both forms.
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _parse_entries(entries: Sequence[str]) -> tuple[list[IPNetwork], list[str]]:
    networks: list[IPNetwork] = []
    names: list[str] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:  # a single address first, so ::ffff:a.b.c.d is compared as IPv4
            networks.append(ipaddress.ip_network(_normalise(ipaddress.ip_address(entry))))
            continue
        except ValueError:
            pass
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.append(entry)
    return networks, names


def covered(address: str, entries: Sequence[str]) -> bool | None:
    """True/False when decidable from IPs and CIDRs; None when only names could match."""
    networks, names = _parse_entries(entries)
    try:
        addr = _normalise(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None  # the proxy address itself is a name
    if any(addr.version == n.version and addr in n for n in networks):
        return True
    return None if names else False


@check("proxy.known-proxies", "Jellyfin's KnownProxies covers the proxy", HINT_KNOWN, needs=None)
def proxy_known_proxies(ctx: ProbeContext) -> Outcome:
    known = ctx.target.known_proxies
    addresses = ctx.target.proxy_addresses
    if known is None:
        raise NotApplicable("KnownProxies not given (pass the stack's network.xml)")
    entries = [e for e in known if e.strip()]
    details: dict[str, object] = {
        "known_proxies": list(known),
        "proxy_addresses": list(addresses or []),
    }
    if not entries:
        return failed(
            "KnownProxies is empty: Jellyfin 10.11 ignores X-Forwarded-* (every client looks "
            "like the proxy, i.e. LAN) and 10.10 trusts them from anyone",
            HINT_KNOWN,
            **details,
        )
    if not addresses:
        return passed(
            f"KnownProxies has {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}; "
            "the proxy's address is unknown, so coverage was not judged",
            **details,
        )
    verdicts = {a: covered(a, entries) for a in addresses}
    missing = [a for a, ok in verdicts.items() if ok is False]
    unknown = [a for a, ok in verdicts.items() if ok is None]
    details.update(missing=missing, undecided=unknown)
    if missing:
        return failed(
            f"proxy address(es) {', '.join(missing)} not in KnownProxies: Jellyfin will not "
            "honour their X-Forwarded-* headers",
            HINT_KNOWN,
            **details,
        )
    if unknown:
        return warned(
            f"cannot judge {', '.join(unknown)}: only host-name entries could match (Jellyfin "
            "resolves them once at start)",
            "prefer IPs or a CIDR in KnownProxies; " + HINT_KNOWN,
            **details,
        )
    return passed("every proxy address is covered by KnownProxies", **details)


CHECKS = (proxy_known_proxies,)
