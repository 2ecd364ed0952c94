"""The ban list (`access.ban`) through real proxies: two remote clients in network
namespaces of their own, A (the attacker) and B (a bystander), reach the published port
through the engine's NAT, so each proxy sees each client's own address. `stackgen ban add A`
gets A refused (403) by the proxy itself while B keeps working; `stackgen ban remove A`
lets A back in, for every proxy.

The feeder (`access.ban.feeder`, on by default): A fails logins until the in-stack fail2ban
bans it from the stand-in's file log; the proxy refuses A within APPLIED_WITHIN seconds of
the last failed login's log line, while B logs in and streams throughout (one stream kept
open across the reload); `stackgen ban remove A` lifts fail2ban's ban. With Traefik fail2ban
writes plain addresses, and a hostile file there changes no route and never stops Traefik.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

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
    client_namespace,
    https_requests,
)

from stackgen import feeder
from stackgen.proxies import available
from stackgen.proxies.registry import get_proxy
from stackgen.writer import write_atomic

USERS = "alice:correct horse"
ITEM = "0123456789abcdef0123456789abcdef"
# B's stream kept open across the feeder's reload: this many bytes, read at about
# STREAM_RATE bytes a second (so it lasts longer than the ban takes).
STREAM_BYTES = 24 * 1024 * 1024
STREAM_RATE = 2 * 1024 * 1024
# How long a change may take to reach the proxy (its graceful reload) in the test.
APPLIED_WITHIN = 10.0
# access.ban.proxy_log: the proxies that send their failed logins (the others declare why not
# in ProxySpec.no_login_log; here a strict xfail, never omitted).
WITHOUT_LOGIN_LOG = {
    p: get_proxy(p).spec.no_login_log for p in available() if get_proxy(p).spec.no_login_log
}
# A token the attacker sends with each failed login, in the query string and a header: it
# must never reach the feeder's line.
SECRET = "5ec2e7d0c0ffee5ec2e7d0c0ffee5ec2"

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


# Caddy's reload closes the connections that arrive while it switches servers, without an
# answer (docs/flakes.md, "Caddy: connections lost at a reload"; test_reload.py declares it
# as a strict xfail). With Caddy the attacker therefore asks once the proxy's file watcher
# says the reload that applies the change is done, never across it; every other proxy is
# polled across its reload, and any unanswered request fails the test.
ASK_AFTER_RELOAD = {"caddy"}
RELOADED = "watch-files: reloaded"


def _status(
    client: ClientNamespace, stack: Stack, address: str, path: str = "/System/Info/Public"
) -> int:
    ca = stack.directory / "tls" / "ca.pem"
    run = client.run(sys.executable, "-c", _CLIENT, address, str(HTTPS_PORT), DOMAIN, str(ca), path)
    assert run.returncode == 0, run.stderr
    return int(run.stdout)


def _reloads(stack: Stack) -> int:
    """How many graceful reloads the proxy's file watcher has finished so far."""
    logs = stack.compose("logs", "--no-color", "--no-log-prefix", stack.config.proxy)
    assert logs.returncode == 0, logs.stderr
    return logs.stdout.count(RELOADED)


# Run inside a namespace: one ranged GET read slowly to its end, printing status and bytes.
_SLOW_STREAM = """
import http.client, socket, ssl, sys, time
address, port, name, ca, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
size, rate = int(sys.argv[6]), int(sys.argv[7])
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection((address, port), timeout=30)
conn = http.client.HTTPSConnection(name, port, context=ctx)
conn.sock = ctx.wrap_socket(raw, server_hostname=name)
conn.request("GET", path, headers={"Range": f"bytes=0-{size - 1}"})
response = conn.getresponse()
total, chunk = 0, 64 * 1024
while True:
    data = response.read(chunk)
    if not data:
        break
    total += len(data)
    time.sleep(len(data) / rate)
print(response.status, total)
"""


