"""What a valid configuration still exposes, said in one line each at `init` and by `check`
every time (never silently): containers that run as root, a Jellyfin that answers in
plain HTTP beside the proxy, login routes the proxy cannot rate-limit, and what the deploy
target's own settings expose."""

from __future__ import annotations

from stackgen.models import STACK_USER, JellyfinNetwork, StackConfig
from stackgen.proxies import registry


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
    host = config.jellyfin.network_mode is JellyfinNetwork.HOST
    if not host or not config.deploy.jellyfin_beside_proxy:
        return None
    port = config.jellyfin.port
    return (
        f"Jellyfin uses the host's network: it serves plain HTTP on port {port} on every "
        "interface of this machine, beside the proxy (no TLS, passwords in clear on the "
        "LAN); use jellyfin.network_mode 'bridge' (`init --jellyfin-network bridge`, no "
        f"DLNA or HDHomeRun discovery), or firewall port {port} to the LAN and "
        f"{config.network.subnet} (the proxy's network)"
    )


def unlimited_logins(config: StackConfig) -> str | None:
    """access.rate_limit asked of a proxy whose image has no means for it: said, not
    silently rendered as nothing."""
    why = registry.spec(config.proxy).no_rate_limit
    if not config.access.rate_limit or not why:
        return None
    return (
        f"access.rate_limit: {config.proxy} does not limit login attempts: {why}; Jellyfin's "
        "own lockout (3 failures disable an account) is all that slows password guessing — "
        "use nginx, HAProxy or Traefik, or set access.rate_limit = false to accept it "
        "(docs/access.md)"
    )


def unfed_ban_list(config: StackConfig) -> str | None:
    """access.ban.feeder asked of a proxy it is not rendered with: said, not silently
    left out."""
    why = registry.spec(config.proxy).no_ban_feeder
    ban = config.access.ban
    if not (ban.enabled and ban.feeder and config.deploy.feeds_ban_list) or not why:
        return None
    return (
        f"access.ban.feeder: no fail2ban with {config.proxy}: {why}; failed logins ban no one "
        "by themselves (the login rate limit still answers 429, and `stackgen ban add` "
        "works) — set access.ban.feeder = false to accept it (docs/access.md)"
    )


def slow_geo(config: StackConfig) -> str | None:
    """access.geo with a proxy whose per-request cost grows with the list: said, so that a
    large country is a choice (docs/access.md has the measurement)."""
    why = registry.spec(config.proxy).geo_linear
    if not config.access.geo.on or not why:
        return None
    return (
        f"access.geo: {why} on every request: with tens of thousands of networks (a large "
        "country) that is a fraction of a millisecond to milliseconds of CPU per request; "
        "nginx or HAProxy look them up in a tree at no measurable cost (docs/access.md)"
    )


def warnings(config: StackConfig) -> list[str]:
    found = (
        root_user(config),
        plain_jellyfin(config),
        unlimited_logins(config),
        unfed_ban_list(config),
        slow_geo(config),
    )
    return [w for w in found if w is not None] + config.deploy.exposure(config)
