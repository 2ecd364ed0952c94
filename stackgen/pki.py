"""Certificates stackgen makes itself: the local CA of TLS mode `internal` (a root created
once per stack and a leaf for the domain, for servers reachable on the LAN only), and the
self-signed placeholder a certbot-based proxy starts on until the real certificate arrives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
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


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM, what every proxy reads."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ca_certificate(
    key: ec.EllipticCurvePrivateKey,
    name: x509.Name,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    only_domain: str | None = None,
) -> x509.Certificate:
    """A self-signed root that signs leaves directly (no intermediate below it);
    `only_domain` limits the names its leaves may carry to that domain."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
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
    )
    if only_domain is not None:
        builder = builder.add_extension(
            x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(only_domain)], excluded_subtrees=None
            ),
            critical=True,
        )
    return builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    ).sign(key, hashes.SHA256())


def server_certificate(
    public_key: ec.EllipticCurvePublicKey,
    subject: x509.Name,
    names: Sequence[x509.GeneralName],
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    """A TLS server leaf for `names`, signed by `issuer_key`; self-signed when `issuer` is
    `subject` (then it names no other authority's key)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if issuer != subject:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def issue_internal(domain: str, now: dt.datetime | None = None) -> IssuedPair:
    now = now or dt.datetime.now(dt.UTC)
    not_before = now - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stackgen local CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"stackgen local CA for {domain}"),
        ]
    )
    # A leaf may be issued for this domain only: a leaked CA key cannot mint others.
    ca_cert = ca_certificate(
        ca_key, ca_name, not_before, now + dt.timedelta(days=CA_DAYS), only_domain=domain
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = server_certificate(
        leaf_key.public_key(),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]),
        [x509.DNSName(domain)],
        not_before,
        now + dt.timedelta(days=LEAF_DAYS),
        issuer=ca_name,
        issuer_key=ca_key,
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    return IssuedPair(
        ca_cert_pem=ca_pem,
        ca_key_pem=key_pem(ca_key),
        # The root is a trust anchor, not part of the served chain.
        fullchain_pem=leaf.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem(leaf_key),
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
    cert = server_certificate(
        key.public_key(),
        name,
        [x509.DNSName(domain)],
        now - dt.timedelta(minutes=5),
        now + dt.timedelta(days=PLACEHOLDER_DAYS),
        issuer=name,
        issuer_key=key,
    )
    return PlaceholderPair(
        fullchain_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key_pem(key),
    )