def _until(
    client: ClientNamespace,
    stack: Stack,
    address: str,
    wanted: int,
    path: str = "/System/Info/Public",
    *,
    reloads_before: int | None = None,
) -> list[int]:
    """Statuses seen until `wanted` (last) or APPLIED_WITHIN seconds passed: bounded. With
    a proxy in ASK_AFTER_RELOAD, one status, asked once the watcher has finished a reload
    after `reloads_before` (`_reloads` taken before the change)."""
    deadline = time.monotonic() + APPLIED_WITHIN
    if stack.config.proxy in ASK_AFTER_RELOAD:
        assert reloads_before is not None, "ask after which reload?"
        while _reloads(stack) <= reloads_before and time.monotonic() < deadline:
            time.sleep(0.25)
        return [_status(client, stack, address, path)]
    seen = [_status(client, stack, address, path)]
    while seen[-1] != wanted and time.monotonic() < deadline:
        time.sleep(0.25)
        seen.append(_status(client, stack, address, path))
    return seen


@pytest.fixture
def sides() -> Iterator[tuple[ClientNamespace, ClientNamespace]]:
    with attacker_and_bystander(SLOT) as both:
        yield both


def _started(
    make_stack: StackFactory, proxy: str, address: str, ban: dict[str, object] | None = None
) -> Stack:
    """A stack published on `address` only, whose stand-in knows USERS, brought up by
    `stackgen up` (the feeder and the file watcher included); `ban`: `[access.ban]`."""
    config: dict[str, object] = {"ports": {"listen_address": address}}
    if ban is not None:
        config["access"] = {"ban": ban}
    stack = make_stack(proxy, tls="internal", start=False, config=config)
    add_standin_environment(stack, {"STANDIN_USERS": USERS})
    stackgen("up", "--dir", str(stack.directory), "--timeout", "180")
    return stack


@pytest.mark.parametrize("proxy", available())
def test_ban_add_refuses_the_attacker_only_and_remove_lets_it_back(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    proxy: str,
) -> None:
    attacker, bystander = sides
    address = attacker.host_address
    stack = _started(make_stack, proxy, address)
    folder = str(stack.directory)
    assert _status(attacker, stack, address) == 200

    reloads = _reloads(stack)
    stackgen("ban", "add", attacker.client_address, "--dir", folder)
    listed = stackgen("ban", "list", "--dir", folder, "--json")
    assert json.loads(listed.stdout) == {"user": [attacker.client_address], "feeder": []}
    refused = _until(attacker, stack, address, 403, reloads_before=reloads)
    assert refused[-1] == 403, refused
    assert _status(bystander, stack, address) == 200

    reloads = _reloads(stack)
    stackgen("ban", "remove", attacker.client_address, "--dir", folder)
    assert json.loads(stackgen("ban", "list", "--dir", folder, "--json").stdout) == {
        "user": [],
        "feeder": [],
    }
    back = _until(attacker, stack, address, 200, reloads_before=reloads)
    assert back[-1] == 200, back
    assert _status(bystander, stack, address) == 200


def _requests(
    client: ClientNamespace, stack: Stack, address: str, specs: list[dict[str, object]]
) -> list[tuple[int, str | None, str]]:
    return https_requests(
        client, address, HTTPS_PORT, DOMAIN, stack.directory / "tls" / "ca.pem", specs
    )


def _login(name: str, password: str) -> dict[str, object]:
    return {
        "method": "POST",
        "path": "/Users/AuthenticateByName",
        "json": {"Username": name, "Pw": password},
    }


