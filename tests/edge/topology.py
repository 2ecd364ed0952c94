"""An edge host on the "internet" and a home host behind an outbound-only NAT, made of
containers, joined by a WireGuard tunnel that the home side dials (docs/edge-home.md).

    outsider (wan .30) --+
                         +-- wan bridge -- edge (wan .10): wg0 10.203.0.1, nginx beside it
    router wan .20 ------+
    router lan .2 ------ lan bridge ----------- home (lan .10): wg0 10.203.0.2, stand-in

- The **router** forwards only what the LAN starts: FORWARD drops by default, accepts the
  LAN's new connections and the replies to them, and MASQUERADEs the LAN behind its wan
  address. An explicit, counted rule drops anything new towards the LAN, so a test can
  show a probe died there. Its rules name subnets, not interfaces, so they survive the wan
  address moving (`move_home_public_address`).
- **home** routes everything through the router (its default route is replaced before
  wg-quick runs) and dials the edge with `PersistentKeepalive`; the Jellyfin stand-in shares
  its network namespace, as the generated home stack would run it.
- **edge** listens on UDP 51820 and learns home's endpoint from the handshake (it has no
  Endpoint for home); the nginx beside it shares its namespace and proxies to home's tunnel
  address with X-Forwarded-For.
- **outsider** is a client, and the attacker next to the NAT for the inbound probes.

Keys come from `stackgen.tunnel.keys` and reach the containers only inside 0600 wg-quick
files mounted read-only: no key is printed, logged or passed on a command line.

Everything carries the label `org.stackgen.edge-topology=<name>` and a name starting with
`sgwg-`; `close()` removes it (also after a failed `start()`), and `remove_leftovers()`
removes topologies whose creating process is gone.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from stackgen.allocate import Allocator
from stackgen.tunnel import keys

NAME_PREFIX = "sgwg"
LABEL = "org.stackgen.edge-topology"
PID_LABEL = "org.stackgen.edge-topology.pid"
TAG = os.environ.get("STACKGEN_TEST_IMAGE_TAG") or "local"
WIREGUARD_IMAGE = f"stackgen-test/wireguard:{TAG}"
STANDIN_IMAGE = f"stackgen-test/jellyfin-standin:{TAG}"
NGINX_IMAGE = f"stackgen-test/nginx:{TAG}"

TUNNEL = ipaddress.IPv4Network("10.203.0.0/24")
EDGE_TUNNEL = "10.203.0.1"
HOME_TUNNEL = "10.203.0.2"
WG_PORT = 51820
HOME_WG_PORT = 51821  # fixed so a test can aim at it; the home side never needs one
KEEPALIVE_SECONDS = 5
HOME_IP_FORWARD = 0
HEARTBEAT_SECONDS = 5
# Healthy while the last handshake is younger than REJECT_AFTER_TIME (180 s).
HEARTBEAT = (
    f"bash -c 'echo beat > /dev/udp/{EDGE_TUNNEL}/9; "
    "last=$(wg show wg0 latest-handshakes | cut -f2); "
    "[ $(( $(date +%s) - ${last:-0} )) -lt 180 ]'"
)
STANDIN_PORT = 8096
# The key the stand-in accepts unless told otherwise (its DEFAULT_API_KEY): like Jellyfin,
# it refuses a WebSocket with any other token (403).
STANDIN_API_KEY = "stackgen-standin-api-key"
EDGE_HTTP_PORT = 80
COMMAND_TIMEOUT = 120.0
# What a WireGuard endpoint needs here and nothing more (docs/edge-home.md).
WG_RUN_OPTIONS: tuple[str, ...] = (
    "--cap-drop=ALL",
    "--cap-add=NET_ADMIN",
    "--device=/dev/net/tun",
    "--security-opt=no-new-privileges",
    # wireguard-go's control socket is /var/run/wireguard/wg0.sock: the only write it needs.
    "--read-only",
    "--tmpfs=/run",
)

ROUTER_SCRIPT = """
set -eu
lan={lan}
iptables -P FORWARD DROP
iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A FORWARD -s "$lan" ! -d "$lan" -m conntrack --ctstate NEW -j ACCEPT
iptables -A FORWARD -d "$lan" -m conntrack --ctstate NEW -m comment --comment inbound-new -j DROP
iptables -t nat -A POSTROUTING -s "$lan" ! -d "$lan" -j MASQUERADE
"""

NGINX_CONF = """
map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      '';
}}
server {{
    listen {port};
    client_max_body_size 0;
    location / {{
        proxy_pass http://{home}:{standin};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_request_buffering off;
        # The client's own address, never one it claims: KnownProxies trusts only the edge.
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_buffering off;
    }}
}}
"""

NETWORK_XML = """<?xml version="1.0" encoding="utf-8"?>
<NetworkConfiguration xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <BaseUrl />
  <EnableIPv4>true</EnableIPv4>
  <EnableIPv6>false</EnableIPv6>
  <KnownProxies>
    <string>{edge}/32</string>
  </KnownProxies>
