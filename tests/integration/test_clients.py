"""Clients from network namespaces of their own, the way remote clients arrive: one on
the LAN, one on the internet. Each reaches the published port through the engine's NAT
(never docker-proxy, which would replace its address), so the proxy sees the real client
address, passes it in X-Forwarded-For, and Jellyfin (the stand-in) chooses the URL it
advertises by it: the LAN URL for the LAN client, the public URL for the other.

The namespaces, veth pairs and addresses are the test's own; the stack publishes on the
host end of the LAN pair, as a server publishes on its LAN address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import sys
from collections.abc import Iterator

import pytest
from integration.conftest import DOMAIN, HTTPS_PORT, JELLYFIN_PORT, SLOT, StackFactory
from integration.netns import ClientNamespace, client_namespace, client_range, standin_echo

# Per slot, so two workers never share a name or a subnet.
LAN = ipaddress.ip_network(f"192.168.{200 + SLOT}.0/24")
WAN = client_range(SLOT, "internet")


@pytest.fixture
def sides() -> Iterator[tuple[ClientNamespace, ClientNamespace]]:
    with contextlib.ExitStack() as stack:
        lan = stack.enter_context(client_namespace(f"sg{SLOT}lan", LAN))
        wan = stack.enter_context(client_namespace(f"sg{SLOT}wan", WAN))
        yield lan, wan


def test_lan_and_internet_clients_get_their_url(
    make_stack: StackFactory, sides: tuple[ClientNamespace, ClientNamespace]
) -> None:
    lan, wan = sides
    lan_url = f"http://{lan.host_address}:{JELLYFIN_PORT}"
    stack = make_stack(
        "caddy",
        tls="internal",
        config={
            "ports": {"listen_address": lan.host_address},
            "jellyfin": {"lan_url": lan_url, "lan_subnets": [str(LAN)]},
        },
    )
    ca = stack.directory / "tls" / "ca.pem"
    public = f"https://{DOMAIN}:{HTTPS_PORT}"

    # Real client addresses, not a gateway's: the NAT keeps them, the proxy forwards them.
    for side in (lan, wan):
        echo = standin_echo(side, lan.host_address, HTTPS_PORT, DOMAIN, ca)
        assert echo["client_address"] == side.client_address, echo
        assert echo["peer_address"] == stack.config.known_proxies[0]

    # verify from each side names the URL that side is given.
    outcomes = {}
    for side, flags in ((lan, ["--from-lan"]), (wan, [])):
        run = side.run(
            sys.executable,
            "-c",
            "from stackgen.cli import main; main()",
            "verify",
            "--dir",
            str(stack.directory),
            "--json",
            "--only",
            "jellyfin",
            *flags,
        )
        report = json.loads(run.stdout)
        problems = [c for c in report["checks"] if c["status"] != "pass"]
        assert problems == [] and run.returncode == 0, (problems, run.stderr)
        checks = {c["id"]: c for c in report["checks"] if c["protocol"] != "h2"}
        outcomes[side.name] = checks["jellyfin.lan-url"]["details"]["local_address"]
    assert outcomes == {lan.name: lan_url, wan.name: public}