def _bystander_streams(bystander: ClientNamespace, stack: Stack, address: str) -> str:
    """B logs in, asks for itself and reads the start of a stream: its token."""
    login = _requests(bystander, stack, address, [_login("alice", "correct horse")])
    assert login[0][0] == 200, login
    token = str(json.loads(login[0][2])["AccessToken"])
    after = _requests(
        bystander,
        stack,
        address,
        [
            {"method": "GET", "path": "/Users/Me", "headers": {"X-Emby-Token": token}},
            {
                "method": "GET",
                "path": f"/Videos/{ITEM}/stream?static=true&api_key={token}",
                "headers": {"Range": "bytes=0-1023"},
            },
        ],
    )
    assert [status for status, _, _ in after] == [200, 206], after
    return token


@pytest.mark.parametrize("proxy", available())
def test_the_feeder_bans_an_attacker_after_failed_logins_and_remove_lifts_it(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    proxy: str,
) -> None:
    attacker, bystander = sides
    address = attacker.host_address
    stack = _started(make_stack, proxy, address)
    folder = str(stack.directory)
    # fail2ban runs as the stack's user, never root (it writes a file, no iptables).
    uid = stack.compose("exec", "-T", "fail2ban", "id", "-u")
    assert uid.returncode == 0, uid.stderr
    assert uid.stdout.strip() == str(stack.config.uid) != "0", uid.stdout
    failures = stack.config.access.ban.max_failures
    # Every attempt reaches Jellyfin: the default fits in the rate limit's burst.
    assert failures <= stack.config.access.login_burst + 1
    assert _status(attacker, stack, address) == 200
    token = _bystander_streams(bystander, stack, address)

    # B's stream, open before the ban and read slowly until well after the proxy's reload.
    ca = str(stack.directory / "tls" / "ca.pem")
    path = f"/Videos/{ITEM}/stream?static=true&api_key={token}"
    stream = subprocess.Popen(
        [
            *("ip", "netns", "exec", bystander.name, sys.executable, "-c", _SLOW_STREAM),
            *(address, str(HTTPS_PORT), DOMAIN, ca, path, str(STREAM_BYTES), str(STREAM_RATE)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The attacker's user name names the bystander's address: only the address at the
        # end of Jellyfin's line is banned.
        hostile = f"x (IP: {bystander.client_address})"
        reloads = _reloads(stack)
        logged_before = time.monotonic()  # before the last line is written: an upper bound
        answers = _requests(
            attacker, stack, address, [_login(hostile, "guess") for _ in range(failures)]
        )
        assert [status for status, _, _ in answers] == [401] * failures, answers
        refused = _until(attacker, stack, address, 403, reloads_before=reloads)
        took = time.monotonic() - logged_before
        assert refused[-1] == 403, refused
        assert took <= APPLIED_WITHIN, took
        # The measured bound, for the report (`pytest -rP`).
        print(f"{proxy}: the attacker refused {took:.1f} s after its failed logins began")
        listed = json.loads(stackgen("ban", "list", "--dir", folder, "--json").stdout)
        assert listed == {"user": [], "feeder": [attacker.client_address]}
        # B is untouched, during and after the reload.
        _bystander_streams(bystander, stack, address)
        out, err = stream.communicate(timeout=60)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.communicate()
    assert stream.returncode == 0, err
    assert out.split() == ["206", str(STREAM_BYTES)], out

    reloads = _reloads(stack)
    removed = stackgen("ban", "remove", attacker.client_address, "--dir", folder)
    assert "fail2ban lifted its ban" in removed.stdout + removed.stderr
    back = _until(attacker, stack, address, 200, reloads_before=reloads)
    assert back[-1] == 200, back
    assert json.loads(stackgen("ban", "list", "--dir", folder, "--json").stdout) == {
        "user": [],
        "feeder": [],
    }
    _bystander_streams(bystander, stack, address)


def _fed_lines(stack: Stack) -> list[str]:
    """The receiver's file of the proxy's failed logins, in fail2ban's container."""
    shown = stack.compose("exec", "-T", "fail2ban", "cat", feeder.LOGINS_LOG)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.splitlines()


@pytest.mark.parametrize(
    "proxy",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=WITHOUT_LOGIN_LOG[p]))
        if p in WITHOUT_LOGIN_LOG
        else p
        for p in available()
    ],
)
def test_the_proxy_log_alone_bans_an_attacker_and_a_dead_feeder_blocks_nothing(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    proxy: str,
) -> None:
    attacker, bystander = sides
    address = attacker.host_address
    # Jellyfin's log is not read: only the proxy's lines can ban (the edge-home case).
    ban = {"jellyfin_log": False, "proxy_log": True}
    stack = _started(make_stack, proxy, address, ban)
    folder = str(stack.directory)
    jails = stack.compose(
        "exec", "-T", "fail2ban", "fail2ban-client", "-c", feeder.CONF_PATH, "status"
    )
    assert jails.returncode == 0, jails.stderr
    assert feeder.PROXY_JAIL in jails.stdout and feeder.JAIL not in jails.stdout, jails.stdout
    failures = stack.config.access.ban.max_failures
    assert _status(attacker, stack, address) == 200
    _bystander_streams(bystander, stack, address)

    # Successful logins and every other request are never sent: only B's 200s so far.
    assert _fed_lines(stack) == []
    hostile = {
        **_login("alice", "guess"),
        "path": f"/Users/AuthenticateByName?api_key={SECRET}&ApiKey={SECRET}",
        "headers": {"X-Emby-Token": SECRET, "Authorization": f'MediaBrowser Token="{SECRET}"'},
    }
    reloads = _reloads(stack)
    logged_before = time.monotonic()
    answers = _requests(attacker, stack, address, [hostile] * failures)
    assert [status for status, _, _ in answers] == [401] * failures, answers
    refused = _until(attacker, stack, address, 403, reloads_before=reloads)
    took = time.monotonic() - logged_before
    assert refused[-1] == 403, refused
    assert took <= APPLIED_WITHIN, took
    print(f"{proxy}: the attacker refused {took:.1f} s after its failed logins began")
    lines = _fed_lines(stack)
    assert len(lines) == failures, lines
    for line in lines:
        assert SECRET not in line, line
        assert f" login-failed status=401 client={attacker.client_address} " in line, line
        assert line.endswith(" route=/Users/AuthenticateByName"), line
    listed = json.loads(stackgen("ban", "list", "--dir", folder, "--json").stdout)
    assert listed == {"user": [], "feeder": [attacker.client_address]}
    _bystander_streams(bystander, stack, address)

    reloads = _reloads(stack)
    removed = stackgen("ban", "remove", attacker.client_address, "--dir", folder)
    assert "fail2ban lifted its ban" in removed.stdout + removed.stderr
    back = _until(attacker, stack, address, 200, reloads_before=reloads)
    assert back[-1] == 200, back

    # A dead feeder: the proxy's datagrams are dropped, the site answers as before.
    stopped = stack.compose("stop", "fail2ban")
    assert stopped.returncode == 0, stopped.stderr
    # B fails once (the attacker's bucket of the rate limit is spent), then logs in: the
    # failure's datagram goes to a socket nobody reads.
    started = time.monotonic()
    again = _requests(bystander, stack, address, [hostile])
    assert [status for status, _, _ in again] == [401], again
    token = _bystander_streams(bystander, stack, address)
    took = time.monotonic() - started
    assert token
    assert took < 5.0, took
    assert _status(attacker, stack, address) == 200


