"""Certificates stackgen makes itself: the local CA of TLS mode `internal` (a root created
once per stack and a leaf for the domain, for servers reachable on the LAN only), and the
self-signed placeholder a certbot-based proxy starts on until the real certificate arrives."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PLACEHOLDER_ORGANIZATION: Final = "stackgen placeholder until certbot deploys"
PLACEHOLDER_DAYS: Final = 90
# Apple and browsers reject leaves valid for more than 398 days.
LEAF_DAYS = 397
CA_DAYS = 3650


@dataclass(frozen=True)
class IssuedPair:
    ca_cert_pem: bytes
    ca_key_pem: bytes
    fullchain_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def issue_internal(domain: str, now: dt.datetime | None = None) -> IssuedPair:
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stackgen local CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"stackgen local CA for {domain}"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # A leaf may be issued for this domain only: a leaked CA key cannot mint others.
        .add_extension(
            x509.NameConstraints(permitted_subtrees=[x509.DNSName(domain)], excluded_subtrees=None),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    return IssuedPair(
        ca_cert_pem=ca_pem,
        ca_key_pem=_key_pem(ca_key),
        # The root is a trust anchor, not part of the served chain.
        fullchain_pem=leaf.public_bytes(serialization.Encoding.PEM),
        key_pem=_key_pem(leaf_key),
    )


@dataclass(frozen=True)
class PlaceholderPair:
    fullchain_pem: bytes
    key_pem: bytes


def placeholder_pair(domain: str, now: dt.datetime | None = None) -> PlaceholderPair:
    """A self-signed certificate for `domain`: the proxy starts on it, certbot replaces it."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, PLACEHOLDER_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, domain),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=PLACEHOLDER_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return PlaceholderPair(
        fullchain_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=_key_pem(key),
    )
