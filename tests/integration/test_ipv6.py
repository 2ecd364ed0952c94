"""Dual-stack (`ipv6 = true`) on every proxy: an IPv6 client keeps its address.

One stack per proxy (local CA, host-network Jellyfin: the cheapest that proves it). A
client in a network namespace of its own, with an IPv6 address as an internet client has,
connects over verified TLS to the port the stack publishes on IPv6, at the host end of
its veth pair. The engine's NAT (ip6tables) forwards it with its address kept; the proxy,
listening on IPv6, passes that address in X-Forwarded-For; the stand-in, trusting the
proxy by KnownProxies, must see exactly the client's address, not a gateway's. The
stand-in drops IPv6 KnownProxies entries unless EnableIPv6 is on, as Jellyfin does, so
its trusted list also shows that EnableIPv6 followed the setting.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from integration.conftest import DOMAIN, HTTPS_PORT, SLOT, StackFactory
from integration.netns import ClientNamespace, client_namespace, standin_echo

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
    # Jellyfin: the proxy connects from its IPv4 address), and the IPv6 entry was kept.
    assert echo["peer_address"] in stack.config.known_proxies, echo
    assert echo["peer_trusted"] is True, echo
    assert proxy6 in echo["trusted_proxies"], echo