def _jail_counts(stack: Stack, jail: str) -> tuple[int, list[str]]:
    """(total failures fail2ban counted, banned addresses) of one jail."""
    shown = stack.compose(
        "exec", "-T", "fail2ban", "fail2ban-client", "-c", feeder.CONF_PATH, "status", jail
    )
    assert shown.returncode == 0, shown.stderr
    total = re.search(r"Total failed:\s+(\d+)", shown.stdout)
    banned = re.search(r"Banned IP list:[ \t]*(.*)", shown.stdout)
    assert total is not None and banned is not None, shown.stdout
    return int(total.group(1)), banned.group(1).split()


@pytest.mark.parametrize(
    "proxy",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=WITHOUT_LOGIN_LOG[p]))
        if p in WITHOUT_LOGIN_LOG
        else p
        for p in available()
    ],
)
def test_both_logs_count_a_failed_login_once_each_never_twice(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
    proxy: str,
) -> None:
    attacker, _ = sides
    address = attacker.host_address
    stack = _started(make_stack, proxy, address, {"jellyfin_log": True, "proxy_log": True})
    failures = stack.config.access.ban.max_failures
    below = [_login("alice", "guess")] * (failures - 1)
    answers = _requests(attacker, stack, address, below)
    assert [status for status, _, _ in answers] == [401] * (failures - 1), answers
    # Each jail sees every one of them (bounded wait for fail2ban's polling), and neither
    # bans: one count per jail, never the two summed.
    deadline = time.monotonic() + APPLIED_WITHIN
    seen: dict[str, tuple[int, list[str]]] = {}
    while time.monotonic() < deadline:
        seen = {jail: _jail_counts(stack, jail) for jail in (feeder.JAIL, feeder.PROXY_JAIL)}
        if all(total == failures - 1 for total, _ in seen.values()):
            break
        time.sleep(0.5)
    assert seen == {feeder.JAIL: (failures - 1, []), feeder.PROXY_JAIL: (failures - 1, [])}
    assert _status(attacker, stack, address) == 200
    # The next one reaches max_failures in both: banned (once, in one deny file).
    reloads = _reloads(stack)
    assert _requests(attacker, stack, address, [_login("alice", "guess")])[0][0] == 401
    refused = _until(attacker, stack, address, 403, reloads_before=reloads)
    assert refused[-1] == 403, refused
    listed = json.loads(stackgen("ban", "list", "--dir", str(stack.directory), "--json").stdout)
    assert listed == {"user": [], "feeder": [attacker.client_address]}


