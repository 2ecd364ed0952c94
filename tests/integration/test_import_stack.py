"""A Traefik v1.7 folder whose acme.json holds a Pebble-issued certificate imports to a v3
stack that serves that same certificate, and Pebble issues nothing new.

The certificate comes from a first stackgen stack (Pebble issues it through HTTP-01); its
v3 store is written back in Traefik v1's layout, beside a docs-style traefik.toml, as a
server that ran the old page's setup would have it."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

import tomlkit
from cryptography import x509
from integration import lowlevel
from integration.conftest import (
    DOMAIN,
    HTTP_PORT,
    HTTPS_PORT,
    JELLYFIN_PORT,
    SUBNET,
    StackFactory,
    stackgen,
)

TRAEFIK_TOML = """\
# Traefik 1.7, as the Jellyfin docs set it up.
logLevel = "WARN"
defaultEntryPoints = ["http", "https"]

[entryPoints]
  [entryPoints.http]
  address = ":80"
    [entryPoints.http.redirect]
    entryPoint = "https"
  [entryPoints.https]
  address = ":443"
    [entryPoints.https.tls]
    minVersion = "VersionTLS12"

[acme]
email = "admin@stackgen.test"
storage = "acme.json"
caServer = "{ca}"
entryPoint = "https"
  [acme.httpChallenge]
  entryPoint = "http"

[backends]
  [backends.backend-jellyfin]
    [backends.backend-jellyfin.servers]
      [backends.backend-jellyfin.servers.server-1]
        url = "http://172.17.0.1:{port}"
[frontends]
  [frontends.jellyfin]
    backend = "backend-jellyfin"
    passHostHeader = true
    [frontends.jellyfin.routes]
      [frontends.jellyfin.routes.route-jellyfin-ext]
        rule = "Host:{domain}"
    [frontends.jellyfin.headers]
      frameDeny = true
"""


def _served_serial(root: Path) -> int:
    raw = socket.create_connection((lowlevel.LOOPBACK, HTTPS_PORT), timeout=30)
    with lowlevel.tls_context(root).wrap_socket(raw, server_hostname=DOMAIN) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _issued(pebble: Any) -> int:
    return str(pebble.log_tail(100_000)).count("Issued certificate")


def _v1_store(v3: dict[str, Any]) -> dict[str, Any]:
    (store,) = v3.values()
    return {
        "Account": store["Account"],
        "Certificates": [
            {
                "Domain": {"Main": c["domain"]["main"], "SANs": c["domain"].get("sans")},
                "Certificate": c["certificate"],
                "Key": c["key"],
            }
            for c in store["Certificates"]
        ],
        "HTTPChallenges": {},
        "TLSChallenges": {},
    }


def test_imported_traefik_v1_keeps_its_certificate(
    make_stack: StackFactory, pebble: Any, images: dict[str, str], tmp_path: Path
) -> None:
    root = pebble.issuer_root_file
    first = make_stack("traefik")
    v3 = json.loads((first.directory / "traefik" / "acme.json").read_text())
    (certificate,) = next(iter(v3.values()))["Certificates"]
    chain = base64.b64decode(certificate["certificate"])
    serial = x509.load_pem_x509_certificates(chain)[0].serial_number
    assert _served_serial(root) == serial
    stackgen("down", "--dir", str(first.directory))

    old = tmp_path / "old-traefik"
    old.mkdir()
    (old / "traefik.toml").write_text(
        TRAEFIK_TOML.format(ca=pebble.directory_url, port=JELLYFIN_PORT, domain=DOMAIN)
    )
    (old / "acme.json").write_text(json.dumps(_v1_store(v3), indent=2))
    (old / "acme.json").chmod(0o600)

    stack_dir = tmp_path / "imported"
    result = stackgen(
        "import",
        str(old),
        "--dir",
        str(stack_dir),
        "--json",
        "--jellyfin-url",
        f"http://172.17.0.1:{JELLYFIN_PORT}",
    )
    report = json.loads(result.stdout)["report"]
    assert any(e["directive"] == "acme.json" and e["action"] == "translated" for e in report)
    assert any(e["directive"] == "headers.frameDeny" and e["action"] == "dropped" for e in report)

    # What a test stack needs beyond the import: its ports, subnet, local images and Pebble's
    # trust anchors; the user's own edit of stackgen.toml, then a render.
    config_file = stack_dir / "stackgen.toml"
    document = tomlkit.parse(config_file.read_text())
    document["project"] = first.config.project + "-imp"
    document["ports"] = {"http": HTTP_PORT, "https": HTTPS_PORT, "listen_address": "127.0.0.1"}
    document["network"]["subnet"] = SUBNET  # type: ignore[index]
    document["images"]["traefik"] = images["traefik"]  # type: ignore[index]
    document["images"]["fail2ban"] = images["fail2ban"]  # type: ignore[index]
    document["jellyfin"]["image"] = images["jellyfin-standin"]  # type: ignore[index]
    document["tls"]["ca_bundle"] = str(pebble.listener_ca_file)  # type: ignore[index]
    document["tls"]["trust_bundle"] = str(root)  # type: ignore[index]
    config_file.write_text(tomlkit.dumps(document))
    stackgen("render", "--dir", str(stack_dir))

    issued_before = _issued(pebble)
    assert issued_before >= 1, "Pebble's log does not show the first stack's issuance"
    try:
        up = stackgen("up", "--dir", str(stack_dir), "--timeout", "180", check=False)
        assert up.returncode == 0, up.stderr
        assert _served_serial(root) == serial
        health = lowlevel.https(DOMAIN, HTTPS_PORT, root, "/health")
        assert (health.status, health.body) == (200, b"Healthy")
        assert _issued(pebble) == issued_before, "Pebble issued a new certificate"
    finally:
        stackgen("down", "--dir", str(stack_dir), check=False)
