"""The compose target's `deploy` table: no setting of its own."""

from __future__ import annotations

from typing import Literal

from stackgen.models import DeployConfig, StackConfig


class ComposeDeploy(DeployConfig):
    target: Literal["compose"] = "compose"

    def known_proxies(self, config: StackConfig) -> list[str]:
        """The proxy's pinned addresses: IPv4, and IPv6 with `ipv6` (Jellyfin drops an IPv6
        entry unless EnableIPv6 is on, which `ipv6` also sets)."""
        addresses = [str(config.network.proxy_ip)]
        if config.network.proxy_ip6 is not None:
            addresses.append(str(config.network.proxy_ip6))
        return addresses
