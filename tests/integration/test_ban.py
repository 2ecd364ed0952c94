"""The ban list (`access.ban`) through real proxies: two remote clients in network
namespaces of their own, A (the attacker) and B (a bystander), reach the published port
through the engine's NAT, so each proxy sees each client's own address. `stackgen ban add A`
gets A refused (403) by the proxy itself while B keeps working; `stackgen ban remove A`
lets A back in. Traefik has no deny file yet: declared here, never omitted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import sys
import time
from collections.abc import Iterator

import pytest
from integration.conftest import (
    DOMAIN,
    HTTPS_PORT,
    SLOT,
    Stack,
    StackFactory,
    add_standin_environment,
    stackgen,
)
from integration.netns import ClientNamespace, client_namespace

from stackgen.proxies import available

# Per slot; documentation ranges only (TEST-NET-2 and TEST-NET-3): nothing real lives there.
ATTACKER = ipaddress.ip_network(f"198.51.100.{16 * SLOT}/28")
BYSTANDER = ipaddress.ip_network(f"203.0.113.{16 * SLOT}/28")
# How long a change may take to reach the proxy (its graceful reload) in the test.
APPLIED_WITHIN = 10.0
WITHOUT_DENY_FILE = {
    "traefik": "Traefik v3 has no deny-list middleware, and the ban list's Traefik "
    "rendering (a ClientIP router refusing with 403) is not built yet",
}

# Run inside a namespace: one GET over verified TLS, printing the status.
_CLIENT = """
import http.client, socket, ssl, sys
address, port, name, ca, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection((address, port), timeout=30)
conn = http.client.HTTPSConnection(name, port, context=ctx)
conn.sock = ctx.wrap_socket(raw, server_hostname=name)
conn.request("GET", path)
print(conn.getresponse().status)
"""


def _status(client: ClientNamespace, stack: Stack, address: str) -> int:
    ca = stack.directory / "tls" / "ca.pem"
    path = "/System/Info/Public"
    run = client.run(sys.executable, "-c", _CLIENT, address, str(HTTPS_PORT), DOMAIN, str(ca), path)
    assert run.returncode == 0, run.stderr
    return int(run.stdout)


def _until(client: ClientNamespace, stack: Stack, address: str, wanted: int) -> list[int]:
    """Statuses seen until `wanted` (last) or APPLIED_WITHIN seconds passed: bounded."""
    seen = [_status(client, stack, address)]
    deadline = time.monotonic() + APPLIED_WITHIN
    while seen[-1] != wanted and time.monotonic() < deadline:
        time.sleep(0.25)
        seen.append(_status(client, stack, address))
    return seen


@pytest.fixture
def sides() -> Iterator[tuple[ClientNamespace, ClientNamespace]]:
    with contextlib.ExitStack() as stack:
        attacker = stack.enter_context(client_namespace(f"sg{SLOT}atk", ATTACKER))
        bystander = stack.enter_context(client_namespace(f"sg{SLOT}bys", BYSTANDER))
        yield attacker, bystander


@pytest.mark.parametrize(
    "proxy",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=WITHOUT_DENY_FILE[p]))
        if p in WITHOUT_DENY_FILE
        else p
        for p in available()
    ],
)
def test_ban_add_refuses_the_attacker_only_and_remove_lets_it_back(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    proxy: str,
) -> None:
    attacker, bystander = sides
    address = attacker.host_address
    stack = make_stack(
        proxy,
        tls="internal",
        start=False,
        config={"ports": {"listen_address": address}},
    )
    add_standin_environment(stack, {"STANDIN_USERS": "alice:correct horse"})
    folder = str(stack.directory)
    stackgen("up", "--dir", folder, "--timeout", "180")
    assert _status(attacker, stack, address) == 200

    stackgen("ban", "add", attacker.client_address, "--dir", folder)
    listed = stackgen("ban", "list", "--dir", folder, "--json")
    assert json.loads(listed.stdout) == [attacker.client_address]
    refused = _until(attacker, stack, address, 403)
    assert refused[-1] == 403, refused
    assert _status(bystander, stack, address) == 200

    stackgen("ban", "remove", attacker.client_address, "--dir", folder)
    assert json.loads(stackgen("ban", "list", "--dir", folder, "--json").stdout) == []
    back = _until(attacker, stack, address, 200)
    assert back[-1] == 200, back
    assert _status(bystander, stack, address) == 200
