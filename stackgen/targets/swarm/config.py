"""The swarm target's `deploy` table and the facts of the configuration that depend on it."""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field

from stackgen.models import DeployConfig, IPv4, IPv4Net, JellyfinNetwork, StackConfig
from stackgen.options import Setting

# Node labels that place the services on a swarm: the proxy on an edge node (the public
# address), Jellyfin on a media node (disks, GPU). Two keys, not one key with two values, so
# that one node can carry both roles.
EDGE_LABEL: Final = "stackgen.role.edge"
MEDIA_LABEL: Final = "stackgen.role.media"
# docker_gwbridge's subnet when the engine picks it: a task on an overlay network reaches a
# host address of its own node (a host-network Jellyfin) from this bridge.
DEFAULT_GATEWAY_SUBNET: Final = ipaddress.IPv4Network("172.18.0.0/16")


class SwarmDeploy(DeployConfig):
    target: Literal["swarm"] = "swarm"
    # Jellyfin on the media node's host network: where the proxy reaches it.
    media_address: Annotated[
        IPv4 | None,
        Setting(
            "swarm, host-network Jellyfin (then required): the media node's address",
            readme="where the proxy reaches Jellyfin",
        ),
    ] = None
    # Host network: the addresses the proxy's connections come from, as the media node
    # sees them: other nodes' own addresses (the overlay's gateway bridge masquerades to
    # them), and this bridge for a proxy on the media node itself.
    edge_addresses: Annotated[
        list[IPv4],
        Setting(
            "swarm, host network: an edge node's address as the media node sees it; repeatable",
            flag="edge-address",
            readme="added to `KnownProxies`",
        ),
    ] = Field(default_factory=list)
    gateway_subnet: Annotated[
        IPv4Net | None,
        Setting(
            "swarm, host network: docker_gwbridge's subnet",
            default=f"`{DEFAULT_GATEWAY_SUBNET}`",
            readme="a proxy on the media node connects from it; `up` refuses a mismatch with "
            "the real one and names the value",
        ),
    ] = None

    # A replaced task gets a new address.
    readdresses_services: ClassVar[bool] = True

    def known_proxies(self, config: StackConfig) -> list[str]:
        if config.jellyfin.network_mode is JellyfinNetwork.BRIDGE:
            # Swarm hands out task addresses itself: the overlay is stackgen's alone.
            return [str(config.network.subnet)]
        gateway = self.gateway_subnet or DEFAULT_GATEWAY_SUBNET
        return [str(gateway), *(str(a) for a in self.edge_addresses)]

    def media_host(self, config: StackConfig) -> str:
        if self.media_address is not None:
            return str(self.media_address)
        return super().media_host(config)

    def proxy_host(self, config: StackConfig) -> str:
        # The proxy's task has no pinned address: its service name resolves to it.
        return config.proxy

    def ports(self, config: StackConfig) -> list[tuple[int, int, str]]:
        """(published, in the container, protocol) of the proxy on a swarm."""
        ports = [(config.ports.http, 80, "tcp")] if config.publishes_http else []
        ports.append((config.ports.https, 443, "tcp"))
        if config.http3:
            ports.append((config.ports.https, 443, "udp"))
        return ports

    def check(self, config: StackConfig) -> None:
        if config.network.proxy_address is not None:
            raise ValueError(
                "network.proxy_address: a swarm cannot pin a task's address (KnownProxies "
                "names the overlay's subnet instead)"
            )
        if config.ipv6:
            raise ValueError(
                "ipv6: not on the swarm target yet (an IPv6 overlay and IPv6 ports in mode "
                "host were not tried here); use deploy.target 'compose'"
            )
        if str(config.ports.listen_address) != "0.0.0.0":  # noqa: S104
            raise ValueError(
                "ports.listen_address: a swarm publishes on every address of the node "
                "(mode host has no host IP)"
            )
        host = config.jellyfin.network_mode is JellyfinNetwork.HOST
        if host and self.media_address is None:
            raise ValueError(
                "deploy.media_address is needed with jellyfin.network_mode 'host' on a swarm: "
                "the proxy reaches Jellyfin at the media node's address"
            )
        if not host and self.media_address is not None:
            raise ValueError("deploy.media_address applies to jellyfin.network_mode 'host' only")
