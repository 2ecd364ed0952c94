"""`[access]` through real proxies: two remote clients in network namespaces of
their own, A (the attacker) and B (a bystander), reach the published port through the
engine's NAT, so each proxy sees each client's own address. A fails logins until the
proxy answers 429 with Retry-After, while B logs in and streams; `/metrics` is refused to a
client outside `access.lan`.

Caddy and Apache have no per-client request limit in their official images: they are
declared here (NO_RATE_LIMIT), and the test asserts that `check` says so, never that they
limit anything.
"""

from __future__ import annotations

import json
import sys
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
from integration.netns import (
    ClientNamespace,
    attacker_and_bystander,
    bystander_range,
    https_requests,
)

from stackgen.proxies import available, registry

BYSTANDER = bystander_range(SLOT)
USERS = "alice:correct horse"
LIMITED = [p for p in available() if not registry.spec(p).no_rate_limit]
NO_RATE_LIMIT = [p for p in available() if registry.spec(p).no_rate_limit]


def _requests(
    client: ClientNamespace, stack: Stack, address: str, specs: list[dict[str, object]]
) -> list[tuple[int, str | None, str]]:
    ca = stack.directory / "tls" / "ca.pem"
    return https_requests(client, address, HTTPS_PORT, DOMAIN, ca, specs)


@pytest.fixture
def sides() -> Iterator[tuple[ClientNamespace, ClientNamespace]]:
    with attacker_and_bystander(SLOT) as both:
        yield both


def _stack(
    make_stack: StackFactory,
    proxy: str,
    address: str,
    subpath: str,
    access: dict[str, object] | None = None,
) -> Stack:
    stack = make_stack(
        proxy,
        subpath=subpath,
        tls="internal",
        start=False,
        config={"ports": {"listen_address": address}, "access": access or {}},
    )
    add_standin_environment(stack, {"STANDIN_USERS": USERS})
    stackgen("up", "--dir", str(stack.directory), "--timeout", "180")
    return stack


def _login(base: str, password: str, path: str = "/Users/AuthenticateByName") -> dict[str, object]:
    return {
        "method": "POST",
        "path": f"{base}{path}",
        "json": {"Username": "alice", "Pw": password},
    }


@pytest.mark.parametrize("subpath", ["", "/jellyfin"])
@pytest.mark.parametrize("proxy", LIMITED)
def test_failed_logins_get_429_for_the_attacker_only(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    proxy: str,
    subpath: str,
) -> None:
    attacker, bystander = sides
    address = attacker.host_address
    # The rate limit alone: the ban list's feeder would ban the attacker after 5 failed
    # logins (403 on every route), which tests/integration/test_ban.py tests.
    stack = _stack(make_stack, proxy, address, subpath, {"ban": {"feeder": False}})
    access = stack.config.access
    # Every spelling counts against the same address: case, /emby, a trailing slash.
    spellings = [
        "/Users/AuthenticateByName",
        "/users/authenticatebyname",
        "/emby/Users/AuthenticateByName",
        "/USERS/AUTHENTICATEBYNAME/",
    ]
    attempts = access.window_limit + 2
    answers = _requests(
        attacker,
        stack,
        address,
        [_login(subpath, "guess", spellings[i % len(spellings)]) for i in range(attempts)],
    )
    statuses = [status for status, _, _ in answers]
    assert statuses[0] == 401, answers  # Jellyfin's own answer to a wrong password
    refused = [(status, retry) for status, retry, _ in answers if status == 429]
    assert refused, statuses
    assert all(retry and int(retry) > 0 for _, retry in refused), refused
    assert statuses.index(429) <= access.window_limit, statuses
    # Once refused, the attacker stays refused on the other login routes too.
    later = _requests(
        attacker, stack, address, [_login(subpath, "guess", "/QuickConnect/Initiate")]
    )
    assert later[0][0] == 429, later

    # The bystander is untouched: logs in, asks for itself, streams.
    login = _requests(bystander, stack, address, [_login(subpath, "correct horse")])
    assert login[0][0] == 200, login
    token = json.loads(login[0][2])["AccessToken"]
    item = "0123456789abcdef0123456789abcdef"
    after = _requests(
        bystander,
        stack,
        address,
        [
            {"method": "GET", "path": f"{subpath}/Users/Me", "headers": {"X-Emby-Token": token}},
            {
                "method": "GET",
                "path": f"{subpath}/Videos/{item}/stream?static=true&api_key={token}",
                "headers": {"Range": "bytes=0-1023"},
            },
        ],
    )
    assert [status for status, _, _ in after] == [200, 206], after
    # And the attacker's other routes are not limited.
    other = _requests(attacker, stack, address, [{"method": "GET", "path": f"{subpath}/health"}])
    assert other[0][0] == 200, other


