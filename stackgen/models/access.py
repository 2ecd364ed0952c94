"""The `access` table: who may reach Jellyfin through the proxy, and how often a client may
try to log in (docs/access.md says what each setting stops and what it costs).

Each proxy renders these settings natively; a proxy without the means for one (the
official Caddy and Apache images have no per-client request limit) says so through
`stackgen.exposure`, at `init` and at every `check`, never silently.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from stackgen.models.ban import BanSettings
from stackgen.models.fields import PRIVATE_RANGES, Cidr, Strict
from stackgen.models.gate import GateSettings
from stackgen.models.geo import GeoSettings
from stackgen.options import Setting


class LanOnlyRoute(StrEnum):
    """A Jellyfin surface kept to the LAN. Named, never a free path: each proxy spells its
    route (under the base path, any case, the `/emby` and `/mediabrowser` prefixes)."""

    METRICS = "metrics"  # /metrics: Prometheus metrics (library sizes, users, versions)
    STARTUP = "startup"  # /Startup/*: the first-run wizard's API (creates the admin)


# Where each named surface lives under Jellyfin's BaseUrl; matched case-insensitively.
LAN_ONLY_PATHS: Final = {
    LanOnlyRoute.METRICS: "metrics/?$",
    LanOnlyRoute.STARTUP: "startup/",
}

# Jellyfin's anonymous login routes (the ones an attacker guesses passwords through), as
# one case-insensitive regular expression over the path after BaseUrl and after an
# optional `/emby` or `/mediabrowser` (Jellyfin 10.x strips both). `Users/{id}/Authenticate`
# takes any id segment; a trailing slash reaches the same action in ASP.NET's routing.
LOGIN_ROUTES: Final = (
    "(users/authenticatebyname|users/[^/]+/authenticate|users/authenticatewithquickconnect"
    "|users/forgotpassword|users/forgotpassword/pin|quickconnect/initiate)/?"
)
LEGACY_PREFIXES: Final = "(/emby|/mediabrowser)?"
# Of those, the routes that take a password, whose failure is a 401 (wrong user or password)
# or a 403 (a disabled account, a remote login refused) from Jellyfin's UserManager. Not the
# others: Quick Connect answers 401 when it is off (an app asking is no attacker) and 404 for
# an unknown 256-bit secret; ForgotPassword and its Pin answer 200 whatever happened.
PASSWORD_ROUTES: Final = "(users/authenticatebyname|users/[^/]+/authenticate)/?"


class AccessSettings(Strict):
    # --- the login rate limit ---------------------------------------------------------------
    rate_limit: Annotated[
        StrictBool,
        Setting(
            "limit login attempts per client address at the proxy (429 with Retry-After)",
            readme="on Jellyfin's login routes only (`AuthenticateByName`, "
            "`/Users/{id}/Authenticate`, Quick Connect, `ForgotPassword`), any case, the "
            "`/emby` and `/mediabrowser` spellings and under the base path; other routes "
            "and other clients are unaffected. nginx, HAProxy and Traefik enforce it; the "
            "official Caddy and Apache images have no module for it, which `init` and "
            "`check` say ([docs/access.md](docs/access.md))",
        ),
    ] = True
    login_per_minute: Annotated[
        Annotated[StrictInt, Field(ge=1, le=600)],
        Setting(
            "sustained login attempts a client address may make per minute (1-600)",
            readme="Jellyfin disables an account after 3 failed logins (5 for an "
            "administrator), so a person never needs more; the limit slows guessing "
            "across accounts",
        ),
    ] = 5
    login_burst: Annotated[
        Annotated[StrictInt, Field(ge=0, le=100)],
        Setting(
            "login attempts a client address may make at once above the rate (0-100)",
            readme="room for a household behind one address logging in on several devices",
        ),
    ] = 5
    # --- who may reach the site, and which routes stay on the LAN -------------------------
    allow: Annotated[
        list[Cidr],
        Setting(
            "a CIDR allowed to reach the site; repeatable (none: everyone)",
            flag="allow",
            default="`[]` (everyone)",
            readme="any other client address gets 403 from the proxy. IPv4 or IPv6 ranges "
            "such as `203.0.113.0/24`; a range with host bits set is refused",
        ),
    ] = Field(default_factory=list)
    lan: Annotated[
        list[Cidr],
        Setting(
            "a CIDR counted as LAN for `access.lan_only`; repeatable",
            flag="lan",
            default="RFC 1918 and `fc00::/7`",
        ),
    ] = Field(default_factory=lambda: list(PRIVATE_RANGES))
    lan_only: Annotated[
        list[LanOnlyRoute],
        Setting(
            "a Jellyfin surface answered only to `access.lan` clients; repeatable",
            flag="lan-only",
            default="`metrics`, `startup`",
            readme="`metrics` is `/metrics`, `startup` the first-run wizard's `/Startup/*` "
            "(whoever finishes it first becomes the administrator); others get 403",
        ),
    ] = Field(default_factory=lambda: [LanOnlyRoute.METRICS, LanOnlyRoute.STARTUP])
    # The token gate: its own table (`[access.gate]`), its own module.
    gate: GateSettings = Field(default_factory=GateSettings)
    # The ban list: its own table (`[access.ban]`), its own module.
    ban: BanSettings = Field(default_factory=BanSettings)
    # The GeoIP country allow list: its own table (`[access.geo]`), its own module.
    geo: GeoSettings = Field(default_factory=GeoSettings)

    @model_validator(mode="after")
    def _consistent(self) -> AccessSettings:
        if self.lan_only and not self.lan:
            raise ValueError("access.lan_only needs access.lan (who is on the LAN)")
        if len(set(self.lan_only)) != len(self.lan_only):
            raise ValueError("access.lan_only names a route twice")
        ban = self.ban
        if self.rate_limit and ban.enabled and ban.feeder and ban.max_failures > self.login_reach:
            raise ValueError(
                f"access.ban.max_failures = {ban.max_failures} can never be reached: the login "
                f"rate limit lets at most {self.login_reach} attempts reach Jellyfin within "
                f"access.ban.find_seconds = {ban.find_seconds} (refused ones are not logged)"
            )
        if ban.enabled and ban.feeder and not (ban.jellyfin_log or ban.proxy_log):
            raise ValueError(
                "access.ban.feeder reads nothing: turn on access.ban.jellyfin_log or "
                "access.ban.proxy_log, or set access.ban.feeder = false"
            )
        return self

    @property
    def login_reach(self) -> int:
        """At most how many login attempts from one address the rate limit lets reach
        Jellyfin within the feeder's `find_seconds` (the token bucket's burst, then its rate):
        fail2ban counts only those, as Jellyfin logs only those."""
        return self.login_burst + 1 + self.login_per_minute * self.ban.find_seconds // 60

    @property
    def retry_after(self) -> int:
        """Seconds until a token bucket at the rate has room for one more attempt."""
        return -(-60 // self.login_per_minute)

    @property
    def window_limit(self) -> int:
        """For a proxy that counts attempts over a sliding minute instead of a token
        bucket (HAProxy): as many as the bucket lets through in its first minute."""
        return self.login_per_minute + self.login_burst

    def login_path_regex(self, subpath: str) -> str:
        """The login routes under `subpath`, anchored, for a case-insensitive match."""
        return f"^{_escaped(subpath)}{LEGACY_PREFIXES}/{LOGIN_ROUTES}$"

    def password_path_regex(self, subpath: str) -> str:
        """The login routes that take a password under `subpath`, anchored, for a
        case-insensitive match: the proxy's log of failed logins (access.ban.proxy_log)."""
        return f"^{_escaped(subpath)}{LEGACY_PREFIXES}/{PASSWORD_ROUTES}$"

    def lan_only_regex(self, subpath: str) -> str | None:
        """The LAN-only surfaces under `subpath`, anchored, or None when there are none."""
        if not self.lan_only:
            return None
        routes = "|".join(LAN_ONLY_PATHS[r] for r in self.lan_only)
        return f"^{_escaped(subpath)}{LEGACY_PREFIXES}/({routes})"


def _escaped(subpath: str) -> str:
    # A subpath is letters, digits, '-', '_', '.' and '/' (validated): only '.' is special.
    return subpath.replace(".", r"\.")
