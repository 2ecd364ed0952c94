"""Keeping the certificates the old proxy served: Traefik's acme.json (v1 and later layouts),
HAProxy's combined PEM, and the PEM files the stack reads in TLS mode `files`."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from stackgen import inputs
from stackgen.certificates.source import OWN_CERT, OWN_KEY
from stackgen.errors import InvalidInputError

# The resolver stackgen's traefik.toml declares (`certificatesResolvers.acme`): Traefik v3
# keeps each resolver's account and certificates under its name in acme.json.
RESOLVER: Final = "acme"
# Where extracted certificates go in the stack folder (mode `files`).
IMPORTED_CERT: Final = OWN_CERT
IMPORTED_KEY: Final = OWN_KEY


@dataclass(frozen=True)
class StoredCertificate:
    """One certificate of an ACME store, as PEM."""

    main: str
    sans: tuple[str, ...]
    chain_pem: bytes
    key_pem: bytes

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.chain_pem)[0]

    def names(self) -> list[str]:
        try:
            ext = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return [self.main, *self.sans]
        return [str(n) for n in ext.value.get_values_for_type(x509.DNSName)]

    def covers(self, domain: str) -> bool:
        return any(_matches(name.lower(), domain.lower()) for name in self.names())

    @property
    def not_after(self) -> dt.datetime:
        return self.leaf.not_valid_after_utc


@dataclass(frozen=True)
class AcmeStore:
    account: dict[str, Any] | None
    certificates: list[StoredCertificate]

    def for_domain(self, domain: str) -> StoredCertificate | None:
        """The certificate Traefik would serve for `domain`: the latest-expiring one covering it."""
        covering = [c for c in self.certificates if c.covers(domain)]
        return max(covering, key=lambda c: c.not_after) if covering else None

    def to_v3(self, resolver: str = RESOLVER) -> bytes:
        """Traefik v2/v3's acme.json: one object per resolver, certificates in store 'default'."""
        entry: dict[str, Any] = {
            "Account": self.account,
            "Certificates": [
                {
                    "domain": {"main": c.main, **({"sans": list(c.sans)} if c.sans else {})},
                    "certificate": base64.b64encode(c.chain_pem).decode(),
                    "key": base64.b64encode(c.key_pem).decode(),
                    "Store": "default",
                }
                for c in self.certificates
            ],
        }
        return (json.dumps({resolver: entry}, indent=2) + "\n").encode()


def read_acme_json(path: Path) -> AcmeStore:
    """Traefik v1's layout (`Account`, `Certificates[{Domain{Main,SANs},Certificate,Key}]`) or
    v2/v3's (`{resolver: {Account, Certificates[{domain{main,sans},certificate,key}]}}`)."""
    raw = inputs.read_bytes(path)
    if not raw.strip():
        return AcmeStore(None, [])  # the docs' `touch acme.json`, never used
    try:
        with inputs.bounded_nesting(path, "Traefik's acme.json (JSON)"):
            data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        line = getattr(error, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise InvalidInputError(f"{where}: {error}: expected Traefik's acme.json (JSON)") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: expected a JSON object (Traefik's acme.json)")
    if "Account" in data or "Certificates" in data:
        return _store(path, data, v1=True)
    stores = [v for v in data.values() if isinstance(v, dict)]
    if len(stores) != len(data):
        raise InvalidInputError(
            f"{path}: expected Traefik's acme.json (v1: Account and Certificates; "
            "v2+: one object per resolver)"
        )
    if not stores:
        return AcmeStore(None, [])
    # Several resolvers: their certificates all move to stackgen's one resolver; the account
    # of the first one that has one is kept.
    parsed = [_store(path, s, v1=False) for s in stores]
    account = next((s.account for s in parsed if s.account), None)
    return AcmeStore(account, [c for s in parsed for c in s.certificates])


def _store(path: Path, data: dict[str, Any], *, v1: bool) -> AcmeStore:
    keys = (
        ("Domain", "Main", "SANs", "Certificate", "Key")
        if v1
        else ("domain", "main", "sans", "certificate", "key")
    )
    domain_key, main_key, sans_key, cert_key, key_key = keys
    account = data.get("Account")
    if account is not None and not isinstance(account, dict):
        raise InvalidInputError(f"{path}: Account: expected an object")
    certificates: list[StoredCertificate] = []
    for index, entry in enumerate(data.get("Certificates") or []):
        where = f"{path}: Certificates[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get(domain_key), dict):
            raise InvalidInputError(f"{where}: expected an object with {domain_key}")
        domain = entry[domain_key]
        try:
            chain = base64.b64decode(entry[cert_key], validate=True)
            key = base64.b64decode(entry[key_key], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise InvalidInputError(f"{where}: expected base64 {cert_key} and {key_key}") from None
        inputs.tls_pair(chain, key, f"{where}.{cert_key}", f"{where}.{key_key}")
        certificates.append(
            StoredCertificate(
                str(domain.get(main_key, "")),
                tuple(str(s) for s in domain.get(sans_key) or []),
                chain,
                key,
            )
        )
    return AcmeStore(dict(account) if account else None, certificates)


def load_key(pem: bytes) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(pem, password=None)


def split_combined_pem(path: Path) -> tuple[bytes, bytes]:
    """HAProxy's `crt` file: the chain and the key in one PEM, in either order."""
    blocks = _pem_blocks(inputs.read_bytes(path))
    certs = [b for label, b in blocks if label == "CERTIFICATE"]
    keys = [b for label, b in blocks if label.endswith("PRIVATE KEY")]
    if not certs or len(keys) != 1:
        raise InvalidInputError(
            f"{path}: expected one PEM with the certificate chain and one private key "
            f"(found {len(certs)} certificate(s), {len(keys)} key(s))"
        )
    inputs.tls_pair(b"".join(certs), keys[0], path, path)
    return b"".join(certs), keys[0]


def _pem_blocks(text: bytes) -> list[tuple[str, bytes]]:
    blocks: list[tuple[str, bytes]] = []
    label: str | None = None
    current: list[bytes] = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(b"-----BEGIN ") and stripped.endswith(b"-----"):
            label = stripped[11:-5].decode("ascii", "replace")
            current = [line]
        elif label is not None:
            current.append(line)
            if stripped.startswith(b"-----END "):
                block = b"".join(current)
                blocks.append((label, block if block.endswith(b"\n") else block + b"\n"))
                label = None
    return blocks


def certificate_summary(chain_pem: bytes) -> str:
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    return f"serial {leaf.serial_number:x}, expires {leaf.not_valid_after_utc:%Y-%m-%d}"


def _matches(pattern: str, domain: str) -> bool:
    if pattern.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == domain