@pytest.mark.parametrize("proxy", NO_RATE_LIMIT)
def test_a_proxy_without_the_means_says_so_at_check(make_stack: StackFactory, proxy: str) -> None:
    stack = make_stack(proxy, tls="internal", start=False)
    check = stackgen("check", "--dir", str(stack.directory), check=False)
    assert (
        f"access.rate_limit: {proxy} does not limit login attempts" in check.stdout + check.stderr
    )


@pytest.mark.parametrize("proxy", available())
def test_metrics_and_the_wizard_are_refused_outside_the_lan(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    proxy: str,
) -> None:
    attacker, bystander = sides
    address = attacker.host_address
    # The bystander's range is the LAN here; the attacker is outside it.
    stack = _stack(make_stack, proxy, address, "", {"lan": [str(BYSTANDER)]})
    paths = ["/metrics", "/Metrics", "/emby/metrics", "/Startup/User"]
    specs: list[dict[str, object]] = [{"method": "GET", "path": p} for p in paths]
    refused = _requests(attacker, stack, address, specs)
    assert [status for status, _, _ in refused] == [403] * len(paths), refused
    # The LAN client passes the proxy (the stand-in has no such routes: 404).
    passed = _requests(bystander, stack, address, specs)
    assert [status for status, _, _ in passed] == [404] * len(paths), passed
    # Other routes answer the outsider as usual.
    fine = _requests(attacker, stack, address, [{"method": "GET", "path": "/System/Info/Public"}])
    assert fine[0][0] == 200, fine


@pytest.mark.parametrize("proxy", ["nginx", "caddy"])
def test_verify_lists_the_exposure_of_a_default_stack(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    proxy: str,
) -> None:
    """`verify` from outside the LAN, on a default stack: what answers without a token, and
    whether logins are limited, each with the setting that closes it."""
    attacker, _ = sides
    address = attacker.host_address
    stack = _stack(make_stack, proxy, address, "")
    run = attacker.run(
        sys.executable,
        "-c",
        "from stackgen.cli import main; main()",
        "verify",
        "--dir",
        str(stack.directory),
        "--json",
        "--only",
        "exposure",
    )
    report = json.loads(run.stdout)
    statuses = {c["id"]: c["status"] for c in report["checks"] if c["id"].startswith("exposure.")}
    hints = {c["id"]: c.get("hint", "") for c in report["checks"]}
    limited = proxy in LIMITED
    assert statuses == {
        "exposure.metrics": "pass",  # refused by access.lan_only (403)
        "exposure.wizard": "pass",
        "exposure.public-users": "warn",  # the stand-in lists alice, as Jellyfin would
        "exposure.anonymous-media": "warn",  # Jellyfin's default, no gate in front
        "exposure.login-rate-limit": "pass" if limited else "warn",
        **({"exposure.forwarded-for": "pass"} if limited else {}),
    }, report["checks"]
    assert "access.allow" in hints["exposure.anonymous-media"]
    if not limited:
        assert "access.rate_limit" in hints["exposure.login-rate-limit"]
        assert "exposure.forwarded-for" in {s["id"] for s in report["skipped"]}
    metrics = next(c for c in report["checks"] if c["id"] == "exposure.metrics")
    assert metrics["details"]["status"] == 403


@pytest.mark.parametrize("proxy", available())
def test_the_allow_list_admits_only_its_ranges(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    proxy: str,
) -> None:
    attacker, bystander = sides
    address = attacker.host_address
    # up's own wait for Jellyfin comes from this machine, to the published address: it
    # arrives from that address (the host end of the attacker's pair), allowed as a /32,
    # or through docker-proxy from a gateway inside 172.16.0.0/12.
    allow = [str(BYSTANDER), f"{address}/32", "172.16.0.0/12"]
    stack = _stack(make_stack, proxy, address, "", {"allow": allow})
    specs: list[dict[str, object]] = [
        {"method": "GET", "path": "/System/Info/Public"},
        {"method": "GET", "path": "/web/"},
    ]
    refused = _requests(attacker, stack, address, specs)
    assert [status for status, _, _ in refused] == [403, 403], refused
    admitted = _requests(bystander, stack, address, specs)
    assert [status for status, _, _ in admitted] == [200, 200], admitted
