"""The networks of some countries, read from a MaxMind-DB-format country database (`.mmdb`:
MaxMind's GeoLite2-Country, DB-IP's IP-to-Country Lite), for `access.geo`.

A reader of our own, of the part of the format this needs (the search tree, the data
section's types, the metadata), rather than the `maxminddb` package: stackgen must walk the
*whole* tree, once, and a database is a file the user points at, so every step is bounded
here: the file's size before it is read, the number of tree nodes visited (a node reached
twice, as MaxMind's aliases of the IPv4 subtree are, is walked once, so a crafted file
cannot make the walk exponential), pointers in the data section (never to a pointer, never
outside it), nesting of maps and arrays, the values decoded in all, and the length of every
value. Anything outside those bounds is one
`InvalidInputError` line naming the file, raised before anything is written.

The format (MaxMind DB File Format Specification 2.0): the file ends with metadata after the
marker `\\xab\\xcd\\xefMaxMind.com`; the file starts with `node_count` nodes of two records of
`record_size` bits; a record below `node_count` is the next node, equal to it means "no
data", above it points into the data section, which starts 16 bytes after the tree.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from stackgen.errors import InvalidInputError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# GeoLite2-Country is about 9 MiB, DB-IP's country lite about 7 MiB (2026): room to grow,
# far below what a walk in Python can do in a few seconds.
MAX_DATABASE_BYTES: Final = 48 * 1024 * 1024
METADATA_MARKER: Final = b"\xab\xcd\xefMaxMind.com"
# The specification puts the metadata in the last 128 KiB.
METADATA_WINDOW: Final = 128 * 1024
DATA_SEPARATOR: Final = 16
MAX_DEPTH: Final = 32  # nesting of maps/arrays in one record: a country record has 3
MAX_CONTAINER: Final = 100_000  # entries in one map or array
# A database older than this is stale enough to say so (both publishers rebuild monthly or
# more often; `verify` warns).
STALE_DAYS: Final = 60

# Where an IPv6 database puts IPv4 (::a.b.c.d/96) and the aliases MaxMind's writer adds to
# that same subtree (IPv4-mapped, 6to4): read once, as IPv4.
_IPV4_IN_IPV6: Final = ipaddress.ip_network("::/96")
_ALIASES: Final = tuple(
    ipaddress.ip_network(n) for n in ("::ffff:0:0/96", "2001::/32", "2002::/16")
)
# Values decoded from the data section in all, across every record: a country database's
# few hundred distinct records need tens of thousands; a crafted one (maps of pointers to
# maps) stops here instead of growing without bound.
MAX_VALUES: Final = 2_000_000


@dataclass(frozen=True)
class CountryNetworks:
    """What a database says about the chosen countries."""

    database_type: str
    built: datetime
    # Collapsed, IPv4 then IPv6, sorted.
    networks: tuple[IPNetwork, ...]
    # How many networks each chosen country had before collapsing (0: none in the database).
    per_country: dict[str, int]

    def age_days(self, now: datetime) -> int:
        return max(0, (now - self.built).days)


class _Bad(Exception):
    """A malformed database; turned into one InvalidInputError line by the caller."""


def read_database(path: Path, *, limit: int = MAX_DATABASE_BYTES) -> bytes:
    """The file's bytes: a regular file (not through a symbolic link, not a FIFO or a device)
    of at most `limit` bytes, judged on the open descriptor."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if path.is_symlink():
            raise InvalidInputError(
                f"access.geo.database {path}: a symbolic link; name the file itself"
            ) from None
        raise InvalidInputError(
            f"access.geo.database {path}: cannot read: {error.strerror or error}"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(f"access.geo.database {path}: not a regular file")
        if info.st_size > limit:
            raise InvalidInputError(
                f"access.geo.database {path}: {info.st_size} bytes, more than the "
                f"{limit // (1024 * 1024)} MiB a country database needs: not read"
            )
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidInputError(f"access.geo.database {path}: grew past {limit} bytes: not read")
    return data


def country_networks(path: Path, countries: Iterable[str]) -> CountryNetworks:
    """The networks the database at `path` places in `countries` (ISO 3166-1 alpha-2 codes,
    as the database writes them: capitals)."""
    data = read_database(path)
    try:
        return _country_networks(data, frozenset(countries))
    except _Bad as error:
        raise InvalidInputError(f"access.geo.database {path}: {error}") from None


def _country_networks(data: bytes, wanted: frozenset[str]) -> CountryNetworks:
    meta = _metadata(data)
    database_type = meta.get("database_type")
    if not isinstance(database_type, str) or "country" not in database_type.lower():
        raise _Bad(
            f"a {database_type!r} database, not a country one (GeoLite2-Country, "
            "DB-IP's IP-to-Country Lite)"
        )
    node_count = _uint(meta, "node_count", 1, 1 << 32)
    record_size = _uint(meta, "record_size", 24, 32)
    if record_size not in (24, 28, 32):
        raise _Bad(f"record_size {record_size}: not 24, 28 or 32")
    ip_version = _uint(meta, "ip_version", 4, 6)
    if ip_version not in (4, 6):
        raise _Bad(f"ip_version {ip_version}: not 4 or 6")
    node_bytes = record_size // 4
    tree_size = node_count * node_bytes
    if tree_size + DATA_SEPARATOR > len(data):
        raise _Bad(f"{node_count} nodes do not fit in the file (truncated?)")
    decoder = _Decoder(data, tree_size + DATA_SEPARATOR, _metadata_start(data))
    tree = _Tree(data, node_count, record_size)
    found: dict[str, list[IPNetwork]] = {code: [] for code in wanted}
    countries: dict[int, str | None] = {}

    def country_at(offset: int) -> str | None:
        if offset not in countries:
            countries[offset] = _iso_code(decoder.decode(offset))
        return countries[offset]

    if ip_version == 4:
        spaces = [(0, 0, 32)]
    else:
        # IPv4 lives at ::/96 of an IPv6 tree: walked on its own, as IPv4.
        v4_node = tree.descend(0, 0, 96)
        spaces = [(0, 0, 128)]
        if v4_node is not None:
            spaces.append((v4_node, 0, 32))
    skip = {_IPV4_IN_IPV6, *_ALIASES} if ip_version == 6 else set()
    for root, prefix, bits in spaces:
        for network_int, length, offset in tree.walk(root, prefix, bits, skip):
            code = country_at(offset)
            if code in found:
                found[code].append(_network(network_int, length, bits))
    return CountryNetworks(
        database_type=database_type,
        built=_built(meta),
        networks=collapse(n for nets in found.values() for n in nets),
        per_country={code: len(nets) for code, nets in sorted(found.items())},
    )


def collapse(networks: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    """`networks` with overlaps and neighbours merged (ipaddress.collapse_addresses), IPv4
    then IPv6, each sorted."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for network in networks:
        if isinstance(network, ipaddress.IPv4Network):
            v4.append(network)
        else:
            v6.append(network)
    return (*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6))


def _network(value: int, length: int, bits: int) -> IPNetwork:
    if bits == 32:
        return ipaddress.IPv4Network((value, length))
    return ipaddress.IPv6Network((value, length))


def _iso_code(record: object) -> str | None:
    # GeoLite2 and DB-IP both write {"country": {"iso_code": "FR", ...}, ...}: where the
    # address is used, not where its owner registered it ("registered_country").
    if not isinstance(record, dict):
        return None
    country = record.get("country")
    if not isinstance(country, dict):
        return None
    code = country.get("iso_code")
    return code if isinstance(code, str) else None


def _built(meta: dict[str, object]) -> datetime:
    epoch = _uint(meta, "build_epoch", 0, 1 << 40)
    return datetime.fromtimestamp(epoch, UTC)


def _uint(meta: dict[str, object], key: str, low: int, high: int) -> int:
    value = meta.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _Bad(f"metadata {key} = {value!r}: not a number from {low} to {high}")
    return value


def _metadata_start(data: bytes) -> int:
    where = data.rfind(METADATA_MARKER, max(0, len(data) - METADATA_WINDOW))
    if where < 0:
        raise _Bad("not a MaxMind DB file (no metadata marker in its last 128 KiB)")
    return where


def _metadata(data: bytes) -> dict[str, object]:
    start = _metadata_start(data) + len(METADATA_MARKER)
    # The metadata is its own data section: pointers in it are relative to its start.
    meta = _Decoder(data[start:], 0, len(data) - start).decode(0)
    if not isinstance(meta, dict):
        raise _Bad("its metadata is not a map")
    return meta


class _Tree:
    def __init__(self, data: bytes, node_count: int, record_size: int) -> None:
        self.data = data
        self.node_count = node_count
        self.record_size = record_size
        self.node_bytes = record_size // 4

    def records(self, node: int) -> tuple[int, int]:
        o = node * self.node_bytes
        b = self.data[o : o + self.node_bytes]
        if self.record_size == 24:
            return int.from_bytes(b[0:3], "big"), int.from_bytes(b[3:6], "big")
        if self.record_size == 28:
            middle = b[3]
            left = ((middle & 0xF0) << 20) | int.from_bytes(b[0:3], "big")
            right = ((middle & 0x0F) << 24) | int.from_bytes(b[4:7], "big")
            return left, right
        left, right = struct.unpack(">II", b)
        return left, right

    def descend(self, node: int, prefix: int, depth: int) -> int | None:
        """The node reached by `depth` zero bits from `node` (None: data or nothing there)."""
        for _ in range(depth):
            node = self.records(node)[0]
            if node >= self.node_count:
                return None
        return node

    def walk(
        self, root: int, prefix: int, bits: int, skip: set[IPNetwork]
    ) -> Iterator[tuple[int, int, int]]:
        """(network as an integer, prefix length, data offset) for every record with data
        below `root`. Each node is expanded at most once (a node reached twice is an alias of
        a subtree already walked, or a crafted loop): at most `node_count` steps."""
        seen = bytearray(self.node_count)  # one byte a node: bounded by the file's size
        stack = [(root, prefix, 0)]
        skipped = {(int(n.network_address), n.prefixlen) for n in skip}
        while stack:
            node, value, depth = stack.pop()
            if seen[node]:
                continue
            seen[node] = 1
            if depth >= bits:
                raise _Bad(f"the search tree is deeper than {bits} bits")
            left, right = self.records(node)
            for bit, record in ((1, right), (0, left)):
                child = value | (bit << (bits - depth - 1))
                if (child, depth + 1) in skipped:
                    continue
                if record < self.node_count:
                    stack.append((record, child, depth + 1))
                elif record > self.node_count:
                    yield child, depth + 1, record - self.node_count - DATA_SEPARATOR


class _Decoder:
    """The data section's values (maps, arrays, strings, numbers), every read bounded."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data = data
        self.start = start
        self.end = end
        self.budget = MAX_VALUES

    def decode(self, offset: int) -> object:
        value, _ = self._value(self.start + offset, 0)
        return value

    def _byte(self, at: int) -> int:
        if not self.start <= at < self.end:
            raise _Bad(f"a value runs past its section (byte {at})")
        return self.data[at]

    def _bytes(self, at: int, size: int) -> bytes:
        if not (self.start <= at and at + size <= self.end):
            raise _Bad(f"a value of {size} bytes runs past its section (byte {at})")
        return self.data[at : at + size]

    def _value(self, at: int, depth: int, *, follow: bool = True) -> tuple[object, int]:
        if depth > MAX_DEPTH:
            raise _Bad(f"values nested deeper than {MAX_DEPTH}")
        self.budget -= 1
        if self.budget < 0:
            raise _Bad(f"more than {MAX_VALUES} values in its records")
        control = self._byte(at)
        at += 1
        kind = control >> 5
        if kind == 1:  # a pointer: to a value that is not a pointer, in this section
            if not follow:
                raise _Bad("a pointer to a pointer")
            size = (control >> 3) & 0x3
            low = control & 0x7
            raw = self._bytes(at, size + 1)
            at += size + 1
            if size == 0:
                target = (low << 8) | raw[0]
            elif size == 1:
                target = ((low << 16) | int.from_bytes(raw, "big")) + 2048
            elif size == 2:
                target = ((low << 24) | int.from_bytes(raw, "big")) + 526336
            else:
                target = int.from_bytes(raw, "big")
            value, _ = self._value(self.start + target, depth + 1, follow=False)
            return value, at
        if kind == 0:  # extended: the type is in the next byte
            kind = 7 + self._byte(at)
            at += 1
            if kind < 8 or kind > 15:
                raise _Bad(f"unknown data type {kind}")
        size = control & 0x1F
        if size >= 29:
            extra = size - 28
            raw = self._bytes(at, extra)
            at += extra
            number = int.from_bytes(raw, "big")
            size = (29, 285, 65821)[extra - 1] + number
        return self._typed(kind, size, at, depth)

    def _typed(self, kind: int, size: int, at: int, depth: int) -> tuple[object, int]:
        if kind == 2:  # UTF-8 string
            raw = self._bytes(at, size)
            try:
                return raw.decode("utf-8"), at + size
            except UnicodeDecodeError:
                raise _Bad(f"a string at byte {at} is not UTF-8") from None
        if kind == 4:  # bytes
            return self._bytes(at, size), at + size
        if kind in (5, 6, 8, 9, 10):  # unsigned 16, 32, signed 32, unsigned 64, 128
            limit = {5: 2, 6: 4, 8: 4, 9: 8, 10: 16}[kind]
            if size > limit:
                raise _Bad(f"a number of {size} bytes where at most {limit} fit")
            number = int.from_bytes(self._bytes(at, size), "big")
            if kind == 8 and size == 4 and number >= 1 << 31:
                number -= 1 << 32
            return number, at + size
        if kind == 3:  # double
            if size != 8:
                raise _Bad("a double that is not 8 bytes")
            return struct.unpack(">d", self._bytes(at, 8))[0], at + 8
        if kind == 15:  # float
            if size != 4:
                raise _Bad("a float that is not 4 bytes")
            return struct.unpack(">f", self._bytes(at, 4))[0], at + 4
        if kind == 14:  # boolean: the value is the size
            if size > 1:
                raise _Bad("a boolean that is neither 0 nor 1")
            return bool(size), at
        if kind in (7, 11) and size > MAX_CONTAINER:
            raise _Bad(f"a map or array of {size} entries")
        if kind == 7:  # map
            result: dict[str, object] = {}
            for _ in range(size):
                key, at = self._value(at, depth + 1)
                if not isinstance(key, str):
                    raise _Bad("a map key that is not a string")
                result[key], at = self._value(at, depth + 1)
            return result, at
        if kind == 11:  # array
            items: list[object] = []
            for _ in range(size):
                item, at = self._value(at, depth + 1)
                items.append(item)
            return items, at
        raise _Bad(f"data type {kind} has no place in a record")
