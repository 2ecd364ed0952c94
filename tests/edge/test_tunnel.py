"""Userspace WireGuard between an edge host and a home host behind an outbound-only NAT.

What an edge/home deployment rests on, shown with real containers on this engine
(tests/edge/topology.py): the tunnel runs on wireguard-go with NET_ADMIN and /dev/net/tun
only; keys made in Python are the keys `wg` derives; the edge reaches the home service and
the home service sees the edge's tunnel address, so KnownProxies is exactly that /32 and the
client's own address arrives through the edge's proxy (Range, uploads and WebSockets too);
nothing outside reaches home; the tunnel carries nothing but edge<->home; and it comes back
after the home's public address changes and after the edge restarts, within measured
bounds. Tests run in file order: the recovery tests move the topology last.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

import pytest

from tests.edge.conftest import TIMINGS
from tests.edge.topology import (
    EDGE_TUNNEL,
    HEARTBEAT_SECONDS,
    HOME_TUNNEL,
    HOME_WG_PORT,
    KEEPALIVE_SECONDS,
    STANDIN_API_KEY,
    STANDIN_PORT,
    WIREGUARD_IMAGE,
    EdgeHome,
    run,
)

# An HTTP GET from inside a container; prints a JSON line {"status", "body"} or {"error"}.
GET = """
import http.client, json, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
headers = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
source = sys.argv[5] if len(sys.argv) > 5 else None
try:
    conn = http.client.HTTPConnection(
        host, port, timeout=3, source_address=(source, 0) if source else None
    )
    conn.request("GET", path, headers=headers)
    reply = conn.getresponse()
    print(json.dumps({"status": reply.status, "body": reply.read().decode()}))
except OSError as error:
    print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
"""

# A TCP connect or a UDP datagram from inside a container: prints open, refused, timeout or sent.
PROBE = """
import socket, sys
host, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "udp":
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"probe", (host, port))
    print("sent")
    sys.exit()
try:
    socket.create_connection((host, port), timeout=3).close()
    print("open")
except ConnectionRefusedError:
    print("refused")
except OSError as error:
    print("timeout" if isinstance(error, TimeoutError) else f"error {error}")
"""

# Something listening on the home LAN beside home (on the router's LAN address): what a
# tunnel into the LAN would reach.
LAN_LISTENER_PORT = 8080
RECOVERY_BOUND_ADDRESS = KEEPALIVE_SECONDS + 10
# Without data, the home side rekeys only when its session is 120 s old (REKEY_AFTER_TIME);
# home's healthcheck heartbeat is data, so a silent edge makes home start a handshake after
# 15 s (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT). Bound: heartbeat interval + 15 s + one lost
# initiation (REKEY_TIMEOUT, 5 s) + 5 s.
RECOVERY_BOUND_RESTART = HEARTBEAT_SECONDS + 15 + 5 + 5


def get(
    topology: EdgeHome,
    container: str,
    host: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    source: str = "",
) -> dict[str, Any]:
    args = [host, str(port), path, json.dumps(headers or {})]
    result = topology.python(container, GET, *args, *([source] if source else []), timeout=30)
    assert result.returncode == 0, result.stderr
    reply: dict[str, Any] = json.loads(result.stdout)
    return reply


def probe(topology: EdgeHome, container: str, host: str, port: int, kind: str = "tcp") -> str:
    result = topology.python(container, PROBE, host, str(port), kind, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def echo_through_tunnel(topology: EdgeHome) -> dict[str, Any]:
    reply = get(topology, topology.edge, HOME_TUNNEL, STANDIN_PORT, "/__standin/echo")
    assert reply.get("status") == 200, reply
    echo: dict[str, Any] = json.loads(reply["body"])
    return echo


# Inside the edge: GET /health from home over the tunnel until it answers (1 s per try,
# bounded); one process, so the engine's exec overhead is paid once, not per try.
UNTIL_HOME = """
import http.client, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
started = time.monotonic()
while time.monotonic() - started < limit:
    try:
        conn = http.client.HTTPConnection(host, port, timeout=1)
        conn.request("GET", "/health")
        if conn.getresponse().read() == b"Healthy":
            print("reached")
            sys.exit()
    except OSError:
        time.sleep(0.2)
