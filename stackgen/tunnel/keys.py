"""WireGuard keys for the edge/home tunnel, made in Python (no `wg genkey` needed).

A WireGuard key is 32 bytes of Curve25519 (X25519) key, spelled in standard base64 (44
characters ending in `=`), the form `wg(8)` and wg-quick configuration files read. Private
keys are clamped the way `wg genkey` clamps them, so a key made here and one made by `wg`
are interchangeable and `wg pubkey` derives the same public key.

A private key is a secret: `KeyPair` leaves it out of its repr, `parse_key`'s errors never
quote the text they were given, and `private_key_file` gives the writer a 0600 state file
(created once, never re-rendered). Nothing here prints or logs a key.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from stackgen.errors import InvalidInputError
from stackgen.parts import StateFile

KEY_BYTES: Final = 32
KEY_FILE_MODE: Final = 0o600


class TunnelKeyError(InvalidInputError):
    """A key that is not 32 bytes of standard base64 (the message never quotes it)."""


@dataclass(frozen=True)
class KeyPair:
    """A private key (hidden from repr) and the public key peers configure."""

    private: str = field(repr=False)
    public: str


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def clamp(raw: bytes) -> bytes:
    """Curve25519 clamping (RFC 7748, section 5), as `wg genkey` stores its keys."""
    if len(raw) != KEY_BYTES:
        raise TunnelKeyError(f"a WireGuard key is {KEY_BYTES} bytes, not {len(raw)}")
    clamped = bytearray(raw)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    return bytes(clamped)


def parse_key(text: str, what: str = "key") -> bytes:
    """The 32 bytes of a base64 key; one line of error naming `what`, never the text."""
    stripped = text.strip()
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        raise TunnelKeyError(f"the WireGuard {what} is not valid base64") from None
    if len(raw) != KEY_BYTES or _encode(raw) != stripped:
        raise TunnelKeyError(
            f"the WireGuard {what} is not {KEY_BYTES} bytes in standard base64 (44 characters)"
        )
    return raw


def public_key(private: str) -> str:
    """The public key of a base64 private key (what `wg pubkey` prints)."""
    raw = clamp(parse_key(private, "private key"))
    public = X25519PrivateKey.from_private_bytes(raw).public_key()
    return _encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def generate() -> KeyPair:
    """A new key pair from the operating system's random source."""
    private = _encode(clamp(secrets.token_bytes(KEY_BYTES)))
    return KeyPair(private=private, public=public_key(private))


def generate_preshared() -> str:
    """A preshared key (`PresharedKey`): 32 random bytes, not a curve point, not clamped."""
    return _encode(secrets.token_bytes(KEY_BYTES))


def private_key_file(target: str, pair: KeyPair) -> StateFile:
    """The private key as a state file for the writer: created once, mode 0600."""
    return StateFile(target=target, content=f"{pair.private}\n".encode("ascii"), mode=KEY_FILE_MODE)
