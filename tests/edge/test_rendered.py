"""The edge-home target as `stackgen init --target edge-home` renders it, run on this
engine by `stackgen up --side edge|home` (docs/edge-home.md).

Both sides run on this engine, each its own Compose project on its own bridge: home's
containers reach the outside only through the engine's masquerade of that bridge, an
outbound-only NAT (nothing at home is published), and home dials the edge's published
WireGuard port at the host's address on its own network, as it would dial the edge
server's public address. A client in a network namespace of its own reaches Jellyfin (the
stand-in) through the edge over verified TLS. Certificates come from the internal CA:
Pebble's HTTP-01 needs the edge on ports 80/443, which this shared machine's tests leave
to `make demo TARGET=edge-home` (where it passes through the same edge).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.edge.conftest import RENDERED, TIMINGS
from tests.integration.netns import ClientNamespace, client_namespace, standin_echo

SLOT = int(os.environ.get("STACKGEN_TEST_SLOT", "0"))
SHIFT = 100 * SLOT
HTTP_PORT, HTTPS_PORT, WG_PORT = 18020 + SHIFT, 18021 + SHIFT, 18022 + SHIFT
# The edge's network; home's is the next /24 (the target's own rule).
SUBNET = ipaddress.IPv4Network(f"172.31.{40 + 2 * SLOT}.0/24")
HOME_GATEWAY = str(ipaddress.IPv4Network(f"172.31.{41 + 2 * SLOT}.0/24").network_address + 1)
CLIENT = ipaddress.IPv4Network(f"10.204.{SLOT}.0/30")
DOMAIN = "jellyfin.edge.stackgen.test"
PROJECT = f"sg-eh{SLOT}"
KEEPALIVE = HEARTBEAT = 5
# After home's address moved, the edge may not hear its data (seen here: nothing for 15 s);
# home's data unanswered for 15 s (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT) makes it start a new
# handshake from its new address. Bound: as after an edge restart (docs/edge-home.md).
ADDRESS_RECOVERY_BOUND = HEARTBEAT + 15 + 5 + 5
# After the edge comes back: the heartbeat's next datagram, 15 s without an answer
# (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT), one lost initiation (5 s), and 5 s of slack.
EDGE_RECOVERY_BOUND = HEARTBEAT + 15 + 5 + 5


def stackgen(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from stackgen.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
    )


def ok(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    return run.stdout


def _down(site: Path) -> None:
    for side in ("edge", "home"):
        stackgen("down", "--dir", str(site), "--side", side, "--project", f"{PROJECT}-{side}")


# The stand-in's own API key: through the gate, every request but the few anonymous ones
# needs a token Jellyfin (here the stand-in, asked through the tunnel) confirms.
API_KEY = "stackgen-standin-api-key"


def set_gate_image(folder: Path, image: str) -> None:
    """`access.gate.image` in a side's stackgen.toml, as a user would edit it."""
    from stackgen.config_file import build_config, dump_config, load_config

    data = load_config(folder).model_dump(mode="json")
    data["access"]["gate"]["image"] = image
    (folder / "stackgen.toml").write_text(dump_config(build_config(data, folder)))


