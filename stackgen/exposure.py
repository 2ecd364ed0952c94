"""What a valid configuration still exposes, said in one line each at `init` and by `check`
every time (never silently): containers that run as root, and a Jellyfin that answers in
plain HTTP beside the proxy."""

from __future__ import annotations

from stackgen.models import STACK_USER, JellyfinNetwork, StackConfig


def root_user(config: StackConfig) -> str | None:
    if config.uid != 0:
        return None
    return (
        f"containers run as root (run_as {config.run_as}): a process that breaks out of the "
        f"proxy or Jellyfin is root on the stack's files; remove run_as to use {STACK_USER} "
        "(when stackgen runs as root), or name a user of your own"
    )


def plain_jellyfin(config: StackConfig) -> str | None:
    """Host networking publishes nothing through Docker: Jellyfin binds its own port on
    every interface of the machine, in plain HTTP, beside the proxy."""
    if config.jellyfin.network_mode is not JellyfinNetwork.HOST or config.deploy.swarm:
        return None
    port = config.jellyfin.port
    return (
        f"Jellyfin uses the host's network: it serves plain HTTP on port {port} on every "
        "interface of this machine, beside the proxy (no TLS, passwords in clear on the "
        "LAN); use jellyfin.network_mode 'bridge' (`init --jellyfin-network bridge`, no "
        f"DLNA or HDHomeRun discovery), or firewall port {port} to the LAN and "
        f"{config.network.subnet} (the proxy's network)"
    )


def plain_media_link(config: StackConfig) -> str | None:
    """Swarm, host-network Jellyfin: accepted only with deploy.allow_plain_media_link."""
    if not config.deploy.allow_plain_media_link:
        return None
    return (
        f"the proxy reaches Jellyfin in plain HTTP at {config.deploy.media_address} "
        "(deploy.allow_plain_media_link): tokens and passwords cross the LAN in clear when "
        "the proxy runs on another node; jellyfin.network_mode 'bridge' uses the encrypted "
        "overlay instead"
    )


def clear_overlay(config: StackConfig) -> str | None:
    if not config.deploy.swarm or config.deploy.encrypt_overlay:
        return None
    return (
        "the swarm overlay is not encrypted (deploy.encrypt_overlay = false): traffic between "
        "the proxy and Jellyfin on different nodes crosses the LAN in clear; encrypt it "
        "once the nodes' kernel has ESP (CONFIG_INET_ESP)"
    )


def warnings(config: StackConfig) -> list[str]:
    found = (
        root_user(config),
        plain_jellyfin(config),
        plain_media_link(config),
        clear_overlay(config),
    )
    return [w for w in found if w is not None]
