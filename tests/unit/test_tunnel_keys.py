"""WireGuard keys made in Python: the X25519 arithmetic, wg's clamping and spelling, and
that a private key never shows in a repr or an error."""

from __future__ import annotations

import base64

import pytest

from stackgen.errors import ExitCode
from stackgen.tunnel import keys

# RFC 7748, section 6.1: Alice's private and public keys.
RFC_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RFC_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_public_key_is_rfc7748_x25519() -> None:
    assert keys.public_key(b64(RFC_PRIVATE)) == b64(RFC_PUBLIC)


def test_clamping_does_not_change_the_public_key() -> None:
    assert keys.public_key(b64(keys.clamp(RFC_PRIVATE))) == b64(RFC_PUBLIC)


def test_generated_pairs_are_clamped_wg_spelled_and_distinct() -> None:
    pairs = [keys.generate() for _ in range(8)]
    for pair in pairs:
        raw = base64.b64decode(pair.private)
        assert len(pair.private) == 44 and pair.private.endswith("=")
        assert raw[0] & 7 == 0 and raw[31] & 128 == 0 and raw[31] & 64 == 64
        assert keys.public_key(pair.private) == pair.public
    assert len({pair.private for pair in pairs}) == len(pairs)


def test_preshared_keys_are_32_random_bytes() -> None:
    first, second = keys.generate_preshared(), keys.generate_preshared()
    assert len(keys.parse_key(first)) == 32 and first != second


def test_repr_never_shows_the_private_key() -> None:
    pair = keys.generate()
    assert pair.private not in repr(pair) and pair.private not in str(pair)
    assert pair.public in repr(pair)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not base64 at all!", "not valid base64"),
        (b64(b"\x01" * 31), "not 32 bytes"),
        (b64(b"\x01" * 33), "not 32 bytes"),
        # URL-safe alphabet: wg reads standard base64 only.
        (base64.urlsafe_b64encode(b"\xfb" * 32).decode(), "not valid base64"),
        (b64(b"\x01" * 32).rstrip("="), "not valid base64"),
    ],
)
def test_a_bad_key_is_one_line_that_never_quotes_it(text: str, reason: str) -> None:
    with pytest.raises(keys.TunnelKeyError) as raised:
        keys.public_key(text)
    message = str(raised.value)
    assert reason in message and "private key" in message
    assert text not in message and "\n" not in message
    assert raised.value.exit_code == ExitCode.INVALID_INPUT


def test_surrounding_whitespace_of_a_key_file_is_accepted() -> None:
    assert keys.public_key(f"  {b64(RFC_PRIVATE)}\n") == b64(RFC_PUBLIC)


def test_private_key_file_is_0600_with_one_line() -> None:
    pair = keys.generate()
    state = keys.private_key_file("tunnel/private.key", pair)
    assert state.mode == 0o600 and state.target == "tunnel/private.key"
    assert state.content == f"{pair.private}\n".encode()
