"""A client in a network namespace of its own, the way a remote client arrives.

A veth pair joins the namespace to the host: the host end takes the first address of the
test's subnet, the client the second, and the client routes everything through the host
end. A connection from the namespace to a port a container publishes on the host end's
address comes in from outside, so the engine's NAT forwards it with the client's own
address kept (a connection made on the host itself goes through docker-proxy instead,
which shows the network's gateway). IPv4 and IPv6 alike; IPv6 needs the engine's
`"ip6tables": true` and the host's IPv6 forwarding (the engine turns it on).

The namespace and the pair are removed on leaving the context, on failure too; a name left
by a killed run is removed before it is made again. Names are per test slot, so two runs
on one machine never share one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IPV6_FORWARDING = Path("/proc/sys/net/ipv6/conf/all/forwarding")
# An interface name holds at most 15 characters: the namespace's name plus "-h"/"-n".
MAX_NAME = 13


class NamespaceError(Exception):
    """The namespace could not be made (the message says what the host lacks)."""


@dataclass(frozen=True)
class ClientNamespace:
    name: str
    host_address: str  # the host end of the veth pair
    client_address: str  # inside the namespace

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace (output captured, never raises on failure)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise NamespaceError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def remove_namespace(name: str) -> None:
    """Remove the namespace and the host end of its pair; absent ones are fine."""
    for args in (["netns", "del", name], ["link", "del", f"{name}-h"]):
        subprocess.run(["ip", *args], capture_output=True, check=False, timeout=30)


@contextlib.contextmanager
def client_namespace(
    name: str, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> Iterator[ClientNamespace]:
    if len(name) > MAX_NAME:
        raise ValueError(f"namespace name {name!r} is longer than {MAX_NAME} characters")
    if subnet.version == 6 and IPV6_FORWARDING.read_text().strip() != "1":
        raise NamespaceError(
            f"{IPV6_FORWARDING} is 0: the host does not forward IPv6 (the engine sets it "
            'with "ipv6": true in daemon.json; see tests/infra/engine.sh)'
        )
    # The first two hosts (never list(hosts()): a /64 has 2**64 of them).
    host, client = str(subnet.network_address + 1), str(subnet.network_address + 2)
    # No duplicate address detection: a tentative address cannot be used for a second or two.
    flags = ["nodad"] if subnet.version == 6 else []
    remove_namespace(name)  # a killed run's leftovers
    # Another run in the same slot, or a host that uses the range: never take its traffic.
    taken = _host_overlaps(subnet)
    if taken:
        raise NamespaceError(
            f"{subnet} overlaps the host's {', '.join(taken)}: another test run holds "
            "this slot (STACKGEN_TEST_SLOT), or the host uses the range"
        )
    try:
        _ip("netns", "add", name)
        _ip("link", "add", f"{name}-h", "type", "veth", "peer", "name", f"{name}-n")
        _ip("link", "set", f"{name}-n", "netns", name)
        _ip("addr", "add", f"{host}/{subnet.prefixlen}", "dev", f"{name}-h", *flags)
        _ip("link", "set", f"{name}-h", "up")
        _ip("-n", name, "addr", "add", f"{client}/{subnet.prefixlen}", "dev", f"{name}-n", *flags)
        _ip("-n", name, "link", "set", f"{name}-n", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        family = "-6" if subnet.version == 6 else "-4"
        _ip("-n", name, family, "route", "add", "default", "via", host)
        yield ClientNamespace(name, host, client)
    finally:
        remove_namespace(name)


# Remote clients' ranges: 198.18.0.0/15, reserved for benchmarks (RFC 2544), one /24 per
# slot and one /28 per role in it. Not the documentation ranges (TEST-NET-1..3): hosts like
# ours use those for real (this machine's own link and its package mirror's address), and a
# namespace's route to a range captures the host's traffic to it while the test runs.
CLIENTS = ipaddress.ip_network("198.18.0.0/15")
_ROLES = ("attacker", "bystander", "internet", "swarm-banned")


def client_range(slot: int, role: str) -> ipaddress.IPv4Network:
    """The /28 of one kind of remote client (`_ROLES`) in a test slot."""
    return ipaddress.ip_network(f"198.18.{slot}.{16 * _ROLES.index(role)}/28")


def attacker_range(slot: int) -> ipaddress.IPv4Network:
    """The attacker's range of a test slot."""
    return client_range(slot, "attacker")


