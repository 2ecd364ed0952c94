"""certbot-based proxies: a forced renewal is deployed and served while requests keep
succeeding (the deploy hook replaces the files atomically, the proxy's watcher reloads it
gracefully), and the served certificate is then the new one, verified against Pebble's root."""

from __future__ import annotations

import socket
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from integration import lowlevel
from integration.conftest import DOMAIN, HTTPS_PORT, Stack, StackFactory

from stackgen.certificates.certbot import LAYOUT
from stackgen.models import parse_config
from stackgen.proxies import available, get_proxy

CERTBOT_PROXIES = [
    name
    for name in available()
    if get_proxy(name)
    .certificates(
        parse_config(
            {"proxy": name, "domain": DOMAIN, "email": "admin@example.com"},
            Path("."),
            check_paths=False,
        )
    )
    .service_template
]
# Bounded in count and in time: the loop stops by itself.
MAX_REQUESTS = 3000
MAX_SECONDS = 120.0
SERVED_WITHIN_S = 30.0


def served_certificate(root: Path) -> x509.Certificate:
    """The leaf of a handshake that verifies against Pebble's root alone."""
    raw = socket.create_connection((lowlevel.LOOPBACK, HTTPS_PORT), timeout=30)
    with lowlevel.tls_context(root).wrap_socket(raw, server_hostname=DOMAIN) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def deployed_certificate(stack: Stack) -> x509.Certificate:
    layout = LAYOUT
    return x509.load_pem_x509_certificate(
        (stack.directory / layout.certs_dir / "fullchain.pem").read_bytes()
    )


@pytest.mark.parametrize("proxy", CERTBOT_PROXIES)
def test_forced_renewal_is_served_without_a_failed_request(
    make_stack: StackFactory, pebble: object, proxy: str
) -> None:
    stack = make_stack(proxy)
    root = pebble.issuer_root_file  # type: ignore[attr-defined]
    before = served_certificate(root)
    assert before.serial_number == deployed_certificate(stack).serial_number

    loop = lowlevel.RequestLoop(
        DOMAIN, HTTPS_PORT, root, max_requests=MAX_REQUESTS, max_seconds=MAX_SECONDS
    )
    loop.start()
    time.sleep(1)
    started = time.monotonic()
    renewal = stack.compose(
        "exec", "-T", "certbot", "sh", "/stackgen/run.sh", "renew", "--force-renewal"
    )
    stack.notes.append(f"renewal exit {renewal.returncode}:\n{renewal.stdout}{renewal.stderr}")
    assert renewal.returncode == 0
    renewed = deployed_certificate(stack)
    assert renewed.serial_number != before.serial_number

    served = before
    while time.monotonic() - started < SERVED_WITHIN_S:
        served = served_certificate(root)
        if served.serial_number == renewed.serial_number:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    time.sleep(2)  # requests across the reload's aftermath (old workers finishing)
    loop.stop.set()
    loop.join(timeout=60)

    assert served.serial_number == renewed.serial_number, (
        f"still serving serial {served.serial_number:x} {elapsed:.0f} s after the renewal"
    )
    assert loop.ok > 20
    assert loop.failures == [], f"{len(loop.failures)} failed of {loop.ok + len(loop.failures)}"
    # Shown with `pytest -s`: how long the switch took, how many requests crossed it.
    print(f"{proxy}: new certificate served {elapsed:.1f} s after `renew` started; {loop.ok} ok")

    # The deploy hook keeps the key private, and certbot keeps both versions.
    certs = stack.directory / LAYOUT.certs_dir
    assert stat.S_IMODE((certs / "privkey.pem").stat().st_mode) == 0o600
    archive = stack.directory / LAYOUT.state_dir / "archive" / DOMAIN
    assert {p.name for p in archive.glob("cert*.pem")} >= {"cert1.pem", "cert2.pem"}
