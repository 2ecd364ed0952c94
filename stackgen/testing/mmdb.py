"""A MaxMind-DB-format country database written by a test itself (never a binary in the
repository, never a download), for `access.geo` (the tests, the bench harness's `geo`
variant, a plugin user's own tests): networks mapped to ISO country codes, laid out as
MaxMind's own writer lays them (an IPv6 tree, IPv4 at ::/96, the IPv4-mapped, Teredo and
6to4 ranges aliased to that same subtree, records as GeoLite2-Country writes them).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from typing import Final

MARKER: Final = b"\xab\xcd\xefMaxMind.com"
ALIASES: Final = ("::ffff:0:0/96", "2001::/32", "2002::/16")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _control(kind: int, size: int) -> bytes:
    extended = b""
    if kind > 7:
        extended = bytes([kind - 7])
        kind = 0
    if size < 29:
        return bytes([(kind << 5) | size]) + extended
    if size < 285:
        return bytes([(kind << 5) | 29]) + extended + bytes([size - 29])
    if size < 65821:
        return bytes([(kind << 5) | 30]) + extended + (size - 285).to_bytes(2, "big")
    return bytes([(kind << 5) | 31]) + extended + (size - 65821).to_bytes(3, "big")


def encode(value: object) -> bytes:
    """One value of the data section (no pointers)."""
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, int):
        kind, width = (5, 2) if value < 1 << 16 else (6, 4) if value < 1 << 32 else (9, 8)
        raw = value.to_bytes(width, "big").lstrip(b"\0")
        return _control(kind, len(raw)) + raw
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, dict):
        body = b"".join(encode(k) + encode(v) for k, v in value.items())
        return _control(7, len(value)) + body
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(value)


def country_record(code: str) -> dict[str, object]:
    """A record as GeoLite2-Country writes it (fewer names)."""
    return {
        "continent": {"code": "EU", "geoname_id": 6255148, "names": {"en": "Europe"}},
        "country": {"geoname_id": 3017382, "iso_code": code, "names": {"en": code}},
        "registered_country": {"geoname_id": 3017382, "iso_code": code},
    }


class _Node:
    __slots__ = ("children",)

    def __init__(self) -> None:
        self.children: list[object] = [None, None]


def _as_v6(network: Network) -> ipaddress.IPv6Network:
    if isinstance(network, ipaddress.IPv6Network):
        return network
    return ipaddress.IPv6Network((int(network.network_address), 96 + network.prefixlen))


def _insert(root: _Node, network: ipaddress.IPv6Network, leaf: object) -> None:
    value = int(network.network_address)
    node = root
    for depth in range(network.prefixlen - 1):
        bit = (value >> (127 - depth)) & 1
        child = node.children[bit]
        if not isinstance(child, _Node):
            split = _Node()
            split.children = [child, child]  # a wider network already here: kept below
            node.children[bit] = child = split
        node = child
    node.children[(value >> (128 - network.prefixlen)) & 1] = leaf


def _node_at(root: _Node, network: str) -> tuple[_Node, int]:
    """The parent of `network`'s position, and which child it is (creating the path)."""
    net = ipaddress.IPv6Network(network)
    value = int(net.network_address)
    node = root
    for depth in range(net.prefixlen - 1):
        bit = (value >> (127 - depth)) & 1
        child = node.children[bit]
        if not isinstance(child, _Node):
            child = _Node()
            node.children[bit] = child
        node = child
    return node, (value >> (128 - net.prefixlen)) & 1


def write_database(
    networks: Mapping[Network, str] | Iterable[tuple[Network, str]],
    *,
    database_type: str = "GeoLite2-Country",
    build_epoch: int = 1_765_000_000,
    record_size: int = 28,
    records: Mapping[str, object] | None = None,
) -> bytes:
    """An .mmdb placing each network in its country (ISO code), every other address in none.
    `records`: the data record of a code, in place of `country_record(code)`."""
    pairs = list(networks.items()) if isinstance(networks, Mapping) else list(networks)
    data = b""
    offsets: dict[str, int] = {}
    for _, code in pairs:
        if code not in offsets:
            offsets[code] = len(data)
            data += encode((records or {}).get(code, country_record(code)))
    root = _Node()
    # Wider networks first, so that a narrower one inside is carved out of it.
    for network, code in sorted(pairs, key=lambda p: _as_v6(p[0]).prefixlen):
        _insert(root, _as_v6(network), ("data", offsets[code]))
    v4_parent, v4_bit = _node_at(root, "::/96")
    v4 = v4_parent.children[v4_bit]
    if not isinstance(v4, _Node):
        v4 = _Node()
        v4_parent.children[v4_bit] = v4
    for alias in ALIASES:
        parent, bit = _node_at(root, alias)
        parent.children[bit] = v4
    # Number the nodes once each (the aliased subtree is one set of nodes).
    index: dict[int, int] = {}
    order: list[_Node] = []
    todo = [root]
    while todo:
        node = todo.pop()
        if id(node) in index:
            continue
        index[id(node)] = len(order)
        order.append(node)
        todo.extend(c for c in reversed(node.children) if isinstance(c, _Node))
    count = len(order)

    def record(child: object) -> int:
        if child is None:
            return count
        if isinstance(child, _Node):
            return index[id(child)]
        assert isinstance(child, tuple)
        return count + 16 + int(child[1])

    tree = bytearray()
    for node in order:
        left, right = (record(c) for c in node.children)
        tree += pack_node(left, right, record_size)
    metadata = {
        "binary_format_major_version": 2,
        "binary_format_minor_version": 0,
        "build_epoch": build_epoch,
        "database_type": database_type,
        "description": {"en": "stackgen's test database"},
        "ip_version": 6,
        "languages": ["en"],
        "node_count": count,
        "record_size": record_size,
    }
    return bytes(tree) + b"\0" * 16 + data + MARKER + encode(metadata)


def pack_node(left: int, right: int, record_size: int) -> bytes:
    if record_size == 24:
        return left.to_bytes(3, "big") + right.to_bytes(3, "big")
    if record_size == 28:
        middle = ((left >> 24) << 4) | (right >> 24)
        return (
            (left & 0xFFFFFF).to_bytes(3, "big")
            + bytes([middle])
            + (right & 0xFFFFFF).to_bytes(3, "big")
        )
    return struct.pack(">II", left, right)


def many_networks(count: int, code: str, *, start: str = "100.64.0.0") -> dict[Network, str]:
    """`count` separate /24s (every other one, so that none collapse), from `start` up: a
    country of realistic size for the cost measurements."""
    base = int(ipaddress.IPv4Address(start))
    return {ipaddress.IPv4Network((base + 512 * i, 24)): code for i in range(count)}