@pytest.fixture(scope="module")
def site(edge_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("rendered") / "site"
    _down(folder)  # a killed run's stacks, by their project names
    ok(
        stackgen(
            "init", "nginx", "--domain", DOMAIN, "--tls", "internal",
            "--target", "edge-home", "--edge-host", HOME_GATEWAY,
            "--wg-port", str(WG_PORT), "--keepalive", str(KEEPALIVE),
            "--heartbeat", str(HEARTBEAT),
            "--http-port", str(HTTP_PORT), "--https-port", str(HTTPS_PORT),
            "--subnet", str(SUBNET), "--project", PROJECT,
            "--image", f"nginx={edge_images['nginx']}",
            "--image", f"jellyfin={edge_images['jellyfin-standin']}",
            "--image", f"wireguard={edge_images['wireguard']}",
            "--dir", str(folder),
        )
    )  # fmt: skip
    RENDERED.append(folder)
    # The token gate is on by default on this target; its reference image cannot be pulled
    # here, and any Python 3.11+ keeps its contract: the suite's Debian base, as the demo.
    set_gate_image(folder / "edge", edge_images["debian-base"])
    ok(stackgen("render", "--dir", str(folder), "--side", "edge"))
    try:
        ok(stackgen("up", "--dir", str(folder), "--side", "edge"))
        ok(stackgen("up", "--dir", str(folder), "--side", "home"))
        yield folder
    finally:
        RENDERED.clear()
        _down(folder)


@pytest.fixture(scope="module")
def client() -> Iterator[ClientNamespace]:
    with client_namespace(f"sg{SLOT}ehc", CLIENT) as made:
        yield made


def echo(client: ClientNamespace, site: Path) -> dict[str, Any]:
    ca = site / "edge/tls/ca.pem"
    path = f"/__standin/echo?api_key={API_KEY}"
    return standin_echo(client, client.host_address, HTTPS_PORT, DOMAIN, ca, path)


# Run inside the client's namespace: the status of one request over verified TLS.
_STATUS = """
import http.client, json, socket, ssl, sys
address, port, name, ca, method, path, headers = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection(name, int(port), context=ctx, timeout=30)
conn.sock = ctx.wrap_socket(socket.create_connection((address, int(port)), timeout=30),
                            server_hostname=name)
conn.request(method, path, headers=json.loads(headers))
print(conn.getresponse().status)
"""


def answer(
    client: ClientNamespace, site: Path, path: str, headers: dict[str, str] | None = None
) -> int:
    run = client.run(
        sys.executable, "-c", _STATUS, client.host_address, str(HTTPS_PORT), DOMAIN,
        str(site / "edge/tls/ca.pem"), "GET", path, json.dumps(headers or {}),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return int(run.stdout)


def test_the_gate_at_the_edge_serves_a_valid_token_and_refuses_a_forged_one(
    site: Path, client: ClientNamespace
) -> None:
    """The attacker first: no token and forged tokens in each place are refused by the gate
    (it asks the stand-in through the tunnel); the stand-in's own key is served."""
    stream = "/Videos/0123456789abcdef0123456789abcdef/stream?static=true"
    forged = "not-a-key-" + "0" * 22
    refused = {
        "no token": answer(client, site, stream),
        "X-Emby-Token": answer(client, site, stream, {"X-Emby-Token": forged}),
        "Authorization": answer(
            client, site, stream, {"Authorization": f'MediaBrowser Token="{forged}"'}
        ),
        "api_key": answer(client, site, f"{stream}&api_key={forged}"),
        "forged before valid": answer(
            client, site, f"{stream}&api_key={API_KEY}", {"X-Emby-Token": forged}
        ),
        "echo without a token": answer(client, site, "/__standin/echo"),
    }
    assert refused == dict.fromkeys(refused, 401), refused
    served = {
        "X-Emby-Token": answer(client, site, "/__standin/echo", {"X-Emby-Token": API_KEY}),
        "api_key": answer(client, site, f"/__standin/echo?api_key={API_KEY}"),
        "anonymous /System/Info/Public": answer(client, site, "/System/Info/Public"),
    }
    assert served == dict.fromkeys(served, 200), served
    # The gate listens on the edge's loopback only: not at the edge's tunnel address.
    probe = subprocess.run(
        ["docker", "exec", f"{PROJECT}-home-wireguard-1", "bash", "-c",
         "exec 3<>/dev/tcp/10.203.0.1/9090 && echo connected || true"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert "connected" not in probe.stdout, probe


def status(site: Path, side: str) -> dict[str, Any]:
    run = stackgen("status", "--dir", str(site), "--side", side, "--json", timeout=120)
    report: dict[str, Any] = json.loads(run.stdout)
    return report


def test_the_client_reaches_jellyfin_through_the_edge_with_its_own_address(
    site: Path, client: ClientNamespace
) -> None:
    seen = echo(client, site)
    assert seen["client_address"] == client.client_address, seen


def test_status_says_the_tunnel_is_up_on_both_sides(site: Path) -> None:
    for side in ("edge", "home"):
        report = status(site, side)
        tunnel = report["target_state"]["tunnel"]
        assert tunnel["up"], (side, tunnel)
        assert report["problems"] == [], (side, report["problems"])
    edge = status(site, "edge")["target_state"]["tunnel"]
    assert edge["allowed_ips"] == ["10.203.0.2/32"]


def test_home_publishes_no_port_and_nothing_at_home_is_reachable_from_outside(
    site: Path, client: ClientNamespace
) -> None:
    home = status(site, "home")
    assert [s["ports"] for s in home["services"]] == [[], []]
    shown = (
        "{{json .NetworkSettings.Ports}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    )
    inspect = subprocess.run(
        ["docker", "inspect", f"{PROJECT}-home-wireguard-1", "--format", shown],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    ports, address = inspect.stdout.split()
    assert json.loads(ports) in ({}, None)
    # Jellyfin listens at home (in the endpoint's namespace), yet a client outside, routed
    # to home's address, gets nothing: the engine forwards only published ports.
    probe = client.run(
        sys.executable, "-c",
        "import socket,sys\n"
        "try:\n socket.create_connection((sys.argv[1], 8096), timeout=3)\n"
        "except OSError as e: print(type(e).__name__)\nelse: print('connected')",
        address,
    )  # fmt: skip
    assert probe.stdout.strip() in ("TimeoutError", "ConnectionRefusedError", "OSError"), probe


def test_verify_passes_through_the_tunnel_websocket_range_and_upload(site: Path) -> None:
    run = stackgen("verify", "--dir", str(site), "--side", "edge", "--json", timeout=300)
    report = json.loads(run.stdout)
    statuses = {(r["id"], r.get("protocol")): r["status"] for r in report["checks"]}
    failed = [key for key, value in statuses.items() if value == "fail"]
    assert failed == [], failed
    passing = ("stream.range", "upload.20mb", "proxy.known-proxies")
    for check in (*passing, "tunnel.handshake", "tunnel.allowed-ips"):
        assert any(key[0] == check and v == "pass" for key, v in statuses.items()), check


def started_at(container: str) -> str:
    shown = subprocess.run(
        ["docker", "inspect", container, "--format", "{{.Id}} {{.State.StartedAt}}"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return shown.stdout.strip()


def wg_show(side: str, field: str) -> str:
    shown = subprocess.run(
        ["docker", "exec", f"{PROJECT}-{side}-wireguard-1", "wg", "show", "wg0", field],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return shown.stdout.split()[-1]


def test_reload_of_each_side_is_graceful_and_applies_the_tunnel_settings(
    site: Path, client: ClientNamespace
) -> None:
    """`reload --side edge` reloads nginx in place (a changed rate limit), `--side home`
    touches no proxy, and both apply a hand-edited wg0.conf to the running interface: no
    container is recreated or restarted, the tunnel's counters keep counting (the
    interface was not taken down), and a client reaches Jellyfin throughout."""
    containers = [f"{PROJECT}-edge-{s}-1" for s in ("wireguard", "nginx", "gate")] + [
        f"{PROJECT}-home-{s}-1" for s in ("wireguard", "jellyfin")
    ]
    before = {c: started_at(c) for c in containers}
    received = edge_received()
    edge_toml = site / "edge/stackgen.toml"
    original = edge_toml.read_text()
    conf = site / "edge/nginx/conf.d/jellyfin.conf"
    assert "rate=5r/m" in conf.read_text()
    edge_toml.write_text(original.replace("login_per_minute = 5", "login_per_minute = 6"))
    home_wg = site / "home/wireguard/wg0.conf"
    wg_original = home_wg.read_text()
    # In place (the same inode): the file is bind-mounted into the endpoint.
    home_wg.write_text(wg_original.replace("PersistentKeepalive = 5", "PersistentKeepalive = 7"))
    try:
        run = stackgen("reload", "--dir", str(site), "--side", "edge")
        edge = ok(run) + run.stderr
        assert "rate=6r/m" in conf.read_text()
        assert "nginx: graceful reload" in edge and "wg syncconf" in edge, edge
        run = stackgen("reload", "--dir", str(site), "--side", "home")
        home = ok(run) + run.stderr
        assert "nginx" not in home and "wg syncconf" in home, home
        assert wg_show("home", "persistent-keepalive") == "7"
        assert echo(client, site)["client_address"] == client.client_address
    finally:
        edge_toml.write_text(original)
        home_wg.write_text(wg_original)
        ok(stackgen("reload", "--dir", str(site), "--side", "edge"))
        ok(stackgen("reload", "--dir", str(site), "--side", "home"))
    assert wg_show("home", "persistent-keepalive") == "5"
    assert {c: started_at(c) for c in containers} == before
    assert edge_received() > received


def home_endpoint_address() -> str:
    shown = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    inspect = subprocess.run(
        ["docker", "inspect", f"{PROJECT}-home-wireguard-1", "--format", shown],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return inspect.stdout.strip()


def move_home_address(address: str) -> None:
    """Home's address changes as on a reconnect: its endpoint leaves its network and comes
    back at another address (Jellyfin, in the endpoint's namespace, moves with it). Home's
    datagrams then leave the engine's masquerade from another source port: the edge sees a
    new public endpoint, as after a home router's reconnect."""
    container = f"{PROJECT}-home-wireguard-1"
    network = f"{PROJECT}-home_proxy"
    for argv in (
        ["docker", "network", "disconnect", network, container],
        ["docker", "network", "connect", f"--ip={address}", network, container],
    ):
        subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)


def edge_received() -> int:
    """Bytes the edge's endpoint has received from home (`wg show wg0 transfer`)."""
    shown = subprocess.run(
        ["docker", "exec", f"{PROJECT}-edge-wireguard-1", "wg", "show", "wg0", "transfer"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(shown.stdout.split()[1])


def edge_latest_handshake() -> int:
    shown = subprocess.run(
        ["docker", "exec", f"{PROJECT}-edge-wireguard-1", "wg", "show", "wg0", "latest-handshakes"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return int(shown.stdout.split()[1])


def test_the_tunnel_recovers_after_home_address_changes(
    site: Path, client: ClientNamespace
) -> None:
    old = home_endpoint_address()
    home_net = ipaddress.IPv4Network(f"172.31.{41 + 2 * SLOT}.0/24")
    # The lower half, away from the engine's dynamic range where the endpoint started.
    new = str(
        home_net.network_address + (100 if old != str(home_net.network_address + 100) else 101)
    )
    move_home_address(new)
    assert home_endpoint_address() == new
    # Nothing from the old address arrives after the disconnect: the next datagram the edge
    # receives is home's keepalive or heartbeat from its new address. No client request
    # meanwhile: the proxy's connection attempt would back off (TCP retransmits 1, 2, 4,
    # 8 s) and this would measure that instead of the tunnel.
    moved, before, handshake = time.monotonic(), edge_received(), edge_latest_handshake()
    while edge_received() == before and time.monotonic() - moved < ADDRESS_RECOVERY_BOUND:
        time.sleep(0.5)
    heard = time.monotonic() - moved
    assert edge_received() > before, (
        f"the edge heard nothing from home {ADDRESS_RECOVERY_BOUND} s after home moved from "
        f"{old} to {new}: {status(site, 'edge')['target_state']['tunnel']}"
    )
    try:
        seen = echo(client, site)
    except AssertionError as error:
        tunnel = status(site, "edge")["target_state"]["tunnel"]
        raise AssertionError(f"{error}\nthe edge's view of the tunnel: {tunnel}") from None
    assert seen["client_address"] == client.client_address, seen
    took = time.monotonic() - moved
    rekeyed = "with" if edge_latest_handshake() > handshake else "without"
    TIMINGS["rendered stacks: home's address moved -> the edge hears home again"] = (
        f"{heard:.1f} s (bound {ADDRESS_RECOVERY_BOUND} s), {rekeyed} a new handshake; a "
        f"client through the edge reaches Jellyfin at {took:.1f} s"
    )
    assert heard <= ADDRESS_RECOVERY_BOUND


def test_the_tunnel_recovers_after_the_edge_restarts(site: Path, client: ClientNamespace) -> None:
    ok(stackgen("down", "--dir", str(site), "--side", "edge"))
    ok(stackgen("up", "--dir", str(site), "--side", "edge"))
    back = time.monotonic()
    last = ""
    while time.monotonic() - back < EDGE_RECOVERY_BOUND:
        # Not JSON until Jellyfin answers through the tunnel: the proxy's or the gate's
        # refusal (502, 503) meanwhile.
        with contextlib.suppress(AssertionError, ValueError):
            seen = echo(client, site)
            if seen["client_address"] == client.client_address:
                took = time.monotonic() - back
                TIMINGS["rendered stacks: Jellyfin through the edge again after its restart"] = (
                    f"{took:.1f} s (bound {EDGE_RECOVERY_BOUND} s)"
                )
                return
            last = str(seen)
        time.sleep(1)
    raise AssertionError(
        f"no answer through the edge {EDGE_RECOVERY_BOUND} s after it came back {last}"
    )


# Run inside a namespace: one failed login (a JSON body) over verified TLS, its status.
_LOGIN = """
import http.client, json, socket, ssl, sys
address, port, name, ca = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection(name, int(port), context=ctx, timeout=30)
conn.sock = ctx.wrap_socket(socket.create_connection((address, int(port)), timeout=30),
                            server_hostname=name)
body = json.dumps({"Username": "alice", "Pw": "guess"})
conn.request("POST", "/Users/AuthenticateByName?api_key=x", body=body,
             headers={"Content-Type": "application/json"})
print(conn.getresponse().status)
"""
PUBLIC = "/System/Info/Public"


def _until(client: ClientNamespace, site: Path, wanted: int, bound: float) -> list[int]:
    seen: list[int] = []
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        seen.append(answer(client, site, PUBLIC))
        if seen[-1] == wanted:
            break
        time.sleep(0.5)
    return seen


def test_the_edge_bans_from_its_proxys_failed_logins_alone(
    site: Path, client: ClientNamespace, edge_images: dict[str, str]
) -> None:
    """Last in the module: turns access.ban.proxy_log on at the edge (Jellyfin's log is at
    home), where the feeder then reads the proxy's failed logins alone."""
    from stackgen.config_file import build_config, dump_config, load_config

    edge = site / "edge"
    data = load_config(edge).model_dump(mode="json")
    data["access"]["ban"]["proxy_log"] = True
    data["images"]["fail2ban"] = edge_images["fail2ban"]
    (edge / "stackgen.toml").write_text(dump_config(build_config(data, edge)))
    ok(stackgen("render", "--dir", str(site), "--side", "edge"))
    ok(stackgen("up", "--dir", str(site), "--side", "edge"))
    assert "fail2ban" in (edge / "docker-compose.yml").read_text()
    assert "fail2ban" not in (site / "home/docker-compose.yml").read_text()
    back = _until(client, site, 200, EDGE_RECOVERY_BOUND)
    assert back[-1] == 200, back
    failures = load_config(edge).access.ban.max_failures
    ca = str(edge / "tls/ca.pem")
    started = time.monotonic()
    for _ in range(failures):
        run = client.run(
            sys.executable, "-c", _LOGIN, client.host_address, str(HTTPS_PORT), DOMAIN, ca
        )
        assert run.returncode == 0 and run.stdout.strip() == "401", (run.stdout, run.stderr)
    refused = _until(client, site, 403, 10.0)
    took = time.monotonic() - started
    assert refused[-1] == 403, refused
    TIMINGS["rendered stacks: banned at the edge from the proxy's failed logins"] = (
        f"{took:.1f} s (bound 10 s)"
    )
    listed = json.loads(ok(stackgen("ban", "list", "--dir", str(site), "--side", "edge", "--json")))
    assert listed == {"user": [], "feeder": [client.client_address]}
    bystander_net = ipaddress.IPv4Network(f"10.205.{SLOT}.0/30")
    with client_namespace(f"sg{SLOT}ehb", bystander_net) as bystander:
        assert answer(bystander, site, PUBLIC) == 200
    ok(stackgen("ban", "remove", client.client_address, "--dir", str(site), "--side", "edge"))
    back = _until(client, site, 200, 10.0)
    assert back[-1] == 200, back
