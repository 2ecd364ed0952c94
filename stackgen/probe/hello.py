"""A hand-built TLS ClientHello, and a reader for the server's first flight.

Why not the ssl module? Some questions are about what the *server* would accept, and
the local OpenSSL cannot ask them: it will not offer RC4/3DES suites, cannot offer TLS
compression (built without zlib, and Python sets OP_NO_COMPRESSION), does not show
whether the server sent the RFC 5746 renegotiation_info extension, and may be built
without TLS 1.0/1.1. A TLS <= 1.2 ServerHello (and the Certificate message after it)
travels in clear, so sending our own ClientHello and parsing the answer is enough: we
never finish the handshake.

The result of one "control" hello (TLS 1.2, broad suite list) is checked first by the
callers: if even that gets no ServerHello while the ssl module negotiates TLS 1.2, the
raw probe is not understood by this server and the check says "could not test" instead
of guessing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

# Protocol versions as they appear on the wire.
SSL3, TLS10, TLS11, TLS12 = 0x0300, 0x0301, 0x0302, 0x0303
VERSION_NAMES = {SSL3: "SSLv3", TLS10: "TLSv1.0", TLS11: "TLSv1.1", TLS12: "TLSv1.2"}

# Named groups (RFC 8446 / 8422 code points).
GROUPS = {"X25519": 0x001D, "P-256": 0x0017, "P-384": 0x0018, "P-521": 0x0019, "X448": 0x001E}
# Every group we know: when a hello asks about a suite or a protocol, the group must
# not be the reason for a refusal (tls.groups asks with one group at a time instead).
DEFAULT_GROUPS = tuple(GROUPS.values())

# Mozilla "intermediate" TLS 1.2 suites (guideline 6.0), OpenSSL name -> IANA code.
INTERMEDIATE_SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
    "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
}

# Common suites outside "intermediate" that real servers still accept by default or by
# copy-pasted config: static RSA, CBC/SHA-1, DHE, CCM, Camellia, 3DES, RC4, NULL, anon.
NON_INTERMEDIATE_SUITES = {
    "AES128-SHA": 0x002F,
    "AES256-SHA": 0x0035,
    "AES128-SHA256": 0x003C,
    "AES256-SHA256": 0x003D,
    "AES128-GCM-SHA256": 0x009C,
    "AES256-GCM-SHA384": 0x009D,
    "ECDHE-RSA-AES128-SHA": 0xC013,
    "ECDHE-RSA-AES256-SHA": 0xC014,
    "ECDHE-ECDSA-AES128-SHA": 0xC009,
    "ECDHE-ECDSA-AES256-SHA": 0xC00A,
    "ECDHE-RSA-AES128-SHA256": 0xC027,
    "ECDHE-RSA-AES256-SHA384": 0xC028,
    "ECDHE-ECDSA-AES128-SHA256": 0xC023,
    "ECDHE-ECDSA-AES256-SHA384": 0xC024,
    "ECDHE-ECDSA-AES128-CCM": 0xC0AC,
    "ECDHE-ECDSA-AES256-CCM": 0xC0AD,
    "DHE-RSA-AES128-GCM-SHA256": 0x009E,
    "DHE-RSA-AES256-GCM-SHA384": 0x009F,
    "DHE-RSA-CHACHA20-POLY1305": 0xCCAA,
    "DHE-RSA-AES128-SHA": 0x0033,
    "DHE-RSA-AES256-SHA": 0x0039,
    "DHE-RSA-AES128-SHA256": 0x0067,
    "DHE-RSA-AES256-SHA256": 0x006B,
    "CAMELLIA128-SHA": 0x0041,
    "CAMELLIA256-SHA": 0x0084,
    "DES-CBC3-SHA": 0x000A,
    "ECDHE-RSA-DES-CBC3-SHA": 0xC012,
    "RC4-SHA": 0x0005,
    "RC4-MD5": 0x0004,
    "ECDHE-RSA-RC4-SHA": 0xC011,
    "NULL-SHA256": 0x003B,
    "ADH-AES128-SHA": 0x0034,
    "AECDH-AES128-SHA": 0xC018,
}

SUITE_NAMES = {v: k for k, v in {**INTERMEDIATE_SUITES, **NON_INTERMEDIATE_SUITES}.items()}
ALL_SUITES = tuple(SUITE_NAMES)

EXT_SERVER_NAME = 0x0000
EXT_SUPPORTED_GROUPS = 0x000A
EXT_EC_POINT_FORMATS = 0x000B
EXT_SIGNATURE_ALGORITHMS = 0x000D
EXT_EXTENDED_MASTER_SECRET = 0x0017
EXT_RENEGOTIATION_INFO = 0xFF01

COMPRESSION_NULL, COMPRESSION_DEFLATE = 0, 1

_SIGNATURE_ALGORITHMS = (
    0x0403, 0x0503, 0x0603,  # ecdsa_secp{256,384,521}r1_sha{256,384,512}
    0x0804, 0x0805, 0x0806,  # rsa_pss_rsae_sha{256,384,512}
    0x0401, 0x0501, 0x0601,  # rsa_pkcs1_sha{256,384,512}
    0x0203, 0x0201,  # ecdsa_sha1, rsa_pkcs1_sha1 (TLS 1.0/1.1-era servers)
)  # fmt: skip

_MAX_FLIGHT = 256 * 1024  # a server's first flight is a few KiB; never read more than this


def _u8(n: int) -> bytes:
    return n.to_bytes(1, "big")


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def _ext(kind: int, data: bytes) -> bytes:
    return _u16(kind) + _u16(len(data)) + data


def _is_ip_literal(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def build_client_hello(
    *,
    version: int,
    suites: Sequence[int],
    server_name: str | None,
    groups: Sequence[int] = DEFAULT_GROUPS,
    offer_compression: bool = False,
) -> bytes:
    """One TLS record holding a ClientHello offering exactly `version` (no
    supported_versions extension, so TLS 1.3 is never negotiated)."""
    extensions = b""
    if server_name and not _is_ip_literal(server_name):
        name = server_name.encode("idna")
        entry = _u8(0) + _u16(len(name)) + name
        extensions += _ext(EXT_SERVER_NAME, _u16(len(entry)) + entry)
    group_list = b"".join(_u16(g) for g in groups)
    extensions += _ext(EXT_SUPPORTED_GROUPS, _u16(len(group_list)) + group_list)
    extensions += _ext(EXT_EC_POINT_FORMATS, b"\x01\x00")  # uncompressed points only
    sigalgs = b"".join(_u16(a) for a in _SIGNATURE_ALGORITHMS)
    extensions += _ext(EXT_SIGNATURE_ALGORITHMS, _u16(len(sigalgs)) + sigalgs)
    extensions += _ext(EXT_EXTENDED_MASTER_SECRET, b"")
    # Empty renegotiation_info: "initial handshake, I speak RFC 5746" — a server that
    # supports secure renegotiation must echo it.
    extensions += _ext(EXT_RENEGOTIATION_INFO, b"\x00")
    suite_bytes = b"".join(_u16(s) for s in suites)
    compression = b"\x02\x01\x00" if offer_compression else b"\x01\x00"
    body = (
        _u16(version)
        + os.urandom(32)
        + b"\x00"  # empty session id
        + _u16(len(suite_bytes))
        + suite_bytes
        + compression
        + _u16(len(extensions))
        + extensions
    )
    handshake = b"\x01" + _u24(len(body)) + body
    record_version = SSL3 if version == SSL3 else TLS10  # what real clients put there
    return b"\x16" + _u16(record_version) + _u16(len(handshake)) + handshake


@dataclass(frozen=True)
class ServerHello:
    version: int
    cipher: int
    compression: int
    extensions: frozenset[int]


@dataclass(frozen=True)
class HelloOutcome:
    """What the server answered to one ClientHello."""

    server_hello: ServerHello | None = None
    alert: int | None = None  # TLS alert description, when the server refused with one
    certificates: tuple[bytes, ...] = ()  # DER, in the order sent (only if asked for)
    ecdhe_group: int | None = None  # named curve from ServerKeyExchange (TLS 1.2 ECDHE)
    note: str = ""  # how the exchange ended, for details
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.server_hello is not None


class _Malformed(Exception):
    pass


def _parse_server_hello(body: bytes) -> ServerHello:
    if len(body) < 38:
        raise _Malformed("short ServerHello")
    version = int.from_bytes(body[0:2], "big")
    pos = 2 + 32
    sid_len = body[pos]
    pos += 1 + sid_len
    if len(body) < pos + 3:
        raise _Malformed("short ServerHello")
    cipher = int.from_bytes(body[pos : pos + 2], "big")
    compression = body[pos + 2]
    pos += 3
    extensions: set[int] = set()
    if len(body) >= pos + 2:
        end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= min(end, len(body)):
            kind = int.from_bytes(body[pos : pos + 2], "big")
            size = int.from_bytes(body[pos + 2 : pos + 4], "big")
            extensions.add(kind)
            pos += 4 + size
    return ServerHello(version, cipher, compression, frozenset(extensions))


def _parse_certificates(body: bytes) -> tuple[bytes, ...]:
    total = int.from_bytes(body[0:3], "big")
    pos, end = 3, min(3 + total, len(body))
    certs: list[bytes] = []
    while pos + 3 <= end:
        size = int.from_bytes(body[pos : pos + 3], "big")
        certs.append(body[pos + 3 : pos + 3 + size])
        pos += 3 + size
    return tuple(certs)


def exchange(
    sock: socket.socket, hello: bytes, *, timeout: float, want_flight: bool = False
) -> HelloOutcome:
    """Send `hello` on a connected TCP socket and read the answer.

    Stops at the ServerHello, or — with `want_flight` — at ServerHelloDone, collecting the
    Certificate and ServerKeyExchange messages. Bounded by `timeout` and _MAX_FLIGHT.
    """
    deadline = time.monotonic() + timeout
    sock.sendall(hello)
    buffer = b""
    handshake = b""
    server_hello: ServerHello | None = None
    certificates: tuple[bytes, ...] = ()
    group: int | None = None
    read = 0
    while True:
        # Parse every complete handshake message we have.
        while len(handshake) >= 4:
            kind = handshake[0]
            size = int.from_bytes(handshake[1:4], "big")
            if len(handshake) < 4 + size:
                break
            body, handshake = handshake[4 : 4 + size], handshake[4 + size :]
            try:
                if kind == 2:
                    server_hello = _parse_server_hello(body)
                    if not want_flight:
                        return HelloOutcome(server_hello, note="ServerHello")
                elif kind == 11:
                    certificates = _parse_certificates(body)
                elif kind == 12 and len(body) >= 3 and body[0] == 3:
                    group = int.from_bytes(body[1:3], "big")  # curve_type named_curve
                elif kind == 14:
                    return HelloOutcome(server_hello, None, certificates, group, "ServerHelloDone")
            except (_Malformed, IndexError):
                return HelloOutcome(server_hello, note="malformed handshake message")
        # Then records.
        if len(buffer) >= 5:
            content_type = buffer[0]
            size = int.from_bytes(buffer[3:5], "big")
            if len(buffer) >= 5 + size:
                fragment, buffer = buffer[5 : 5 + size], buffer[5 + size :]
                if content_type == 22:
                    handshake += fragment
                    continue
                if content_type == 21 and len(fragment) >= 2:
                    return HelloOutcome(
                        server_hello, fragment[1], certificates, group, f"alert {fragment[1]}"
                    )
                # ChangeCipherSpec or anything encrypted: the clear-text part is over.
                return HelloOutcome(server_hello, None, certificates, group, "end of clear text")
        remaining = deadline - time.monotonic()
        if remaining <= 0 or read > _MAX_FLIGHT:
            return HelloOutcome(server_hello, None, certificates, group, "no complete answer")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(16384)
        except TimeoutError:
            return HelloOutcome(server_hello, None, certificates, group, "timed out")
        except OSError as exc:
            return HelloOutcome(server_hello, None, certificates, group, f"{exc}")
        if not chunk:
            return HelloOutcome(server_hello, None, certificates, group, "connection closed")
        read += len(chunk)
        buffer += chunk