print("not reached")
"""


def seconds_until_edge_reaches_home(topology: EdgeHome, since: float, limit: float) -> float:
    """Seconds from `since` (time.monotonic()) until the edge gets home's /health."""
    result = topology.python(
        topology.edge, UNTIL_HOME, HOME_TUNNEL, str(STANDIN_PORT), str(limit), timeout=limit + 60
    )
    seconds = time.monotonic() - since
    assert result.stdout.strip() == "reached", (
        f"edge did not reach home within {limit:.0f} s: {result.stdout}{result.stderr}\n"
        f"{topology.logs()}"
    )
    return seconds


def home_health(topology: EdgeHome) -> str:
    """Home endpoint's health (its heartbeat healthcheck), after its first check ran."""
    deadline = time.monotonic() + 30
    while True:
        state = inspect(topology.home)["State"].get("Health", {}).get("Status", "none")
        if state != "starting" or time.monotonic() > deadline:
            return str(state)
        time.sleep(1)


def inspect(container: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run(["docker", "inspect", container]).stdout)[0]
    return data


# --------------------------------------------------------------------------- userspace


def test_wireguard_runs_in_userspace_with_net_admin_and_the_tun_device_only(
    topology: EdgeHome,
) -> None:
    for container in (topology.edge, topology.home):
        host = inspect(container)["HostConfig"]
        added = [cap.removeprefix("CAP_") for cap in host["CapAdd"]]
        assert host["CapDrop"] == ["ALL"] and added == ["NET_ADMIN"]
        assert host["Privileged"] is False
        assert [d["PathOnHost"] for d in host["Devices"]] == ["/dev/net/tun"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["ReadonlyRootfs"] is True and list(host["Tmpfs"]) == ["/run"]
        log = run(["docker", "logs", container]).stderr
        # The kernel has no WireGuard: wg-quick falls back to wireguard-go.
        assert "Error: Unknown device type." in log
        assert "Falling back to slow userspace implementation" in log
        link = topology.exec(container, "ip", "-details", "link", "show", "wg0").stdout
        assert "tun type tun" in link, link  # a TUN device, not a kernel wireguard link
        processes = topology.exec(container, "ps", "-eo", "user:12,comm").stdout.split("\n")
        assert any(p.split() == ["root", "wireguard-go"] for p in processes), processes


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (
            ["--cap-add=NET_ADMIN"],
            'Failed to create TUN device: CreateTUN("wg0") failed; /dev/net/tun does not exist',
        ),
        (["--device=/dev/net/tun"], "Failed to create TUN device: operation not permitted"),
        (
            ["--cap-add=NET_ADMIN", "--device=/dev/net/tun", "--user=1000:1000"],
            "Failed to create TUN device: permission denied",
        ),
    ],
    ids=["no-tun-device", "no-net-admin", "non-root"],
)
def test_what_wireguard_go_cannot_do_without(
    edge_images: dict[str, str], options: list[str], error: str
) -> None:
    name = f"sgwg-probe-{uuid.uuid4().hex[:6]}"
    result = run(
        [
            "docker",
            "run",
            "--rm",
            f"--name={name}",
            "--network=none",
            "--cap-drop=ALL",
            *options,
            "--env=WG_PROCESS_FOREGROUND=1",
            WIREGUARD_IMAGE,
            "timeout",
            "5",
            "wireguard-go",
            "-f",
            "wg0",
        ],
        check=False,
    )
    assert result.returncode == 1, result
    assert error in result.stdout + result.stderr


def test_keys_made_in_python_are_the_keys_wg_derives(topology: EdgeHome) -> None:
    for conf in ("edge/wg0.conf", "home/wg0.conf", "home/private.key"):
        assert (topology.workdir / conf).stat().st_mode & 0o777 == 0o600
    private = (topology.workdir / "home" / "private.key").read_text()
    derived = run(["docker", "exec", "-i", topology.home, "wg", "pubkey"], stdin=private)
    assert derived.stdout.strip() == topology.home_public_key
    shown = topology.exec(topology.home, "wg", "show", "wg0", "public-key").stdout.strip()
    assert shown == topology.home_public_key
    assert private.strip() not in topology.logs()


