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


def unsent_login_log(config: StackConfig) -> str | None:
    """access.ban.proxy_log asked of a proxy that does not send its failed logins: said, not
    silently left out."""
    why = registry.spec(config.proxy).no_login_log
    ban = config.access.ban
    if not (ban.enabled and ban.feeder and ban.proxy_log) or not why:
        return None
    if not config.deploy.feeds_ban_list_from_proxy:
        return None  # no feeder from the proxy's log on this target
    source = (
        "the feeder reads Jellyfin's log alone"
        if config.ban_reads_jellyfin_log
        else "there is no feeder, so failed logins ban no one"
    )
    return (
        f"access.ban.proxy_log: {config.proxy} does not send its failed logins: {why}; "
        f"{source} — set access.ban.proxy_log = false to accept it (docs/access.md)"
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
        unsent_login_log(config),
        slow_geo(config),
    )
    return [w for w in found if w is not None] + config.deploy.exposure(config)