</NetworkConfiguration>
"""


class TopologyError(Exception):
    """A container, network or command of the topology failed (the message says which)."""


def run(
    args: Sequence[str], *, timeout: float = COMMAND_TIMEOUT, check: bool = True, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(args), input=stdin, capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired as error:
        raise TopologyError(f"`{shlex.join(args)}` did not finish in {timeout:.0f} s") from error
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise TopologyError(f"`{shlex.join(args)}` exited {result.returncode}: {output[-2000:]}")
    return result


def write_secret(path: Path, text: str) -> None:
    """A file only its owner (root, which the containers' root is) can read: 0600 from birth."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def wg_quick_conf(
    *,
    private: str,
    address: str,
    listen_port: int,
    peer_public: str,
    preshared: str,
    peer_allowed: str,
    endpoint: str | None = None,
    keepalive: int | None = None,
) -> str:
    lines = [
        "[Interface]",
        f"Address = {address}/32",
        f"ListenPort = {listen_port}",
        f"PrivateKey = {private}",
        "",
        "[Peer]",
        f"PublicKey = {peer_public}",
        f"PresharedKey = {preshared}",
        f"AllowedIPs = {peer_allowed}/32",
    ]
    if endpoint is not None:
        lines.append(f"Endpoint = {endpoint}")
    if keepalive is not None:
        lines.append(f"PersistentKeepalive = {keepalive}")
    return "\n".join(lines) + "\n"