def secrets_of(topology: EdgeHome) -> set[str]:
    """Every private and preshared key the topology wrote (its wg0.conf files)."""
    found = set()
    for side in ("edge", "home"):
        for line in (topology.workdir / side / "wg0.conf").read_text().splitlines():
            key, _, value = line.partition(" = ")
            if key in ("PrivateKey", "PresharedKey"):
                found.add(value.strip())
    return found


def test_no_private_or_preshared_key_reaches_a_failing_tests_report(topology: EdgeHome) -> None:
    # pytest prints a failing test's arguments with repr(); the report section is logs().
    secrets = secrets_of(topology)
    assert len(secrets) == 3  # two private keys, one preshared key
    shown = repr(topology) + str(topology) + topology.logs()
    assert [s for s in secrets if s in shown] == []
    assert topology.home_public_key in repr(topology)  # public keys are fine


# --------------------------------------------------------------------------- addresses


def test_edge_reaches_the_home_service_and_is_seen_as_its_tunnel_address(
    topology: EdgeHome,
) -> None:
    health = get(topology, topology.edge, HOME_TUNNEL, STANDIN_PORT, "/health")
    assert health == {"status": 200, "body": "Healthy"}
    echo = echo_through_tunnel(topology)
    # KnownProxies = exactly this /32: what the home service sees of the edge.
    assert echo["peer_address"] == EDGE_TUNNEL
    assert echo["known_proxies"] == [f"{EDGE_TUNNEL}/32"]
    # Home sits behind the NAT: the edge knows it only by the router's public address.
    assert topology.peer_endpoint(topology.edge) == (
        f"{topology.router_public_address}:{HOME_WG_PORT}"
    )


def test_the_clients_own_address_arrives_through_the_edge_proxy(topology: EdgeHome) -> None:
    edge = topology.edge_address
    plain = get(topology, topology.outsider, edge, 80, "/__standin/echo")
    assert plain.get("status") == 200, plain
    echo = json.loads(plain["body"])
    assert echo["peer_address"] == EDGE_TUNNEL and echo["peer_trusted"] is True
    assert echo["client_address"] == topology.outsider_address
    # A client that claims another address gets its own: the edge replaces the header.
    spoofed = get(
        topology, topology.outsider, edge, 80, "/__standin/echo", {"X-Forwarded-For": "192.0.2.9"}
    )
    assert json.loads(spoofed["body"])["client_address"] == topology.outsider_address


# Through the edge proxy and the tunnel: a Range request, a 20 MiB upload and a WebSocket.
MEDIA_CHECKS = r"""
import hashlib, http.client, json, os, socket, sys
host = sys.argv[1]
out = {}
conn = http.client.HTTPConnection(host, 80, timeout=60)
conn.request("GET", "/Videos/x/stream", headers={"Range": "bytes=1000000-1000099"})
reply = conn.getresponse()
body = reply.read()
out["range"] = [reply.status, body == bytes(i % 251 for i in range(1000000, 1000100))]
payload = os.urandom(20 * 1024 * 1024)
conn.request("POST", "/__standin/upload", body=payload,
             headers={"Content-Type": "application/octet-stream"})
reply = conn.getresponse()
out["upload"] = [reply.status, json.loads(reply.read()),
                 {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}]
sock = socket.create_connection((host, 80), timeout=30)
sock.sendall(
    f"GET /socket?api_key={sys.argv[2]}&deviceId=edge-test HTTP/1.1\r\nHost: jellyfin\r\n"
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
)
data = b""
# A refusal (403) keeps the connection open: stop at its head instead of waiting for a
# message that never comes until the socket's timeout.
while b"ForceKeepAlive" not in data and len(data) < 65536:
    if b"\r\n\r\n" in data and not data.startswith(b"HTTP/1.1 101"):
        break
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
out["websocket"] = [data.split(b"\r\n", 1)[0].decode(), b"ForceKeepAlive" in data]
print(json.dumps(out))
"""