# Run inside a namespace: one GET over HTTP/3 (QUIC, aioquic), printing the status.
_CLIENT_H3 = """
import asyncio, ssl, sys
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration

address, port, name, ca, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.status = asyncio.get_running_loop().create_future()

    def quic_event_received(self, event):
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and not self.status.done():
                self.status.set_result(dict(h3_event.headers)[b":status"].decode())

async def main():
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=name)
    config.load_verify_locations(ca)
    async with connect(address, port, configuration=config, create_protocol=Client) as client:
        stream = client._quic.get_next_available_stream_id()
        client.h3.send_headers(stream, [(b":method", b"GET"), (b":scheme", b"https"),
            (b":authority", name.encode()), (b":path", path.encode())], end_stream=True)
        client.transmit()
        print(await asyncio.wait_for(client.status, 30))

asyncio.run(main())
"""


def _h3_status(client: ClientNamespace, stack: Stack, address: str, path: str) -> int:
    ca = str(stack.directory / "tls" / "ca.pem")
    run = client.run(sys.executable, "-c", _CLIENT_H3, address, str(HTTPS_PORT), DOMAIN, ca, path)
    assert run.returncode == 0, run.stderr
    return int(run.stdout)


def _traefik_container(stack: Stack) -> dict[str, object]:
    """Traefik's container: its id, start time and restart count (a reload or a restart
    would show)."""
    ids = stack.compose("ps", "-q", "traefik").stdout.split()
    assert len(ids) == 1, ids
    inspect = subprocess.run(
        ["docker", "inspect", "--format", "{{json .}}", ids[0]],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    state = json.loads(inspect.stdout)
    return {
        "id": state["Id"],
        "started": state["State"]["StartedAt"],
        "restarts": state["RestartCount"],
    }


# Traefik 3.7 warns about two defaults of its entry points at every start, whatever its
# configuration: not about the files it reads.
_START_NOTICES = ("aliasHeadersStrategy is not configured", "can reject some encoded characters")


def _traefik_complaints(stack: Stack) -> list[str]:
    """Lines of Traefik's own log at warning level or above (its access log is JSON)."""
    logs = stack.compose("logs", "--no-color", "--no-log-prefix", "traefik").stdout
    lines = re.sub(r"\x1b\[[0-9;]*m", "", logs).splitlines()  # Traefik colours its levels
    # Its start is logged at INF in the same format: a log read wrong would find nothing.
    assert any(re.search(r" INF .*Starting provider", line) for line in lines), lines[:20]
    return [
        line
        for line in lines
        if re.search(r" (WRN|ERR|FTL) ", line) and not any(n in line for n in _START_NOTICES)
    ]


def test_traefik_applies_its_deny_file_by_itself_on_every_route_and_protocol(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
) -> None:
    """No restart: the deny file replaced by an atomic rename (stackgen's writer; and a bare
    `rename`, as another writer may do it) is copied into the folder Traefik watches, and
    Traefik applies it on every router of a subpath's site, and over HTTP/3."""
    attacker, bystander = sides
    address = attacker.host_address
    stack = make_stack(
        "traefik",
        tls="internal",
        subpath="/jellyfin",
        config={"ports": {"listen_address": address}, "http3": True},
    )
    proxy = get_proxy("traefik")
    deny = stack.directory / "ban" / "deny.toml"
    # The site's router (under the base path), the login routes' rate-limited router, and
    # the base path's own redirect.
    paths = ["/jellyfin/System/Info/Public", "/jellyfin/Users/AuthenticateByName", "/jellyfin"]
    served = {path: _status(attacker, stack, address, path) for path in paths}
    assert 403 not in served.values(), served
    assert _h3_status(attacker, stack, address, paths[0]) == 200
    before = _traefik_container(stack)

    banned = ipaddress.ip_address(attacker.client_address)
    write_atomic(deny, proxy.deny_file([banned]).encode(), 0o644, (stack.directory,))
    refused = _until(attacker, stack, address, 403, paths[0])
    assert refused[-1] == 403, refused
    for path in paths:
        assert _status(attacker, stack, address, path) == 403, path
        assert _status(bystander, stack, address, path) == served[path], path
    assert _h3_status(attacker, stack, address, paths[0]) == 403
    assert _h3_status(bystander, stack, address, paths[0]) == 200

    # A bare rename over the file, not through stackgen's writer: the empty list again.
    staged = deny.with_name(".deny.toml.new")
    staged.write_text(proxy.deny_file([]))
    os.replace(staged, deny)
    back = _until(attacker, stack, address, 200, paths[0])
    assert back[-1] == 200, back
    assert _h3_status(attacker, stack, address, paths[0]) == 200

    assert _traefik_container(stack) == before  # neither restarted nor recreated
    assert _traefik_complaints(stack) == []


IPV6_CLIENTS = ipaddress.ip_network(f"fd7e:57c2:{SLOT:x}::/64")


@pytest.fixture
def ipv6_client() -> Iterator[ClientNamespace]:
    with client_namespace(f"sg{SLOT}ban6", IPV6_CLIENTS) as client:
        yield client


def test_traefik_bans_an_ipv6_client(
    make_stack: StackFactory, ipv6_client: ClientNamespace
) -> None:
    stack = make_stack("traefik", tls="internal", config={"ipv6": True})
    folder = str(stack.directory)
    address = ipv6_client.host_address
    assert _status(ipv6_client, stack, address) == 200
    stackgen("ban", "add", ipv6_client.client_address, "--dir", folder)
    assert json.loads(stackgen("ban", "list", "--dir", folder, "--json").stdout) == {
        "user": [ipv6_client.client_address],
        "feeder": [],
    }
    refused = _until(ipv6_client, stack, address, 403)
    assert refused[-1] == 403, refused
    stackgen("ban", "remove", ipv6_client.client_address, "--dir", folder)
    back = _until(ipv6_client, stack, address, 200)
    assert back[-1] == 200, back
    assert _traefik_complaints(stack) == []


# What a compromised fail2ban could write in its folder: lines that try to end the TOML
# string or the ClientIP rule, a Go template (Traefik reads its files as templates), ranges,
# bytes that are not text. Only the attacker's address, alone on its line, is an address.
_HOSTILE = (
    '198.51.100.1"]\n[http.routers.evil]\n  rule = "PathPrefix(`/`)"\n  priority = 2000000000\n'
    '  service = "noop@internal"\n  entryPoints = ["websecure"]\n  [http.routers.evil.tls]\n'
    "{bystander}`) || PathPrefix(`/\n"
    "{{{{ .Env }}}}\n"
    "0.0.0.0/0\n"
    "::/0\n"
    "{bystander} \n"
    "{attacker}\n"
)


def test_traefik_a_hostile_feeder_file_changes_no_route_and_never_stops_traefik(
    make_stack: StackFactory,
    sides: tuple[ClientNamespace, ClientNamespace],
) -> None:
    """fail2ban's folder (`banned/`) holding what a compromised feeder could put there: the
    attacker's address among injection attempts bans the attacker only; a pipe, an endless
    file behind a link and a huge file never hold Traefik's container up (the watcher and
    the composer read them bounded), and the watcher still applies the next change."""
    attacker, bystander = sides
    address = attacker.host_address
    stack = make_stack("traefik", tls="internal", config={"ports": {"listen_address": address}})
    proxy = get_proxy("traefik")
    fed = stack.directory / "banned" / str(proxy.fed_file_name)
    paths = ["/System/Info/Public", "/Users/AuthenticateByName", "/"]
    served = {path: _status(bystander, stack, address, path) for path in paths}
    assert 403 not in served.values(), served
    assert _status(attacker, stack, address) == 200
    before = _traefik_container(stack)

    def replace(make: Callable[[Path], None]) -> None:
        staged = fed.with_name(".hostile")
        make(staged)
        os.replace(staged, fed)

    def bystander_unchanged() -> None:
        assert {p: _status(bystander, stack, address, p) for p in paths} == served

    hostile = _HOSTILE.format(attacker=attacker.client_address, bystander=bystander.client_address)
    replace(lambda p: p.write_bytes(hostile.encode() + b"\xff\xfe\x00\n"))
    refused = _until(attacker, stack, address, 403)
    assert refused[-1] == 403, refused
    for path in paths:
        assert _status(attacker, stack, address, path) == 403, path
    bystander_unchanged()

    # A pipe nobody writes (reading it would wait forever): the list is refused, the ban
    # lifted; then a plain file again is applied, so the watcher was not held up.
    replace(os.mkfifo)
    lifted = _until(attacker, stack, address, 200)
    assert lifted[-1] == 200, lifted
    bystander_unchanged()
    replace(lambda p: p.write_text(f"{attacker.client_address}\n"))
    refused = _until(attacker, stack, address, 403)
    assert refused[-1] == 403, refused

    # An endless file behind a link: refused (a link is never followed), the ban lifted.
    replace(lambda p: p.symlink_to("/dev/zero"))
    lifted = _until(attacker, stack, address, 200)
    assert lifted[-1] == 200, lifted
    bystander_unchanged()

    # 64 MiB, the attacker's address first: read up to its bound, the address applied.
    line = f"{attacker.client_address}\n".encode()
    replace(lambda p: p.write_bytes(line + b"garbage\n" * (8 * 1024 * 1024)))
    refused = _until(attacker, stack, address, 403)
    assert refused[-1] == 403, refused
    bystander_unchanged()

    assert _traefik_container(stack) == before  # neither restarted nor recreated
    assert _traefik_complaints(stack) == []
