"""Each of the five formats, written as the old page had it (the unit fixtures, pointed at
this test's name and Jellyfin stand-in), imports to a stack that comes up and that
`stackgen verify` passes without a warning. Certificates the old proxy had (certbot lineages,
HAProxy's combined PEM) are the ones served; where the old proxy obtained its own (Traefik,
Caddy), the new one obtains one from Pebble."""

from __future__ import annotations

import json
import socket
import ssl
import uuid
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from integration import lowlevel
from integration.conftest import (
    DOMAIN,
    HTTP_PORT,
    HTTPS_PORT,
    JELLYFIN_PORT,
    SLOT,
    SUBNET,
    exposure_audit,
    stackgen,
)
from unit.import_support import FIXTURES, Pair, combined, lineage, make_cert

# (fixture, the old config's name and upstream, as written in it)
CASES = {
    "traefik": ("traefik/labels-bridge", "media.example.org", None),
    "nginx": ("nginx/jellyfin.conf", "jellyfin.example.com", "127.0.0.1:8096"),
    "apache": ("apache/jellyfin.conf", "jellyfin.example.com", "127.0.0.1:8096"),
    "haproxy": ("haproxy/haproxy-1.8.cfg", "jellyfin.example.com", "127.0.0.1:8096"),
    "caddy": ("caddy/Caddyfile", "jellyfin.example.com", "localhost:8096"),
}


def _old_config(fixture: str, name: str, upstream: str | None, tmp: Path) -> Path:
    """The fixture with this test's public name and, for host-network Jellyfin, the stand-in's
    port: as a user's own edit of the docs would have them."""
    source = FIXTURES / fixture
    target = tmp / "old" / source.name
    files = sorted(source.iterdir()) if source.is_dir() else [source]
    for file in files:
        out = target / file.name if source.is_dir() else target
        out.parent.mkdir(parents=True, exist_ok=True)
        text = file.read_text().replace(name, DOMAIN)
        if upstream:
            text = text.replace(upstream, f"127.0.0.1:{JELLYFIN_PORT}")
        out.write_text(text)
    return target


def _served_serial() -> int:
    # Unverified on purpose: this only reads which certificate is served; verify judges it.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((lowlevel.LOOPBACK, HTTPS_PORT), timeout=30)
    with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.mark.parametrize("proxy", list(CASES))
def test_imported_stack_comes_up_and_verifies(
    proxy: str, pebble: Any, images: dict[str, str], tmp_path: Path
) -> None:
    fixture, name, upstream = CASES[proxy]
    old = _old_config(fixture, name, upstream, tmp_path)
    root = tmp_path / "root"
    pair: Pair = make_cert(DOMAIN)
    lineage(root, DOMAIN, pair)
    combined(root, f"etc/ssl/{DOMAIN}.pem", pair)
    ca_root = tmp_path / "old-ca.pem"
    issuer = x509.load_pem_x509_certificates(pair.chain_pem)[1]
    ca_root.write_bytes(issuer.public_bytes(serialization.Encoding.PEM))
    stack_dir = tmp_path / "stack"
    args = ["import", str(old), "--dir", str(stack_dir), "--root", str(root), "--json"]
    if upstream:
        args += ["--jellyfin-url", f"http://127.0.0.1:{JELLYFIN_PORT}"]
    imported = json.loads(stackgen(*args).stdout)
    kept = imported["tls_mode"] == "files"
    assert kept == (proxy in ("nginx", "apache", "haproxy")), imported["tls_mode"]

    # This machine's test setup, edited in as a user would: ports, subnet, local images,
    # Pebble for the proxies that obtain certificates, and the old CA's root as trust.
    config_file = stack_dir / "stackgen.toml"
    document = tomlkit.parse(config_file.read_text())
    document["project"] = f"sgtest{SLOT}-{uuid.uuid4().hex[:8]}"
    document["ports"] = {"http": HTTP_PORT, "https": HTTPS_PORT, "listen_address": "127.0.0.1"}
    document["network"]["subnet"] = SUBNET  # type: ignore[index]
    image = "httpd" if proxy == "apache" else proxy
    document["images"][proxy] = images[image]  # type: ignore[index]
    document["images"]["certbot"] = images["certbot"]  # type: ignore[index]
    document["images"]["fail2ban"] = images["fail2ban"]  # type: ignore[index]
    document["jellyfin"]["image"] = images["jellyfin-standin"]  # type: ignore[index]
    tls = document["tls"]
    if kept:
        tls["trust_bundle"] = str(ca_root)  # type: ignore[index]
    else:
        tls["ca_url"] = pebble.directory_url  # type: ignore[index]
        tls["ca_bundle"] = str(pebble.listener_ca_file)  # type: ignore[index]
        tls["trust_bundle"] = str(pebble.issuer_root_file)  # type: ignore[index]
    config_file.write_text(tomlkit.dumps(document))
    stackgen("render", "--dir", str(stack_dir))

    try:
        up = stackgen("up", "--dir", str(stack_dir), "--timeout", "180", check=False)
        assert up.returncode == 0, up.stderr
        if kept:
            assert _served_serial() == pair.serial
        result = stackgen(
            "verify",
            "--dir",
            str(stack_dir),
            "--json",
            "--media-path",
            "/Videos/standin/stream?static=true",
            check=False,
        )
        report = json.loads(result.stdout)
        problems = [
            f"{c['id']}: {c['status']}: {c['reason']}"
            for c in report["checks"]
            if c["status"] != "pass" and not exposure_audit(c["id"])
        ]
        assert problems == [], "\n".join(problems)
    finally:
        stackgen("down", "--dir", str(stack_dir), check=False)
