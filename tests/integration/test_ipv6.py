"""Dual-stack (`ipv6 = true`) on every proxy: an IPv6 client keeps its address.

One stack per proxy (local CA, host-network Jellyfin: the cheapest that proves it). A
client in a network namespace of its own, with an IPv6 address as an internet client has,
connects over verified TLS to the port the stack publishes on IPv6, at the host end of
its veth pair. The engine's NAT (ip6tables) forwards it with its address kept; the proxy,
listening on IPv6, passes that address in X-Forwarded-For; the stand-in, trusting the
proxy by KnownProxies, must see exactly the client's address, not a gateway's. The
stand-in drops IPv6 KnownProxies entries unless EnableIPv6 is on, as Jellyfin does, so
its trusted list also shows that EnableIPv6 followed the setting.

Two more: a bridged Jellyfin reached over IPv6 trusts the proxy's IPv6 address, and `up`
names a Docker network that already holds the IPv6 subnet before starting anything. A
failure's report carries the stack's container logs and generated files (make_stack).
"""

from __future__ import annotations

import ipaddress
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from integration.conftest import DOMAIN, HTTPS_PORT, SLOT, StackFactory, stackgen
from integration.netns import ClientNamespace, client_namespace, standin_echo

from stackgen.allocate import Allocator
from stackgen.errors import ExitCode
from stackgen.proxies import available

# The client's own ULA /64, per slot: clear of the host's fd00::/64, the engine's default
# bridge (fd5a:14a8:ffff::/64) and stackgen's fd6a:6600::/32 proxy networks.
CLIENT_NET = ipaddress.IPv6Network(f"fd7e:57c1:{SLOT:x}::/64")


@pytest.fixture
def ipv6_client() -> Iterator[ClientNamespace]:
    with client_namespace(f"sg{SLOT}v6", CLIENT_NET) as client:
        yield client


@pytest.mark.parametrize("proxy", available())
def test_ipv6_client_address_reaches_jellyfin(
    make_stack: StackFactory, ipv6_client: ClientNamespace, proxy: str
) -> None:
    stack = make_stack(proxy, tls="internal", config={"ipv6": True})
    network = stack.config.network
    assert network.subnet6 is not None and network.proxy_ip6 is not None
    proxy4, proxy6 = str(network.proxy_ip), str(network.proxy_ip6)

    # What Jellyfin reads: both proxy addresses, and IPv6 switched on.
    xml = ET.parse(stack.directory / "jellyfin/config/config/network.xml").getroot()
    assert [e.text for e in xml.findall("./KnownProxies/string")] == [proxy4, proxy6]
    assert xml.findtext("EnableIPv6") == "true"

    echo = standin_echo(
        ipv6_client, ipv6_client.host_address, HTTPS_PORT, DOMAIN, stack.directory / "tls/ca.pem"
    )
    # The client's own address, through NAT, the proxy's IPv6 listener and X-Forwarded-For.
    assert echo["client_address"] == ipv6_client.client_address, echo
    assert echo["forwarded_headers_honoured"] is True, echo
    # The proxy's source as Jellyfin saw it is covered by KnownProxies (host-network
    # Jellyfin: the proxy connects from its IPv4 address, which Jellyfin's dual-mode socket
    # reports IPv4-mapped), and the IPv6 entry was kept.
    assert echo["peer_address"] == f"::ffff:{proxy4}", echo
    assert _unmapped(echo["peer_address"]) in stack.config.known_proxies, echo
    assert echo["peer_trusted"] is True, echo
    assert proxy6 in echo["trusted_proxies"], echo


# How many echoes the bridged test may ask for before the IPv6 hop must have been seen:
# nginx spreads requests over both addresses of the name `jellyfin`.
BRIDGED_ATTEMPTS = 10


def test_a_bridged_jellyfin_trusts_the_proxys_ipv6_address(
    make_stack: StackFactory, ipv6_client: ClientNamespace
) -> None:
    """On a dual-stack network the proxy reaches a bridged Jellyfin over IPv6 too: its
    IPv6 address must be in KnownProxies (and kept by EnableIPv6), or Jellyfin would take
    the proxy for the client. Jellyfin listens on IPv6 (one dual-mode socket) when
    network.xml has EnableIPv6, which stackgen writes with `ipv6`; the stand-in does the
    same, with the generated files as they are."""
    stack = make_stack(
        "nginx", network="bridge", tls="internal", start=False, config={"ipv6": True}
    )
    up = stackgen("up", "--dir", str(stack.directory), "--timeout", "120", check=False)
    assert up.returncode == 0, up.stderr

    proxy6 = str(stack.config.network.proxy_ip6)
    peers: set[str] = set()
    for _ in range(BRIDGED_ATTEMPTS):
        echo = standin_echo(
            ipv6_client,
            ipv6_client.host_address,
            HTTPS_PORT,
            DOMAIN,
            stack.directory / "tls/ca.pem",
        )
        assert echo["client_address"] == ipv6_client.client_address, echo
        assert echo["peer_trusted"] is True, echo
        peers.add(_unmapped(echo["peer_address"]))
        if proxy6 in peers:
            break
    assert proxy6 in peers, f"the proxy never reached Jellyfin over IPv6: {peers}"
    assert peers <= set(stack.config.known_proxies), peers


def _unmapped(address: str) -> str:
    """A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d (Jellyfin maps it back)."""
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def test_up_names_the_network_that_holds_the_ipv6_subnet(make_stack: StackFactory) -> None:
    stack = make_stack("nginx", tls="internal", start=False, config={"ipv6": True})
    subnet6 = stack.config.network.subnet6
    name = f"sgtest{SLOT}-holds-subnet6"
    # The holder's IPv4 subnet is claimed too: left to the engine, it could take a range
    # another run's stack is about to use.
    allocator = Allocator()
    subnet4 = allocator.subnet(name)
    subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)
    try:
        subprocess.run(
            [
                *("docker", "network", "create", "--ipv6"),
                *("--subnet", str(subnet4), "--subnet", str(subnet6), name),
            ],
            capture_output=True,
            check=True,
            timeout=60,
        )
        up = stackgen("up", "--dir", str(stack.directory), "--timeout", "60", check=False)
    finally:
        subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)
        allocator.release(name)
    assert up.returncode == ExitCode.DOCKER, up.stderr
    last = up.stderr.strip().splitlines()[-1]
    assert f"network.subnet6 {subnet6} overlaps Docker network {name}" in last, up.stderr
    listing = subprocess.run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={stack.config.project}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert listing.stdout.strip() == "", "up started containers before refusing"
