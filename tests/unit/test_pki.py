"""The certificates stackgen makes itself (TLS mode `internal`, certbot's placeholder) and the
throwaway pair of the test Pebble's listener, which share pki's builders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from stackgen.pki import CA_DAYS, LEAF_DAYS, issue_internal, placeholder_pair
from stackgen.testing.pebble import LISTENER_NAMES, write_listener_pair

DOMAIN = "jellyfin.example.com"
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _verify(leaf: x509.Certificate, root: x509.Certificate, name: str, when: dt.datetime) -> None:
    verifier = (
        PolicyBuilder().store(Store([root])).time(when).build_server_verifier(x509.DNSName(name))
    )
    verifier.verify(leaf, [])


E = TypeVar("E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def test_internal_leaf_chains_to_its_ca_for_the_domain_only() -> None:
    pair = issue_internal(DOMAIN, NOW)
    ca = x509.load_pem_x509_certificate(pair.ca_cert_pem)
    leaf = x509.load_pem_x509_certificate(pair.fullchain_pem)
    _verify(leaf, ca, DOMAIN, NOW)
    with pytest.raises(VerificationError):
        _verify(leaf, ca, "other.example.com", NOW)
    assert ca.not_valid_before_utc == NOW - dt.timedelta(minutes=5)
    assert ca.not_valid_after_utc == NOW + dt.timedelta(days=CA_DAYS)
    assert leaf.not_valid_after_utc == NOW + dt.timedelta(days=LEAF_DAYS)
    constraints = _ext(ca, x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName(DOMAIN)]
    basic = _ext(ca, x509.BasicConstraints).value
    assert (basic.ca, basic.path_length) == (True, 0)
    assert _ext(leaf, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert (
        _ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier
        == _ext(ca, x509.SubjectKeyIdentifier).value.digest
    )
    # The keys are what the certificates carry, unencrypted.
    ca_key = serialization.load_pem_private_key(pair.ca_key_pem, password=None)
    leaf_key = serialization.load_pem_private_key(pair.key_pem, password=None)
    assert isinstance(leaf_key, ec.EllipticCurvePrivateKey)
    assert ca_key.public_key() == ca.public_key()
    assert leaf_key.public_key() == leaf.public_key()


def test_placeholder_is_self_signed_without_an_authority_key_id() -> None:
    cert = x509.load_pem_x509_certificate(placeholder_pair(DOMAIN, NOW).fullchain_pem)
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.AuthorityKeyIdentifier)
    assert not _ext(cert, x509.BasicConstraints).value.ca


def test_pebble_listener_pair_verifies_for_its_names(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    write_listener_pair(ca_file, cert_file, key_file)
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    leaf = x509.load_pem_x509_certificate(cert_file.read_bytes())
    now = dt.datetime.now(dt.UTC)
    for name in LISTENER_NAMES:
        _verify(leaf, ca, name, now)
    sans = _ext(leaf, x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    with pytest.raises(x509.ExtensionNotFound):
        _ext(ca, x509.NameConstraints)
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert key.public_key() == leaf.public_key()
    assert key_file.stat().st_mode & 0o777 == 0o600
