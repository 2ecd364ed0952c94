"""The ban list (`access.ban`): client addresses the proxy itself refuses with 403.

Its own table under `[access]` (`[access.ban]`). The list lives in deny files in the proxy's
own syntax: the user's (`stackgen.banlist` writes and reads it) and, with the feeder on, the
one an in-stack fail2ban writes from Jellyfin's failed-login lines and the proxy's
(`stackgen.feeder`). What
it stops and what it costs: docs/access.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictInt

from stackgen.models.fields import Cidr, Strict
from stackgen.options import Setting


class BanSettings(Strict):
    enabled: Annotated[
        StrictBool,
        Setting(
            "a deny file the proxy reads natively: addresses in it get 403 on every route",
            flag="",
            readme="edited with `stackgen ban add`, `remove` and `list`, applied by the proxy "
            "by itself (a graceful reload; Traefik: copied into the folder it watches, no "
            "reload); rendered empty. Every proxy "
            "([docs/access.md](docs/access.md#the-ban-list-accessban))",
        ),
    ] = True
    feeder: Annotated[
        StrictBool,
        Setting(
            "an in-stack fail2ban bans a client address after `max_failures` failed logins "
            "in Jellyfin's log",
            flag="",
            readme="it writes a second deny file the proxy reads beside yours (no iptables, no "
            "`NET_ADMIN`; with Traefik plain addresses, which Traefik's container turns into a "
            "router); only with `enabled`, on the compose target, and at edge-home's edge from "
            "the proxy's log alone (`proxy_log`: Jellyfin's log is at home); not on a swarm",
        ),
    ] = True
    jellyfin_log: Annotated[
        StrictBool,
        Setting(
            "the feeder reads Jellyfin's failed-login lines (its file log)",
            flag="",
            readme="every failed login Jellyfin judged one, whatever route or spelling",
        ),
    ] = True
    proxy_log: Annotated[
        StrictBool,
        Setting(
            "the proxy also sends the feeder one line per failed login (401 or 403 on a "
            "password route)",
            flag="",
            readme="time, client address, status and route only, as datagrams a dead feeder "
            "drops; its own jail, its own count; every proxy but Traefik "
            "([docs/access.md](docs/access.md#the-proxys-login-failures-accessbanproxy_log))",
        ),
    ] = False
    max_failures: Annotated[
        StrictInt,
        Field(ge=1, le=100),
        Setting(
            "failed logins from one address, within `find_seconds`, that get it banned",
            flag="",
            readme="at most what the login rate limit lets through at once "
            "(`login_burst` + 1), so the ban comes before the limit slows the attacker; "
            "attempts the limit refuses never reach Jellyfin and are not counted, so a number "
            "the limit never lets through within `find_seconds` is refused",
        ),
    ] = 5
    find_seconds: Annotated[
        StrictInt,
        Field(ge=10, le=86_400),
        Setting("the window in which `max_failures` failed logins count (10-86400)", flag=""),
    ] = 600
    ban_seconds: Annotated[
        StrictInt,
        Field(ge=60, le=31_536_000),
        Setting(
            "how long the feeder bans an address (60 s to a year)",
            flag="",
            readme="`stackgen ban remove` lifts it earlier",
        ),
    ] = 3600
    never: Annotated[
        list[Cidr],
        Setting(
            "a CIDR the feeder never bans; repeatable",
            flag="",
            default="`[]` (loopback and the proxy network are never banned anyway)",
            readme="a CDN's or a tunnel's ranges, whose edges connect for many clients, or "
            "your own networks",
        ),
    ] = Field(default_factory=list)
