"""DNS-01 (with a wildcard) and TLS-ALPN-01, issued for real: no port 80 anywhere.

One bind9 per session serves the test zone and accepts TSIG-signed updates; one Pebble per
session resolves through it. The ACME client of each stack (Traefik's lego, or the certbot
service) publishes `_acme-challenge.stackgen.test` TXT records in bind9 with the stack's
credentials from `.env`, and Pebble validates by asking bind9: no challenge shortcut.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from integration import lowlevel
from integration.conftest import (
    HTTP_PORT,
    HTTPS_PORT,
    JELLYFIN_PORT,
    PORT_BASES,
    PORT_SHIFT,
    SLOT,
    SUBNET,
    Stack,
    _image_name,
    exposure_audit,
)

from stackgen.probe import Status
from stackgen.proxies import available
from stackgen.testing.pebble import PebbleCA
from stackgen.testing.plugin import record_stack
from stackgen.testing.stacks import Ports
from stackgen.testing.stacks import StackFactory as PluginFactory
from tests.bind9 import Bind9

ZONE = "stackgen.test"
DOMAIN = f"jellyfin.{ZONE}"
WILDCARD_NAMES = {f"*.{ZONE}", ZONE}


@pytest.fixture(scope="session")
def bind9(
    engine: None, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bind9]:
    server = Bind9(
        tmp_path_factory.mktemp("bind9"),
        port=PORT_BASES["bind9"] + PORT_SHIFT,
        zones=(ZONE,),
        image=images["bind9"],
        name=f"sgtest{SLOT}-bind9",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dns_pebble(bind9: Bind9, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PebbleCA]:
    # Its own ports (the session Pebble of the other tests keeps its fake DNS).
    ca = PebbleCA(
        state_dir=tmp_path_factory.mktemp("pebble-dns"),
        http_port=HTTP_PORT,
        tls_port=HTTPS_PORT,
        acme_port=PORT_BASES["dns-pebble.acme"] + PORT_SHIFT,
        management_port=PORT_BASES["dns-pebble.management"] + PORT_SHIFT,
        dns_server=bind9.host_address,
    )
    ca.start()
    try:
        yield ca
    finally:
        ca.stop()


@pytest.fixture
def short_lived_pebble(
    bind9: Bind9, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PebbleCA]:
    """Certificates that last 15 minutes: a client planning renewals from a 1-hour duration
    (a third before expiry, checked every minute) renews within a minute by itself."""
    ca = PebbleCA(
        state_dir=tmp_path_factory.mktemp("pebble-short"),
        http_port=HTTP_PORT,
        tls_port=HTTPS_PORT,
        acme_port=PORT_BASES["short-pebble.acme"] + PORT_SHIFT,
        management_port=PORT_BASES["short-pebble.management"] + PORT_SHIFT,
        dns_server=bind9.host_address,
        cert_validity_seconds=15 * 60,
    )
    ca.start()
    try:
        yield ca
    finally:
        ca.stop()


def dns_secrets(bind9: Bind9) -> str:
    return (
        f"RFC2136_NAMESERVER={bind9.container_address}\n"
        f"RFC2136_TSIG_KEY={bind9.key_name}.\n"
        f"RFC2136_TSIG_SECRET={bind9.tsig_secret}\n"
        f"RFC2136_TSIG_ALGORITHM={bind9.algorithm}.\n"
        # lego (Traefik) solves the wildcard and the apex one after the other (one TXT name):
        # by default 60 s apart, which a server answering at once does not need.
        "RFC2136_SEQUENCE_INTERVAL=1\n"
        "RFC2136_POLLING_INTERVAL=1\n"
    )


DnsStackFactory = Callable[..., Stack]


@pytest.fixture
def make_dns_stack(
    request: pytest.FixtureRequest,
    images: dict[str, str],
    bind9: Bind9,
    dns_pebble: PebbleCA,
    tmp_path: Path,
) -> Iterator[DnsStackFactory]:
    factory = PluginFactory(
        base_dir=tmp_path,
        images={
            "jellyfin": images["jellyfin-standin"],
            **{proxy: images[_image_name(proxy)] for proxy in available()},
            # certbot's DNS plugins (the official per-plugin images' stand-in).
            "certbot": images["certbot-dns"],
            "fail2ban": images["fail2ban"],
        },
        timeout=180,
        handle_class=Stack,
    )

    def logs(stack: Any) -> None:
        stack.notes.append("pebble:\n" + dns_pebble.log_tail() + "\n" + bind9.log_tail())

    def make(
        proxy: str,
        *,
        mode: str = "acme-dns",
        tls: dict[str, Any] | None = None,
        pebble: PebbleCA | None = None,
    ) -> Stack:
        extra: dict[str, Any] = {}
        if mode == "acme-dns":
            extra = {
                "dns_provider": "rfc2136",
                "wildcard": True,
                "dns_resolvers": [bind9.container_address],
                "dns_propagation_seconds": 0,
            }
        stack = factory.create(
            proxy,
            tls=mode,
            network="host",
            domain=DOMAIN,
            ports=Ports(http=HTTP_PORT, https=HTTPS_PORT, jellyfin=JELLYFIN_PORT),
            subnet=SUBNET,
            pebble=pebble or dns_pebble,
            config={"tls": extra | (tls or {})},
            project=f"sgtest{SLOT}-{uuid.uuid4().hex[:8]}",
            name=f"stack-{len(factory.stacks)}",
            start=False,
        )
        assert isinstance(stack, Stack)
        record_stack(request.node, stack)
        env = stack.directory / ".env"
        if mode == "acme-dns":
            assert env.stat().st_mode & 0o777 == 0o600
            env.write_text(dns_secrets(bind9))
        factory.start(stack, on_failure=logs)
        return stack

    try:
        yield make
    finally:
        factory.close_all()


def served_certificate(root: Path) -> x509.Certificate:
    context = lowlevel.tls_context(root)
    with (
        socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))


def assert_nothing_on_port_80() -> None:
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.1", HTTP_PORT)) != 0, "something listens on port 80"


def assert_verified(stack: Stack) -> None:
    report = stack.verify()
    bad = [
        r
        for r in report.results
        if r.status in (Status.FAIL, Status.WARN) and not exposure_audit(r.id)
    ]
    assert not bad, "\n".join(f"{r.id}: {r.status} {r.reason}" for r in bad)
    # Port 80 is closed, and verify says why instead of failing the redirect checks.
    assert {"redirect.https", "redirect.acme-path", "hsts.http"} <= set(report.skipped)


@pytest.mark.parametrize("proxy", available())
def test_dns01_wildcard(make_dns_stack: DnsStackFactory, dns_pebble: PebbleCA, proxy: str) -> None:
    stack = make_dns_stack(proxy)
    root = dns_pebble.issuer_root_file
    cert = served_certificate(root)
    assert names(cert) == WILDCARD_NAMES
    health = lowlevel.https(DOMAIN, HTTPS_PORT, root, "/health")
    assert (health.status, health.body) == (200, b"Healthy")
    assert_nothing_on_port_80()
    assert_verified(stack)


@pytest.mark.parametrize("proxy", ["traefik", "caddy"])
def test_tls_alpn01(make_dns_stack: DnsStackFactory, dns_pebble: PebbleCA, proxy: str) -> None:
    stack = make_dns_stack(proxy, mode="acme-tls-alpn")
    cert = served_certificate(dns_pebble.issuer_root_file)
    assert names(cert) == {DOMAIN}
    assert_nothing_on_port_80()
    assert_verified(stack)


# Bounded in count and in time: the loop stops by itself.
MAX_REQUESTS = 3000
MAX_SECONDS = 120.0
SERVED_WITHIN_S = 30.0
CLIENTS = 3
SLOW_CLIENTS = 2

# Caddy under certbot: the watcher's `caddy reload --force` closes the connections waiting
# for their request and resets those in the old socket's queue (docs/flakes.md, "Caddy:
# connections lost at a reload"); a slow client is always waiting, so every run loses some.
CADDY_RELOAD_DROPS = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="Caddy's reload drops new connections that arrive while it switches servers",
)


# The certbot path: the same service and hook for nginx, HAProxy, Apache and Caddy (whose
# official image has no DNS module: certbot obtains its certificate).
@pytest.mark.parametrize(
    "proxy", ["nginx", "haproxy", "apache", pytest.param("caddy", marks=CADDY_RELOAD_DROPS)]
)
def test_forced_dns01_renewal_under_load_loses_no_request(
    make_dns_stack: DnsStackFactory, dns_pebble: PebbleCA, proxy: str
) -> None:
    """certbot renews through bind9 again; the deploy hook swaps the files, the watcher
    reloads the proxy gracefully, and no request fails meanwhile."""
    stack = make_dns_stack(proxy)
    root = dns_pebble.issuer_root_file
    before = served_certificate(root)
    with lowlevel.RequestLoops(
        DOMAIN,
        HTTPS_PORT,
        root,
        clients=CLIENTS,
        slow_clients=SLOW_CLIENTS,
        max_requests=MAX_REQUESTS,
        max_seconds=MAX_SECONDS,
    ) as loops:
        time.sleep(1)
        renew_started = time.monotonic()
        renewal = stack.compose(
            "exec", "-T", "certbot", "sh", "/stackgen/run.sh", "renew", "--force-renewal"
        )
        stack.notes.append(
            f"renewal exit {renewal.returncode} after {time.monotonic() - renew_started:.1f} s:"
            f"\n{renewal.stdout}{renewal.stderr}"
        )
        assert renewal.returncode == 0
        # From the deploy on: how long the renewal itself took is the CA's and the DNS's.
        started = time.monotonic()
        served = before
        while time.monotonic() - started < SERVED_WITHIN_S:
            served = served_certificate(root)
            if served.serial_number != before.serial_number:
                break
            time.sleep(0.5)
        time.sleep(2)  # requests across the reload's aftermath
    assert served.serial_number != before.serial_number, "the renewed certificate is not served"
    assert names(served) == WILDCARD_NAMES
    assert loops.ok > 20
    assert loops.failures == [], (
        f"{len(loops.failures)} failed of {loops.ok + len(loops.failures)}:\n"
        + "\n".join(loops.failures[:20])
    )


def test_traefik_renews_through_dns01_under_load_and_loses_no_request(
    make_dns_stack: DnsStackFactory, short_lived_pebble: PebbleCA
) -> None:
    """Traefik has no command to force a renewal: with 15-minute certificates and
    `certificatesDuration = 1` it renews by itself within a minute, through bind9 again, and
    swaps the certificate in place while requests keep coming."""
    stack = make_dns_stack("traefik", tls={"certificate_hours": 1}, pebble=short_lived_pebble)
    root = short_lived_pebble.issuer_root_file
    before = served_certificate(root)
    loop = lowlevel.RequestLoop(
        DOMAIN, HTTPS_PORT, root, max_requests=MAX_REQUESTS, max_seconds=MAX_SECONDS
    )
    loop.start()
    started = time.monotonic()
    served = before
    while time.monotonic() - started < 100:
        served = served_certificate(root)
        if served.serial_number != before.serial_number:
            break
        time.sleep(1)
    time.sleep(2)
    loop.stop.set()
    loop.join(timeout=60)
    stack.notes.append(f"renewed after {time.monotonic() - started:.0f} s")
    assert served.serial_number != before.serial_number, "Traefik did not renew"
    assert names(served) == WILDCARD_NAMES
    assert loop.ok > 20
    assert loop.failures == [], f"{len(loop.failures)} failed of {loop.ok + len(loop.failures)}"