@dataclass
class EdgeHome:
    """The containers and networks of one topology; `start()` builds, `close()` removes."""

    workdir: Path
    name: str = field(default_factory=lambda: f"{NAME_PREFIX}-{uuid.uuid4().hex[:6]}")
    allocator: Allocator = field(default_factory=Allocator)
    wan: ipaddress.IPv4Network = TUNNEL  # replaced in start()
    lan: ipaddress.IPv4Network = TUNNEL
    edge_public_key: str = ""
    home_public_key: str = ""
    router_wan_host: int = 20
    heartbeat: bool = True  # home's healthcheck heartbeat (off: keepalives only)

    def __repr__(self) -> str:
        # A failing test's report shows its arguments' repr: only names, addresses and public
        # keys, never a field added later that might hold a private or preshared key.
        shown = ("name", "workdir", "wan", "lan", "edge_public_key", "home_public_key")
        return f"EdgeHome({', '.join(f'{k}={getattr(self, k)!r}' for k in shown)})"

    # ---- names and addresses -----------------------------------------------------------

    def c(self, role: str) -> str:
        return f"{self.name}-{role}"

    @property
    def edge(self) -> str:
        return self.c("edge")

    @property
    def home(self) -> str:
        return self.c("home")

    @property
    def router(self) -> str:
        return self.c("router")

    @property
    def outsider(self) -> str:
        return self.c("outsider")

    @property
    def edge_proxy(self) -> str:
        return self.c("edge-proxy")

    @property
    def standin(self) -> str:
        return self.c("home-standin")

    def wan_ip(self, host: int) -> str:
        return str(self.wan.network_address + host)

    def lan_ip(self, host: int) -> str:
        return str(self.lan.network_address + host)

    @property
    def edge_address(self) -> str:
        return self.wan_ip(10)

    @property
    def outsider_address(self) -> str:
        return self.wan_ip(30)

    @property
    def router_public_address(self) -> str:
        return self.wan_ip(self.router_wan_host)

    @property
    def router_lan_address(self) -> str:
        return self.lan_ip(2)

    @property
    def home_lan_address(self) -> str:
        return self.lan_ip(10)

    # ---- life cycle --------------------------------------------------------------------

    def __enter__(self) -> EdgeHome:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _labels(self) -> list[str]:
        return [f"--label={LABEL}={self.name}", f"--label={PID_LABEL}={os.getpid()}"]

    def start(self) -> None:
        self.wan = self.allocator.subnet(self.name)
        self.lan = self.allocator.subnet(self.name)
        # Not `--internal` for the LAN: the engine's rules for an internal network drop
        # every bridged packet whose destination lies outside its subnet (br_netfilter), so
        # nothing could reach the router on its way out. Home's default route is the router.
        for role, network in (("wan", self.wan), ("lan", self.lan)):
            run(
                [
                    "docker",
                    "network",
                    "create",
                    *self._labels(),
                    f"--subnet={network}",
                    self.c(role),
                ]
            )
        self._write_files()
        self._start_router()
        self._start_edge()
        self._start_home()
        self.run_container(
            self.outsider,
            WIREGUARD_IMAGE,  # for its iproute2 (and python3)
            network=self.c("wan"),
            ip=self.outsider_address,
            options=("--cap-drop=ALL", "--cap-add=NET_ADMIN"),
            entrypoint="sleep",
            command=("infinity",),
        )

    def _write_files(self) -> None:
        edge, home = keys.generate(), keys.generate()
        preshared = keys.generate_preshared()
        self.edge_public_key, self.home_public_key = edge.public, home.public
        write_secret(
            self.workdir / "edge" / "wg0.conf",
            wg_quick_conf(
                private=edge.private,
                address=EDGE_TUNNEL,
                listen_port=WG_PORT,
                peer_public=home.public,
                preshared=preshared,
                peer_allowed=HOME_TUNNEL,
            ),
        )
        write_secret(
            self.workdir / "home" / "wg0.conf",
            wg_quick_conf(
                private=home.private,
                address=HOME_TUNNEL,
                listen_port=HOME_WG_PORT,
                peer_public=edge.public,
                preshared=preshared,
                peer_allowed=EDGE_TUNNEL,
                endpoint=f"{self.edge_address}:{WG_PORT}",
                keepalive=KEEPALIVE_SECONDS,
            ),
        )
        # Private keys stay in the files above; these are for `wg pubkey` comparisons only.
        write_secret(self.workdir / "home" / "private.key", f"{home.private}\n")
        config = self.workdir / "home" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "network.xml").write_text(NETWORK_XML.format(edge=EDGE_TUNNEL))
        proxy = self.workdir / "edge" / "conf.d"
        proxy.mkdir(parents=True, exist_ok=True)
        (proxy / "jellyfin.conf").write_text(
            NGINX_CONF.format(port=EDGE_HTTP_PORT, home=HOME_TUNNEL, standin=STANDIN_PORT)
        )

    def run_container(
        self,
        name: str,
        image: str,
        *,
        network: str,
        ip: str | None = None,
        options: Sequence[str] = (),
        command: Sequence[str] = (),
        entrypoint: str | None = None,
    ) -> None:
        args = ["docker", "run", "-d", "--name", name, *self._labels()]
        args += [f"--network={network}", *([f"--ip={ip}"] if ip else []), *options]
        args += [f"--entrypoint={entrypoint}"] if entrypoint else []
        run([*args, image, *command])

    def _start_router(self) -> None:
        self.run_container(
            self.router,
            WIREGUARD_IMAGE,
            network=self.c("lan"),
            ip=self.router_lan_address,
            options=(
                "--cap-drop=ALL",
                "--cap-add=NET_ADMIN",
                "--sysctl=net.ipv4.ip_forward=1",
            ),
            entrypoint="sleep",
            command=("infinity",),
        )
        run(
            [
                "docker",
                "network",
                "connect",
                f"--ip={self.router_public_address}",
                self.c("wan"),
                self.router,
            ]
        )
        self.exec(self.router, "bash", "-c", ROUTER_SCRIPT.format(lan=self.lan))

    def _start_edge(self) -> None:
        self.run_container(
            self.edge,
            WIREGUARD_IMAGE,
            network=self.c("wan"),
            ip=self.edge_address,
            options=(
                *WG_RUN_OPTIONS,
                f"--volume={self.workdir / 'edge' / 'wg0.conf'}:/etc/wireguard/wg0.conf:ro",
            ),
        )
        self.run_container(
            self.edge_proxy,
            NGINX_IMAGE,
            network=f"container:{self.edge}",
            options=(f"--volume={self.workdir / 'edge' / 'conf.d'}:/etc/nginx/conf.d:ro",),
        )

    def _start_home(self) -> None:
        # Home's only way out is the router, as behind a real home router.
        self.run_container(
            self.home,
            WIREGUARD_IMAGE,
            network=self.c("lan"),
            ip=self.home_lan_address,
            options=(
                *WG_RUN_OPTIONS,
                # The heartbeat a home stack runs as its healthcheck: one datagram to the
                # edge's tunnel address is data, so a silent (restarted) edge makes home
                # start a new handshake after 15 s instead of when its session is 120 s old.
                *(
                    (
                        f"--health-cmd={HEARTBEAT}",
                        f"--health-interval={HEARTBEAT_SECONDS}s",
                        "--health-timeout=5s",
                        "--health-retries=3",
                    )
                    if self.heartbeat
                    else ("--no-healthcheck",)
                ),
                # A container's namespace forwards by default here: home must not, or a
                # compromised edge could send into the LAN through it.
                f"--sysctl=net.ipv4.ip_forward={HOME_IP_FORWARD}",
                f"--volume={self.workdir / 'home' / 'wg0.conf'}:/etc/wireguard/wg0.conf:ro",
            ),
            entrypoint="bash",
            command=(
                "-c",
                f"ip route replace default via {self.router_lan_address} "
                "&& exec /usr/local/bin/wireguard-entrypoint.sh",
            ),
        )
        self.run_container(
            self.standin,
            STANDIN_IMAGE,
            network=f"container:{self.home}",
            options=(
                "--user=1000:1000",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                "--env=STANDIN_MEDIA_BYTES=67108864",
                "--env=STANDIN_MEDIA_FILE=memory",
                f"--volume={self.workdir / 'home' / 'config'}:/config/config:ro",
            ),
        )

    def close(self) -> None:
        remove_topology(self.name)
        self.allocator.release(self.name)

    # ---- operations --------------------------------------------------------------------

    def exec(
        self, container: str, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(["docker", "exec", container, *args], timeout=timeout, check=check)

    def python(
        self, container: str, script: str, *args: str, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run a Python script inside a container (output captured, never raises)."""
        return run(
            ["docker", "exec", "-i", container, "python3", "-", *args],
            stdin=script,
            timeout=timeout,
            check=False,
        )

    def latest_handshake(self, container: str) -> int:
        """Seconds since the epoch of the last handshake with the peer (0: never)."""
        out = self.exec(container, "wg", "show", "wg0", "latest-handshakes").stdout.split()
        return int(out[1]) if len(out) == 2 else 0

    def peer_endpoint(self, container: str) -> str:
        out = self.exec(container, "wg", "show", "wg0", "endpoints").stdout.split()
        return out[1] if len(out) == 2 else ""

    def wait_handshake(self, container: str, after: float, timeout: float) -> float:
        """Seconds until `container` reports a handshake newer than `after` (epoch)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.latest_handshake(container) > max(int(after), 0):
                return time.monotonic() - started
            time.sleep(0.5)
        raise TopologyError(f"no handshake on {container} within {timeout:.0f} s\n{self.logs()}")

    def move_home_public_address(self, host: int) -> None:
        """The home connection's public address changes: the router's wan address moves."""
        run(["docker", "network", "disconnect", self.c("wan"), self.router])
        self.router_wan_host = host
        run(
            [
                "docker",
                "network",
                "connect",
                f"--ip={self.router_public_address}",
                self.c("wan"),
                self.router,
            ]
        )

    def inbound_drops(self) -> int:
        """Packets the router dropped because something outside tried to start a connection."""
        out = self.exec(self.router, "iptables", "-L", "FORWARD", "-v", "-x", "-n").stdout
        for line in out.splitlines():
            if "inbound-new" in line:
                return int(line.split()[0])
        raise TopologyError(f"no inbound-new rule on the router:\n{out}")

    def logs(self) -> str:
        """Every container's state and log tail, for a failing test's report."""
        parts: list[str] = []
        listed = run(
            ["docker", "ps", "-a", f"--filter=label={LABEL}={self.name}", "--format={{.Names}}"],
            check=False,
        ).stdout.split()
        for container in listed:
            state = run(
                ["docker", "inspect", "--format={{.State.Status}}", container], check=False
            ).stdout.strip()
            log = run(["docker", "logs", "--tail=60", container], check=False)
            parts.append(f"--- {container} ({state})\n{log.stdout}{log.stderr}")
        for container in (self.edge, self.home):
            show = run(["docker", "exec", container, "wg", "show", "wg0"], check=False)
            parts.append(f"--- wg show on {container}\n{show.stdout}{show.stderr}")
        return "\n".join(parts)


def remove_topology(name: str) -> None:
    label = f"label={LABEL}={name}"
    for kind in ("container", "network"):
        listed = run(
            [
                "docker",
                kind,
                "ls",
                *(["-a"] if kind == "container" else []),
                "-q",
                "--filter",
                label,
            ],
            check=False,
        ).stdout.split()
        if listed:
            rm = ["docker", "rm", "-f"] if kind == "container" else ["docker", "network", "rm"]
            run([*rm, *listed], check=False)


def remove_leftovers() -> None:
    """Remove topologies whose creating process is gone (a killed run)."""
    listed = run(
        ["docker", "ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Labels}}"],
        check=False,
    ).stdout.splitlines()
    names: set[str] = set()
    for labels in listed:
        values = dict(item.split("=", 1) for item in labels.split(",") if "=" in item)
        pid = values.get(PID_LABEL, "")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            names.add(values[LABEL])
    for name in names:
        remove_topology(name)