def bystander_range(slot: int) -> ipaddress.IPv4Network:
    """The bystander's range of a test slot."""
    return client_range(slot, "bystander")


def _host_overlaps(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    """The host's routes and addresses that overlap `subnet` (the default route aside)."""
    family = "-6" if subnet.version == 6 else "-4"
    found = []
    for what, key in (("route", "dst"), ("addr", None)):
        shown = subprocess.run(
            ["ip", "-j", family, what, "show"], capture_output=True, text=True, check=True,
            timeout=30,
        )  # fmt: skip
        for entry in json.loads(shown.stdout or "[]"):
            if key is not None:
                places = [entry.get(key, "default")]
            else:
                places = [f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", [])]
            for place in places:
                if place == "default":
                    continue
                network = ipaddress.ip_network(place, strict=False)
                if network.version == subnet.version and network.overlaps(subnet):
                    found.append(f"{what} {place}")
    return found


@contextlib.contextmanager
def attacker_and_bystander(slot: int) -> Iterator[tuple[ClientNamespace, ClientNamespace]]:
    """Two remote clients of a test slot, each in its own namespace: A (the attacker) and
    B (a bystander), so a proxy sees two different client addresses."""
    with contextlib.ExitStack() as stack:
        attacker = stack.enter_context(client_namespace(f"sg{slot}atk", attacker_range(slot)))
        bystander = stack.enter_context(client_namespace(f"sg{slot}bys", bystander_range(slot)))
        yield attacker, bystander


# Run inside a namespace: requests over verified TLS, one connection each, printing
# [status, Retry-After, body] per request as JSON.
_REQUESTS = """
import http.client, json, socket, ssl, sys
address, port, name, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
out = []
for spec in json.loads(sys.argv[5]):
    raw = socket.create_connection((address, port), timeout=30)
    conn = http.client.HTTPSConnection(name, port, context=ctx)
    conn.sock = ctx.wrap_socket(raw, server_hostname=name)
    body = spec.get("json")
    headers = dict(spec.get("headers", {}))
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    conn.request(spec["method"], spec["path"], body=body, headers=headers)
    response = conn.getresponse()
    data = response.read(4096)
    out.append([response.status, response.getheader("Retry-After"), data.decode("latin-1")])
    conn.close()
print(json.dumps(out))
"""


def https_requests(
    client: ClientNamespace,
    address: str,
    port: int,
    name: str,
    ca_file: Path,
    specs: list[dict[str, object]],
) -> list[tuple[int, str | None, str]]:
    """Requests from inside the namespace over verified TLS, one connection each: each spec
    is {"method", "path", "headers"?, "json"?}; (status, Retry-After, body) for each."""
    run = client.run(
        sys.executable, "-c", _REQUESTS, address, str(port), name, str(ca_file), json.dumps(specs)
    )
    assert run.returncode == 0, run.stderr
    return [(status, retry, body) for status, retry, body in json.loads(run.stdout)]


# Run inside a namespace: a TLS request with SNI/Host = the stack's name to a published
# port, printing the stand-in's echo (what it understood about the client).
_ECHO = """
import http.client, json, socket, ssl, sys
address, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=sys.argv[4])
raw = socket.create_connection((address, port), timeout=30)
conn = http.client.HTTPSConnection(name, port, context=ctx)
conn.sock = ctx.wrap_socket(raw, server_hostname=name)
conn.request("GET", sys.argv[5])
print(conn.getresponse().read().decode())
"""


def standin_echo(
    client: ClientNamespace,
    address: str,
    port: int,
    name: str,
    ca_file: Path,
    path: str = "/__standin/echo",
) -> dict[str, Any]:
    """The Jellyfin stand-in's echo, asked over verified TLS from inside the namespace."""
    run = client.run(sys.executable, "-c", _ECHO, address, str(port), name, str(ca_file), path)
    if run.returncode != 0:
        raise AssertionError(f"echo from {client.name} to [{address}]:{port}: {run.stderr}")
    echo: dict[str, Any] = json.loads(run.stdout)
    return echo
