"""`stackgen verify --url` judges a stack stackgen did not render (tests/fixtures/handwritten)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from integration.conftest import HTTP_PORT, HTTPS_PORT, REPO, SLOT, stackgen

NAME = "handmade.stackgen.test"
SUBNET = f"172.30.{120 + SLOT}.0/24"
PROXY_ADDRESS = f"172.30.{120 + SLOT}.2"


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), False)
    return builder.sign(issuer_key, hashes.SHA256())


def _chain(folder: Path) -> Path:
    """root -> intermediate -> leaf; the server gets leaf + intermediate, the client the root."""
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("handmade root", root_key, None, root_key, ca=True)
    inter = _cert("handmade intermediate", inter_key, root, root_key, ca=True)
    leaf = _cert(NAME, leaf_key, inter, inter_key, ca=False)
    pem = serialization.Encoding.PEM
    (folder / "certs").mkdir()
    (folder / "certs/fullchain.pem").write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    (folder / "certs/key.pem").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (folder / "root.pem").write_bytes(root.public_bytes(pem))
    return folder / "root.pem"


@pytest.fixture
def handwritten(
    engine: None, images: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Path, Path]]:
    folder = tmp_path / "handwritten"
    shutil.copytree(REPO / "tests/fixtures/handwritten", folder)
    for path in (folder / "nginx.conf", folder / "config/config/network.xml"):
        text = path.read_text().replace("__HTTPS_PORT__", str(HTTPS_PORT))
        path.write_text(text.replace("__PROXY_ADDRESS__", PROXY_ADDRESS))
    root = _chain(folder)
    env = {
        "PROXY_IMAGE": images["nginx"],
        "STANDIN_IMAGE": images["jellyfin-standin"],
        "HTTP_PORT": str(HTTP_PORT),
        "HTTPS_PORT": str(HTTPS_PORT),
        "SUBNET": SUBNET,
        "IP_RANGE": f"172.30.{120 + SLOT}.128/25",
        "PROXY_ADDRESS": PROXY_ADDRESS,
    }
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    compose = ["docker", "compose", "--project-directory", str(folder), "-p", f"sghandmade{SLOT}"]
    subprocess.run(
        [*compose, "up", "-d", "--wait", "--wait-timeout", "60"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield folder, root
    finally:
        subprocess.run(
            [*compose, "down", "--remove-orphans"], check=False, capture_output=True, timeout=120
        )


def test_verify_url_on_a_hand_written_stack(handwritten: tuple[Path, Path]) -> None:
    _folder, root = handwritten
    result = stackgen(
        "verify",
        "--url",
        f"https://{NAME}:{HTTPS_PORT}",
        "--resolve",
        f"{NAME}:127.0.0.1",
        "--ca-file",
        str(root),
        "--http-port",
        str(HTTP_PORT),
        "--known-proxy",
        PROXY_ADDRESS,
        "--proxy-address",
        PROXY_ADDRESS,
        "--json",
        check=False,
    )
    report = json.loads(result.stdout)
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    failing = {k: v for k, v in statuses.items() if v == "fail"}
    assert failing == {}, json.dumps(report["checks"], indent=1)
    assert result.returncode == 0
    # Every check that applies to a root-path stack ran; skipped: the subpath one, the LAN
    # URL and HTTP/3 checks (no LAN URL given, no HTTP/3 advertised), the tunnel checks (a
    # bare URL has no tunnel), X-Forwarded-For spoofing (judged only by a rate limit's
    # 429, and this hand-written site has none) and the GeoIP allow list (none asked).
    assert len(statuses) >= 26
    assert [s["id"] for s in report.get("skipped", [])] == [
        "jellyfin.lan-url",
        "jellyfin.subpath-redirect",
        "http3.get",
        "tunnel.handshake",
        "tunnel.allowed-ips",
        "exposure.forwarded-for",
        "exposure.geo",
    ]