def test_range_upload_and_websocket_cross_the_edge_and_the_tunnel(topology: EdgeHome) -> None:
    result = topology.python(
        topology.outsider, MEDIA_CHECKS, topology.edge_address, STANDIN_API_KEY, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["range"] == [206, True]
    status, answer, sent = out["upload"]
    assert status == 200 and answer == sent
    assert out["websocket"] == ["HTTP/1.1 101 Switching Protocols", True]


# --------------------------------------------------------------------------- isolation


def _listening(topology: EdgeHome, table: str) -> set[int]:
    """Ports home listens on (state LISTEN for TCP; bound for UDP), from /proc/net."""
    text = topology.exec(topology.home, "cat", f"/proc/net/{table}").stdout
    ports: set[int] = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if table == "udp" or fields[3] == "0A":
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_home_has_no_listening_socket_reachable_from_outside(topology: EdgeHome) -> None:
    # The probes aim at real listeners: the stand-in (TCP) and wireguard-go (UDP).
    assert STANDIN_PORT in _listening(topology, "tcp")
    assert HOME_WG_PORT in _listening(topology, "udp")
    # Inside the LAN the stand-in answers: only the NAT keeps outsiders away.
    assert probe(topology, topology.router, topology.home_lan_address, STANDIN_PORT) == "open"

    public = topology.router_public_address
    for port in (STANDIN_PORT, HOME_WG_PORT, 80, 443):
        assert probe(topology, topology.outsider, public, port) == "refused", port

    # An attacker next to the NAT routes the home's private subnet at it.
    route = ["ip", "route", "add", str(topology.lan), "via", public]
    topology.exec(topology.outsider, *route)
    try:
        before = topology.inbound_drops()
        lan_home = topology.home_lan_address
        assert probe(topology, topology.outsider, lan_home, STANDIN_PORT) == "timeout"
        after_tcp = topology.inbound_drops()
        assert after_tcp > before
        assert probe(topology, topology.outsider, lan_home, HOME_WG_PORT, "udp") == "sent"
        time.sleep(0.5)
        assert topology.inbound_drops() > after_tcp
    finally:
        topology.exec(topology.outsider, "ip", "route", "del", str(topology.lan))


def test_the_tunnel_carries_only_edge_home_traffic(topology: EdgeHome) -> None:
    edge, home = topology.edge, topology.home
    allowed_edge = topology.exec(edge, "wg", "show", "wg0", "allowed-ips").stdout.split()
    allowed_home = topology.exec(home, "wg", "show", "wg0", "allowed-ips").stdout.split()
    assert allowed_edge == [topology.home_public_key, f"{HOME_TUNNEL}/32"]
    assert allowed_home == [topology.edge_public_key, f"{EDGE_TUNNEL}/32"]
    # A container forwards by default here; the home endpoint is started with it off.
    default = run(["docker", "run", "--rm", "--network=none", WIREGUARD_IMAGE, "sysctl", "-n",
                   "net.ipv4.ip_forward"]).stdout.strip()  # fmt: skip
    assert default == "1"
    assert topology.exec(home, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"

    lan_host = topology.router_lan_address
    listener = subprocess.Popen(  # a LAN service beside home, for the tunnel to miss
        [
            "docker",
            "exec",
            topology.router,
            "timeout",
            "90",
            "python3",
            "-m",
            "http.server",
            "--bind",
            lan_host,
            str(LAN_LISTENER_PORT),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while probe(topology, home, lan_host, LAN_LISTENER_PORT) != "open":
            assert time.monotonic() < deadline, "the LAN listener did not start"
            time.sleep(0.5)
        # The edge points the LAN at the tunnel: its own wireguard-go has no peer for it.
        topology.exec(edge, "ip", "route", "add", str(topology.lan), "dev", "wg0")
        assert probe(topology, edge, lan_host, LAN_LISTENER_PORT) == "timeout"
        # A compromised edge also lets the LAN through its end: home decrypts the packets
        # (the source is the edge's /32) and drops them, since it forwards nothing.
        widened = f"{HOME_TUNNEL}/32,{topology.lan}"
        topology.exec(edge, "wg", "set", "wg0", "peer", topology.home_public_key,
                      "allowed-ips", widened)  # fmt: skip
        received = _received(topology, home)
        assert probe(topology, edge, lan_host, LAN_LISTENER_PORT) == "timeout"
        assert _received(topology, home) > received  # it crossed the tunnel, and died there
    finally:
        listener.kill()
        listener.wait(timeout=30)
        topology.exec(edge, "ip", "route", "del", str(topology.lan), "dev", "wg0", check=False)
        topology.exec(edge, "wg", "set", "wg0", "peer", topology.home_public_key,
                      "allowed-ips", f"{HOME_TUNNEL}/32")  # fmt: skip

    # A source other than the edge's /32, sent into the tunnel: home's WireGuard drops it.
    topology.exec(edge, "ip", "address", "add", "10.203.0.9/32", "dev", "wg0")
    try:
        spoofed = get(topology, edge, HOME_TUNNEL, STANDIN_PORT, "/health", source="10.203.0.9")
        assert "error" in spoofed and "timed out" in spoofed["error"], spoofed
    finally:
        topology.exec(edge, "ip", "address", "del", "10.203.0.9/32", "dev", "wg0")
    assert echo_through_tunnel(topology)["peer_address"] == EDGE_TUNNEL


def _received(topology: EdgeHome, container: str) -> int:
    fields = topology.exec(container, "wg", "show", "wg0", "transfer").stdout.split()
    return int(fields[1])


# --------------------------------------------------------------------------- recovery


def test_tunnel_recovers_after_the_home_public_address_changes(topology: EdgeHome) -> None:
    old = topology.router_public_address
    topology.move_home_public_address(21 if topology.router_wan_host != 21 else 22)
    moved = time.monotonic()
    new = topology.router_public_address
    assert new != old
    seconds = seconds_until_edge_reaches_home(topology, since=moved, limit=60)
    TIMINGS["home public address change -> edge reaches home"] = (
        f"{seconds:.1f} s (keepalive {KEEPALIVE_SECONDS} s, bound {RECOVERY_BOUND_ADDRESS} s)"
    )
    assert seconds <= RECOVERY_BOUND_ADDRESS
    # The edge learnt the new address from home's next authenticated packet (roaming).
    assert topology.peer_endpoint(topology.edge) == f"{new}:{HOME_WG_PORT}"
    echo = get(topology, topology.outsider, topology.edge_address, 80, "/__standin/echo")
    assert json.loads(echo["body"])["client_address"] == topology.outsider_address


def test_tunnel_recovers_after_the_edge_restarts(topology: EdgeHome) -> None:
    # Home's healthcheck is the heartbeat (topology.HEARTBEAT): data to the edge's tunnel
    # address every 5 s, so a silent edge makes home start a new handshake after 15 s.
    assert home_health(topology) == "healthy"
    started = time.monotonic()
    run(["docker", "restart", "--time=5", topology.edge])
    restarted = time.monotonic() - started
    back = time.monotonic()
    seconds = seconds_until_edge_reaches_home(topology, since=back, limit=180)
    run(["docker", "restart", "--time=5", topology.edge_proxy])  # it shares edge's network
    TIMINGS["edge restart -> edge reaches home"] = (
        f"{seconds:.1f} s after the edge was back ({restarted:.1f} s restart; "
        f"heartbeat every {HEARTBEAT_SECONDS} s, bound {RECOVERY_BOUND_RESTART} s)"
    )
    assert seconds <= RECOVERY_BOUND_RESTART
    deadline = time.monotonic() + 30  # the proxy just restarted too
    while (echo := get(topology, topology.outsider, topology.edge_address, 80, "/")).get(
        "status"
    ) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    echo = get(topology, topology.outsider, topology.edge_address, 80, "/__standin/echo")
    assert json.loads(echo["body"])["client_address"] == topology.outsider_address
