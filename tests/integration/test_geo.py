"""`access.geo` through real proxies: a country database written by the test (tests/mmdb.py,
never a binary in the repository) places the bystander's range in an admitted country
(FR) and the attacker's in another (CN), among 20,000 other ranges of the admitted country
(a realistic size, so each proxy loads a list as long as a real country's). Each client is
in a network namespace of its own and reaches the published port through the engine's NAT,
so the proxy sees its own address: the attacker gets 403 from the proxy on every route, the
bystander is served. Then the database changes (a monthly update) and `stackgen reload`
applies it: the attacker's range, now in the admitted country, is served too.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.conftest import (
    DOMAIN,
    HTTPS_PORT,
    SLOT,
    Stack,
    StackFactory,
    stackgen,
)
from integration.netns import (
    ClientNamespace,
    attacker_and_bystander,
    attacker_range,
    bystander_range,
    https_requests,
)

from stackgen.proxies import available
from stackgen.testing.mmdb import many_networks, write_database

ATTACKER = attacker_range(SLOT)
BYSTANDER = bystander_range(SLOT)
# Ranges of the admitted country beside the bystander's: a list of a large country's order
# of size for every proxy to load, within Apache's limit (25,000: docs/access.md).
COUNTRY_SIZE = 20_000


def _database(path: Path, attacker_country: str) -> Path:
    networks = many_networks(COUNTRY_SIZE, "FR")
    networks[BYSTANDER] = "FR"
    networks[ATTACKER] = attacker_country
    networks[ipaddress.ip_network("2001:db8:f::/48")] = "FR"
    path.write_bytes(write_database(networks))
    return path


@pytest.fixture
def sides() -> Iterator[tuple[ClientNamespace, ClientNamespace]]:
    with attacker_and_bystander(SLOT) as both:
        yield both


def _requests(client: ClientNamespace, stack: Stack, address: str, paths: list[str]) -> list[int]:
    ca = stack.directory / "tls" / "ca.pem"
    specs: list[dict[str, object]] = [{"method": "GET", "path": p} for p in paths]
    answers = https_requests(client, address, HTTPS_PORT, DOMAIN, ca, specs)
    return [status for status, _, _ in answers]


# How long a reloaded allow list may take to apply. `stackgen reload` returns once the proxy
# was told: nginx, HAProxy and Apache then switch workers; Traefik's file provider applies
# the composed folder by itself, at most one change per 2 s (its providers' throttle).
APPLIED_WITHIN = 10.0


def _until(
    client: ClientNamespace, stack: Stack, address: str, path: str, wanted: int
) -> list[int]:
    """Statuses until `wanted` (last) or APPLIED_WITHIN seconds passed: bounded."""
    seen = _requests(client, stack, address, [path])
    deadline = time.monotonic() + APPLIED_WITHIN
    while seen[-1] != wanted and time.monotonic() < deadline:
        time.sleep(0.25)
        seen += _requests(client, stack, address, [path])
    return seen


CASES = [(proxy, "") for proxy in available()] + [("traefik", "/jellyfin")]


@pytest.mark.parametrize(("proxy", "subpath"), CASES)
def test_only_the_admitted_country_reaches_the_site(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    tmp_path: Path,
    proxy: str,
    subpath: str,
) -> None:
    attacker, bystander = sides
    address = attacker.host_address
    database = _database(tmp_path / "country.mmdb", attacker_country="CN")
    # up's own wait for Jellyfin comes from this machine: from the host end of the
    # attacker's pair (a /32 of the LAN here), or through docker-proxy from a gateway in
    # 172.16.0.0/12. Neither client is on the LAN: only the database admits the bystander.
    access = {
        "lan": [f"{address}/32", "172.16.0.0/12"],
        "geo": {"countries": ["FR"], "database": str(database)},
    }
    stack = make_stack(
        proxy,
        subpath=subpath,
        tls="internal",
        start=False,
        config={"ports": {"listen_address": address}, "access": access},
    )
    stackgen("up", "--dir", str(stack.directory), "--timeout", "180")
    paths = [f"{subpath}/System/Info/Public", f"{subpath}/web/", f"{subpath}/Users/Public"]
    assert _requests(attacker, stack, address, paths) == [403, 403, 403]
    assert _requests(bystander, stack, address, paths) == [200, 200, 200]

    # The database is updated: the attacker's range is now in the admitted country. A
    # reload re-reads it, and the proxy applies the new file gracefully.
    _database(database, attacker_country="FR")
    stackgen("reload", "--dir", str(stack.directory))
    seen = _until(attacker, stack, address, paths[0], 200)
    assert seen[-1] == 200, seen
    assert _requests(bystander, stack, address, paths[:1]) == [200]
