"""The edge-home target's `deploy` table: where home dials the edge, the tunnel's addresses
and timers, and which side a folder holds (docs/edge-home.md)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, ClassVar, Final, Literal

from pydantic import AfterValidator, Field, StrictInt

from stackgen.models import (
    DeployConfig,
    JellyfinNetwork,
    Port,
    PrivateSubnet,
    StackConfig,
)
from stackgen.options import Setting

Side = Literal["edge", "home"]
SIDES: Final[tuple[Side, ...]] = ("edge", "home")
DEFAULT_TUNNEL: Final = ipaddress.IPv4Network("10.203.0.0/30")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def validate_edge_host(value: str) -> str:
    """A name or an address home can dial: it is written into wg0.conf's `Endpoint`, so
    nothing but an address or DNS labels (no space, no line break, no port)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    name = value.lower().removesuffix(".")
    if not name or len(name) > 253 or not all(_HOST_LABEL.match(p) for p in name.split(".")):
        raise ValueError(
            f"{value!r} is not a host name or an IP address (letters, digits, inner hyphens "
            "and dots; the port is deploy.wg_port)"
        )
    return name


def _tunnel(value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    if value.prefixlen > 30:
        raise ValueError(f"{value} has no room for two addresses: a /30 or larger is needed")
    return value


EdgeHost = Annotated[str, AfterValidator(validate_edge_host)]
Seconds = Annotated[StrictInt, Field(ge=1, le=3600)]


class EdgeHomeDeploy(DeployConfig):
    # An edge serves only internet clients (DLNA and LAN discovery cannot cross it), so
    # Jellyfin's anonymous media routes are closed unless the user opens them (docs/edge-home.md).
    init_defaults: ClassVar[dict[str, tuple[object, str]]] = {
        "access.gate.mode": (
            "token",
            'edge-home: the token gate is on (access.gate.mode = "token"): an edge serves only '
            "internet clients, and Jellyfin's media routes answer anyone with an item id "
            "(--gate off to turn it off; docs/edge-home.md)",
        )
    }
    target: Literal["edge-home"] = "edge-home"
    side: Annotated[
        Side | None,
        Setting(
            "edge-home: the side this folder holds, `edge` or `home`",
            flag="",
            readme="written by `init` into each side's stackgen.toml (`edge/`, `home/`)",
        ),
    ] = None
    edge_host: Annotated[
        EdgeHost | None,
        Setting(
            "edge-home (then required): the edge server's name or address, which home dials",
            readme="written into home's wg0.conf as the peer's `Endpoint`",
        ),
    ] = None
    wg_port: Annotated[
        Port,
        Setting(
            "edge-home: the WireGuard port (UDP) the edge publishes",
            port=True,
        ),
    ] = 51820
    tunnel: Annotated[
        Annotated[PrivateSubnet, AfterValidator(_tunnel)],
        Setting(
            "edge-home: the tunnel's range: its first address is the edge's, the second home's",
            readme="a private /30 or larger that overlaps neither side's networks; Jellyfin's "
            "`KnownProxies` is exactly the edge's address",
        ),
    ] = DEFAULT_TUNNEL
    keepalive: Annotated[
        Seconds,
        Setting(
            "edge-home: seconds between home's keepalives (`PersistentKeepalive`)",
            readme="keeps home's NAT mapping open; 25 is WireGuard's advice",
        ),
    ] = 25
    heartbeat: Annotated[
        Seconds,
        Setting(
            "edge-home: seconds between home's heartbeats to the edge (its healthcheck)",
            readme="a datagram into the tunnel: after an edge restart home sees no answer and "
            "makes a new handshake within this + 15 s, instead of up to two minutes",
        ),
    ] = 10

    @property
    def edge_address(self) -> ipaddress.IPv4Address:
        """The edge's tunnel address: where the proxy's connections to Jellyfin come from."""
        return self.tunnel.network_address + 1

    @property
    def home_address(self) -> ipaddress.IPv4Address:
        """Home's tunnel address: where the proxy reaches Jellyfin."""
        return self.tunnel.network_address + 2

    @property
    def runs_proxy(self) -> bool:
        return self.side == "edge"

    @property
    def runs_jellyfin(self) -> bool:
        return self.side == "home"

    def sides(self, config: StackConfig) -> dict[str, StackConfig]:
        """`edge/` and `home/`, each a Compose project of its own (`<project>-edge`,
        `<project>-home`). Home's network is the block after the edge's, so that both sides
        also run on one machine (a demo, the tests) without overlapping."""
        if self.side is not None:
            return {"": config}
        subnet = config.network.subnet
        following = ipaddress.IPv4Network(
            (int(subnet.network_address) + subnet.num_addresses, subnet.prefixlen)
        )
        home_network = config.network.model_copy(
            update={"subnet": following, "proxy_address": None}
        )
        # Jellyfin joins the tunnel endpoint's network namespace, which is on a bridge.
        jellyfin = config.jellyfin.model_copy(update={"network_mode": JellyfinNetwork.BRIDGE})
        return {
            side: config.model_copy(
                update={
                    "deploy": self.model_copy(update={"side": side}),
                    "project": f"{config.project}-{side}",
                    "jellyfin": jellyfin,
                    **({"network": home_network} if side == "home" else {}),
                }
            )
            for side in SIDES
        }

    def known_proxies(self, config: StackConfig) -> list[str]:
        # The proxy shares the edge endpoint's network namespace: its connections leave
        # from the edge's tunnel address, with no NAT on the way.
        return [str(self.edge_address)]

    def jellyfin_address(self, config: StackConfig) -> str:
        return str(self.home_address)

    def gate_address(self, config: StackConfig) -> ipaddress.IPv4Address:
        # The gate shares the edge endpoint's namespace with the proxy (its tunnel address
        # is the one Jellyfin sees, like the proxy's): the proxy asks it on loopback.
        return ipaddress.IPv4Address("127.0.0.1")

    def check(self, config: StackConfig) -> None:
        if self.edge_host is None:
            raise ValueError(
                "deploy.edge_host is needed with deploy.target 'edge-home' (`init --edge-host "
                "HOST`): the edge server's name or address, which home dials"
            )
        if self.side is not None and config.jellyfin.network_mode is JellyfinNetwork.HOST:
            raise ValueError(
                "jellyfin.network_mode 'host' is not on the edge-home target: Jellyfin shares "
                "the tunnel endpoint's network at home"
            )
        if config.ipv6:
            raise ValueError("ipv6: not on the edge-home target (the tunnel is IPv4)")
        for name, subnet in (("network.subnet", config.network.subnet),):
            if subnet.overlaps(self.tunnel):
                raise ValueError(f"deploy.tunnel {self.tunnel} overlaps {name} {subnet}")

    def exposure(self, config: StackConfig) -> list[str]:
        return []
