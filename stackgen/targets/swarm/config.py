"""The swarm target's `deploy` table and the facts of the configuration that depend on it."""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar, Final, Literal

from pydantic import Field, StrictBool

from stackgen.models import DeployConfig, IPv4, JellyfinNetwork, PrivateSubnet, StackConfig
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
        PrivateSubnet | None,
        Setting(
            "swarm, host network: docker_gwbridge's subnet",
            default=f"`{DEFAULT_GATEWAY_SUBNET}`",
            readme="a proxy on the media node connects from it; a private range (as "
            "`network.subnet`: `0.0.0.0/0` would trust every client's `X-Forwarded-For`); "
            "`up` refuses a mismatch with the real one and names the value",
        ),
    ] = None
    # Host network: the proxy reaches Jellyfin in plain HTTP at the media node's address;
    # only when the user says so (one node, or a LAN they trust).
    allow_plain_media_link: Annotated[
        StrictBool,
        Setting(
            "swarm, host network: accept that the proxy reaches Jellyfin in plain HTTP at "
            "`deploy.media_address`",
            readme="refused otherwise, with the reason",
        ),
    ] = False
    # The overlay's traffic between nodes in IPsec (ESP). false only where the nodes' kernel
    # has no ESP (CONFIG_INET_ESP): Docker then cannot program the tunnels.
    encrypt_overlay: Annotated[
        StrictBool,
        Setting(
            "swarm: the overlay's traffic between nodes in IPsec",
            flag="",
            readme="`false` only where the nodes' kernel has no ESP "
            "([docs/swarm.md](docs/swarm.md))",
        ),
    ] = True

    # A replaced task gets a new address.
    readdresses_services: ClassVar[bool] = True
    jellyfin_beside_proxy: ClassVar[bool] = False
    credentials_as_secrets: ClassVar[bool] = True
    offers_token_gate: ClassVar[bool] = False  # refused in check() below

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

    def exposure(self, config: StackConfig) -> list[str]:
        found = []
        if self.allow_plain_media_link:
            found.append(
                f"the proxy reaches Jellyfin in plain HTTP at {self.media_address} "
                "(deploy.allow_plain_media_link): tokens and passwords cross the LAN in clear "
                "when the proxy runs on another node; jellyfin.network_mode 'bridge' uses the "
                "encrypted overlay instead"
            )
        if not self.encrypt_overlay:
            found.append(
                "the swarm overlay is not encrypted (deploy.encrypt_overlay = false): traffic "
                "between the proxy and Jellyfin on different nodes crosses the LAN in clear; "
                "encrypt it once the nodes' kernel has ESP (CONFIG_INET_ESP)"
            )
        return found

    @property
    def feeds_ban_list(self) -> bool:
        # Jellyfin's log and the proxy's ban folder are bind mounts of the nodes each runs
        # on, which need not be one: not tried here.
        return False

    @property
    def feeds_ban_list_from_proxy(self) -> bool:
        # The proxy's task may move between nodes, the feeder's socket folder with it: not
        # tried here either.
        return False

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
        if config.token_gate.on:
            raise ValueError(
                "access.gate.mode 'token': not on the swarm target yet (its gate service and the "
                "proxies' sub-requests were tried on Compose only); use deploy.target 'compose'"
            )
        if config.access.geo.on:
            raise ValueError(
                "access.geo: not on the swarm target yet (a rendered file becomes a Swarm "
                "config, which Docker limits to 500 KB, less than a large country's list); use "
                "deploy.target 'compose'"
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
        if host and not self.allow_plain_media_link:
            raise ValueError(
                f"jellyfin.network_mode 'host' on a swarm: the proxy would reach Jellyfin in "
                f"plain HTTP at {self.media_address}, across the LAN when that is "
                "another machine (tokens and passwords in clear); use jellyfin.network_mode "
                "'bridge' (the encrypted overlay), or set deploy.allow_plain_media_link = true "
                "(`init --allow-plain-media-link`) when the proxy runs on the media node or "
                "the LAN between them is trusted"
            )
