"""The `ports` and `network` tables: where the proxy is published and its pinned network
(IPv4, and IPv6 with `ipv6`)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final

from pydantic import (
    AfterValidator,
    model_validator,
)

from stackgen.models.fields import IPv4, IPv6, IPv6Net, Port, PrivateSubnet, Strict
from stackgen.options import Setting


class PortsConfig(Strict):
    http: Annotated[Port, Setting("published HTTP port", flag="http-port", port=True)] = 80
    https: Annotated[
        Port, Setting("published HTTPS port (not ports.http)", flag="https-port", port=True)
    ] = 443
    listen_address: Annotated[IPv4, Setting("host address the ports are published on")] = (
        ipaddress.IPv4Address("0.0.0.0")  # noqa: S104
    )
    listen_address6: Annotated[
        IPv6, Setting("host IPv6 address the ports are published on (with `ipv6`)", flag="")
    ] = ipaddress.IPv6Address("::")

    @model_validator(mode="after")
    def _distinct(self) -> PortsConfig:
        if self.http == self.https:
            raise ValueError(f"ports.http and ports.https are both {self.http}")
        return self


# The unique local range (RFC 4193) an IPv6 proxy network must be in, and stackgen's own
# /32 of it, from which the default subnet is derived (ipv6_subnet_for).
ULA_RANGE: Final = ipaddress.IPv6Network("fc00::/7")
STACKGEN_ULA_PREFIX: Final = ipaddress.IPv6Network("fd6a:6600::/32")


def ipv6_subnet_for(subnet: ipaddress.IPv4Network) -> ipaddress.IPv6Network:
    """The default IPv6 subnet of a proxy network: a /64 of stackgen's ULA /32 whose next
    32 bits are the IPv4 subnet's network address (172.30.77.0/24 -> fd6a:6600:ac1e:4d00::/64).
    Deterministic, and distinct for every distinct IPv4 network address, so stacks that do
    not share an IPv4 subnet do not share an IPv6 one either."""
    base = int(STACKGEN_ULA_PREFIX.network_address) | (int(subnet.network_address) << 64)
    return ipaddress.IPv6Network((base, 64))


def validate_subnet6(value: ipaddress.IPv6Network) -> ipaddress.IPv6Network:
    if not value.subnet_of(ULA_RANGE):
        raise ValueError(
            f"network.subnet6 {value} is not a unique local range (fc00::/7, e.g. fd00::/64)"
        )
    if value.num_addresses < 8:
        raise ValueError(f"network.subnet6 {value} is too small (use /125 or larger)")
    return value


Subnet6 = Annotated[IPv6Net, AfterValidator(validate_subnet6)]


class NetworkConfig(Strict):
    subnet: Annotated[
        PrivateSubnet,
        Setting(
            "pinned subnet of the proxy network",
            readme="other containers get addresses from its upper half only. A private range "
            "(RFC 1918 or `100.64.0.0/10`): public, loopback, link-local and multicast ranges "
            "are refused",
        ),
    ] = ipaddress.IPv4Network("172.30.77.0/24")
    proxy_address: Annotated[
        IPv4 | None,
        Setting(
            "the proxy's pinned address = Jellyfin's `KnownProxies`",
            flag="",
            default="2nd host of the subnet",
            readme="Compose target only: a swarm cannot pin a task's address",
        ),
    ] = None
    # With `ipv6 = true`: the proxy network's IPv6 subnet, pinned (default: derived from
    # `subnet`, written into stackgen.toml by the stack's validation).
    subnet6: Annotated[
        Subnet6 | None,
        Setting(
            "with `ipv6`: the proxy network's IPv6 subnet, a unique local range (`fc00::/7`)",
            default="derived from `network.subnet`",
            readme="at least 8 addresses; by default `fd6a:6600:XXXX:XXXX::/64`, whose "
            "`XXXX:XXXX` is the IPv4 subnet's network address (`172.30.77.0/24` → "
            "`fd6a:6600:ac1e:4d00::/64`), written into `stackgen.toml` by `init` so it stays "
            "pinned. The proxy's IPv6 address has the host number of its IPv4 one (`.2` → "
            "`::2`); other containers take the subnet's third quarter. Refused in one line "
            "(exit 3): a range outside `fc00::/7`, a subnet too small for the proxy's host "
            "number in its lower half, one overlapping an IPv6 `jellyfin.lan_subnets` entry, "
            "or `subnet6` without `ipv6 = true`. `up` refuses (exit 6), before starting "
            "anything, a `network.subnet` or `network.subnet6` that overlaps another Docker "
            "network, and names that network",
        ),
    ] = None

    @model_validator(mode="after")
    def _address_in_subnet(self) -> NetworkConfig:
        if self.subnet.num_addresses < 8:
            raise ValueError(f"network.subnet {self.subnet} is too small (use /29 or larger)")
        if self.proxy_address is not None:
            usable = list(self.subnet.hosts())[1:]  # .1 is the bridge gateway
            if self.proxy_address not in usable:
                raise ValueError(
                    f"network.proxy_address {self.proxy_address} is not a usable address of "
                    f"{self.subnet} (the first host is the gateway)"
                )
            if self.proxy_address in self.dynamic_range:
                raise ValueError(
                    f"network.proxy_address {self.proxy_address} is in the upper half of "
                    f"{self.subnet}, which Docker hands out to other containers"
                )
        return self

    @property
    def dynamic_range(self) -> ipaddress.IPv4Network:
        """Where Docker may place other containers: never on the proxy's pinned address."""
        return list(self.subnet.subnets(prefixlen_diff=1))[1]

    @property
    def proxy_ip(self) -> ipaddress.IPv4Address:
        """Pinned so Jellyfin's KnownProxies can name exactly this address."""
        if self.proxy_address is not None:
            return self.proxy_address
        return self.subnet.network_address + 2

    @property
    def dynamic_range6(self) -> ipaddress.IPv6Network | None:
        """The IPv6 twin of dynamic_range, away from the proxy's pinned address: the third
        quarter of subnet6. Not the upper half as in IPv4: engine 20.10 cannot allocate from
        a range that ends at a /64's last address ("invalid bit range")."""
        if self.subnet6 is None:
            return None
        return list(self.subnet6.subnets(prefixlen_diff=2))[2]

    @property
    def proxy_ip6(self) -> ipaddress.IPv6Address | None:
        """The proxy's pinned IPv6 address: the same host number as its IPv4 address (.2 ->
        ::2), so one look at either tells the other."""
        if self.subnet6 is None:
            return None
        offset = int(self.proxy_ip) - int(self.subnet.network_address)
        return self.subnet6.network_address + offset
