"""Clients from network namespaces of their own, the way remote clients arrive: one on
the LAN, one on the internet. Each reaches the published port through the engine's NAT
(never docker-proxy, which would replace its address), so the proxy sees the real client
address, passes it in X-Forwarded-For, and Jellyfin (the stand-in) chooses the URL it
advertises by it: the LAN URL for the LAN client, the public URL for the other.

The namespaces, veth pairs and addresses are the test's own; the stack publishes on the
host end of the LAN pair, as a server publishes on its LAN address.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from integration.conftest import DOMAIN, HTTPS_PORT, JELLYFIN_PORT, SLOT, StackFactory

# Per slot, so two workers never share a name or a subnet. The "internet" range is
# TEST-NET-2 (documentation only: nothing real lives there).
LAN = ipaddress.ip_network(f"192.168.{200 + SLOT}.0/24")
WAN = ipaddress.ip_network(f"198.51.100.{16 * SLOT}/28")


@dataclass(frozen=True)
class Side:
    namespace: str
    host_address: str  # the host end of its veth pair
    client_address: str  # inside the namespace

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _remove(name: str) -> None:
    for args in (["netns", "del", name], ["link", "del", f"{name}-h"]):
        subprocess.run(["ip", *args], capture_output=True, check=False, timeout=30)


@pytest.fixture
def sides() -> Iterator[tuple[Side, Side]]:
    made: list[str] = []
    try:
        result = []
        for label, net in (("lan", LAN), ("wan", WAN)):
            name = f"sg{SLOT}{label}"
            _remove(name)  # a killed run's leftovers
            made.append(name)
            host, client = (str(a) for a in list(net.hosts())[:2])
            _ip("netns", "add", name)
            _ip("link", "add", f"{name}-h", "type", "veth", "peer", "name", f"{name}-n")
            _ip("link", "set", f"{name}-n", "netns", name)
            _ip("addr", "add", f"{host}/{net.prefixlen}", "dev", f"{name}-h")
            _ip("link", "set", f"{name}-h", "up")
            _ip("-n", name, "addr", "add", f"{client}/{net.prefixlen}", "dev", f"{name}-n")
            _ip("-n", name, "link", "set", f"{name}-n", "up")
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "route", "add", "default", "via", host)
            result.append(Side(name, host, client))
        yield result[0], result[1]
    finally:
        for name in made:
            _remove(name)


# Run inside a namespace: a TLS request with SNI/Host = the stack's name to the published
# port, printing the stand-in's echo (what it understood about the client).
ECHO = """
import http.client, json, socket, ssl, sys
address, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=sys.argv[4])
raw = socket.create_connection((address, port), timeout=30)
conn = http.client.HTTPSConnection(name, port, context=ctx)
conn.sock = ctx.wrap_socket(raw, server_hostname=name)
conn.request("GET", "/__standin/echo")
print(conn.getresponse().read().decode())
"""


def test_lan_and_internet_clients_get_their_url(
    make_stack: StackFactory, sides: tuple[Side, Side]
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
    ca = str(stack.directory / "tls" / "ca.pem")
    public = f"https://{DOMAIN}:{HTTPS_PORT}"

    # Real client addresses, not a gateway's: the NAT keeps them, the proxy forwards them.
    for side in (lan, wan):
        run = side.run(sys.executable, "-c", ECHO, lan.host_address, str(HTTPS_PORT), DOMAIN, ca)
        assert run.returncode == 0, run.stderr
        echo = json.loads(run.stdout)
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
        outcomes[side.namespace] = checks["jellyfin.lan-url"]["details"]["local_address"]
    assert outcomes == {lan.namespace: lan_url, wan.namespace: public}
