"""Test material for `stackgen import`: certificates made on the spot, and copies of the old
server's filesystem (`--root`) holding them where the fixtures' configs point."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"
EMAIL = "admin@example.com"


@dataclass(frozen=True)
class Pair:
    chain_pem: bytes
    key_pem: bytes
    serial: int


def make_cert(*names: str, days: int = 60) -> Pair:
    """A CA-signed leaf (so the chain has two certificates, like Let's Encrypt's)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "import test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days + 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Pair(chain, key_pem, leaf.serial_number)


def served_serial(chain_pem: bytes) -> int:
    return x509.load_pem_x509_certificates(chain_pem)[0].serial_number


def acme_json_v1(pair: Pair, main: str, sans: list[str] | None = None) -> bytes:
    """Traefik v1.7's acme.json layout, as it wrote it."""
    data = {
        "Account": {
            "Email": EMAIL,
            "Registration": {
                "body": {"status": "valid", "contact": [f"mailto:{EMAIL}"]},
                "uri": "https://acme.example.net/acme/acct/1",
            },
            "PrivateKey": base64.b64encode(b"account key DER").decode(),
            "KeyType": "4096",
        },
        "Certificates": [
            {
                "Domain": {"Main": main, "SANs": sans},
                "Certificate": base64.b64encode(pair.chain_pem).decode(),
                "Key": base64.b64encode(pair.key_pem).decode(),
            }
        ],
        "HTTPChallenges": {},
        "TLSChallenges": {},
    }
    return json.dumps(data, indent=1).encode()


def lineage(root: Path, name: str, pair: Pair) -> Path:
    """A certbot lineage under root/etc/letsencrypt/live/NAME (plain files are enough)."""
    live = root / "etc" / "letsencrypt" / "live" / name
    live.mkdir(parents=True, exist_ok=True)
    (live / "fullchain.pem").write_bytes(pair.chain_pem)
    (live / "privkey.pem").write_bytes(pair.key_pem)
    (live / "privkey.pem").chmod(0o600)
    return live


def combined(root: Path, relative: str, pair: Pair) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pair.chain_pem + pair.key_pem)
    path.chmod(0o600)
    return path


def copy_fixture(name: str, tmp: Path) -> Path:
    source = FIXTURES / name
    target = tmp / "old" / name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return target
