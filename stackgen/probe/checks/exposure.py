"""What the public URL gives away without a token: the audit of docs/access.md.

Each check asks as an anonymous client would, from wherever verify runs (from a LAN client
the LAN-only answers are expected, so those checks then judge nothing), and names the
`[access]` setting that closes what it finds. Nothing here logs in: the rate-limit check
sends login requests without a body, which the proxy counts and Jellyfin refuses before
it looks at any account (no failed-login line, no lockout).
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from stackgen.probe import client
from stackgen.probe.base import (
    UPSTREAM,
    NotApplicable,
    Outcome,
    check,
    failed,
    passed,
    warned,
)
from stackgen.probe.context import ProbeContext

# Enough to pass any sensible limit (stackgen's default lets 10 through in a minute), few
# enough to stay a probe: one connection each, stopped at the first 429.
LOGIN_ATTEMPTS = 30
REFUSED = (401, 403)

HINT_METRICS = (
    'keep /metrics on the LAN: access.lan_only = ["metrics"] (stackgen\'s default), or turn '
    "Jellyfin's metrics off (EnableMetrics in system.xml)"
)
HINT_WIZARD = (
    "finish Jellyfin's start-up wizard now (whoever finishes it becomes the administrator), "
    'and keep it on the LAN: access.lan_only = ["startup"] (stackgen\'s default)'
)
HINT_USERS = (
    "/Users/Public names every user who is not hidden: hide users in Jellyfin (Dashboard > "
    "Users > Hide this user from login screens), or admit only known networks (access.allow)"
)
HINT_MEDIA = (
    "Jellyfin serves these routes without a token to anyone who has an item id (its "
    "upstream issues 13983, 13986, 13988): admit only known networks (access.allow), or "
    "put the token gate in front (access.gate, docs/access.md)"
)
# Where the target refuses the token gate (edge-home, swarm): only what works there.
HINT_MEDIA_NO_GATE = (
    "Jellyfin serves these routes without a token to anyone who has an item id (its "
    "upstream issues 13983, 13986, 13988): admit only known networks (access.allow, "
    "docs/access.md)"
)
# Behind the token gate only images answer, while access.gate.images is "open" (its default).
HINT_MEDIA_GATE_IMAGES = (
    'the token gate lets images through without a token (access.gate.images = "open", its '
    "default, because jellyfin-web loads posters with no token): access.gate.images = "
    '"token" closes them too, and leaves the web client without posters (docs/access.md)'
)
HINT_RATE = (
    "limit login attempts per client at the proxy: access.rate_limit = true with nginx, "
    "HAProxy or Traefik (the official Caddy and Apache images have no means: docs/access.md)"
)

HINT_SPOOF = (
    "trust forwarded headers only from your own proxies: drop X-Forwarded-For, X-Real-IP "
    "and Forwarded from clients and key limits and allow lists on the connection's address "
    "(every stackgen proxy does; a CDN or edge in front must be the only one trusted)"
)


def _lan_answers_expected(ctx: ProbeContext) -> None:
    if ctx.target.from_lan:
        raise NotApplicable("run from the LAN: LAN-only routes are expected to answer here")


@check(
    "exposure.metrics",
    "/metrics is not served to the internet",
    HINT_METRICS,
    needs=UPSTREAM,
)
def exposure_metrics(ctx: ProbeContext) -> Outcome:
    _lan_answers_expected(ctx)
    resp = ctx.https(f"{ctx.url.base}/metrics")
    details = {"url": resp.url, "status": resp.status}
    if resp.status == 200:
        return failed(
            "/metrics answers without a token: library sizes, users and versions for anyone",
            HINT_METRICS,
            **details,
        )
    if resp.status == 403:
        return passed("/metrics refused (403)", **details)
    return passed(f"/metrics not served ({resp.status}: Jellyfin's metrics are off)", **details)


@check(
    "exposure.wizard",
    "the start-up wizard is finished or not reachable",
    HINT_WIZARD,
    needs=UPSTREAM,
)
def exposure_wizard(ctx: ProbeContext) -> Outcome:
    info = ctx.https(f"{ctx.url.base}/System/Info/Public")
    try:
        completed = json.loads(info.body).get("StartupWizardCompleted")
    except (ValueError, AttributeError) as exc:
        raise client.ProbeError(f"/System/Info/Public is not Jellyfin JSON: {exc}") from exc
    if completed is True:
        return passed("the start-up wizard is finished", completed=True)
    _lan_answers_expected(ctx)
    resp = ctx.https(f"{ctx.url.base}/Startup/Configuration")
    details = {"completed": completed, "url": resp.url, "status": resp.status}
    if resp.status in REFUSED:
        return passed(f"wizard unfinished, but refused from here ({resp.status})", **details)
    return failed(
        f"the start-up wizard is unfinished and answers from here ({resp.status}): the "
        "first visitor to finish it becomes the administrator",
        HINT_WIZARD,
        **details,
    )


@check(
    "exposure.public-users",
    "/Users/Public names no user",
    HINT_USERS,
    needs=UPSTREAM,
)
def exposure_public_users(ctx: ProbeContext) -> Outcome:
    resp = ctx.https(f"{ctx.url.base}/Users/Public")
    details: dict[str, object] = {"url": resp.url, "status": resp.status}
    if resp.status != 200:
        return passed(f"/Users/Public refused ({resp.status})", **details)
    try:
        users = json.loads(resp.body)
    except ValueError:
        users = None
    if not isinstance(users, list):
        return warned("/Users/Public answers 200 with something other than a list", HINT_USERS)
    details["count"] = len(users)  # names are not repeated in the report
    if not users:
        return passed("/Users/Public answers with no user", **details)
    return warned(
        f"/Users/Public names {len(users)} user(s) to anyone: half of a login",
        HINT_USERS,
        **details,
    )


@check(
    "exposure.anonymous-media",
    "streams, images and subtitles ask for a token",
    HINT_MEDIA,
    needs=UPSTREAM,
)
def exposure_anonymous_media(ctx: ProbeContext) -> Outcome:
    # A made-up item id: a route that asks for a token refuses before it looks the item
    # up (401); one that does not answers 404 for an unknown item, or serves it.
    item = uuid.uuid4().hex
    routes = {
        "stream": f"/Videos/{item}/stream?static=true",
        "image": f"/Items/{item}/Images/Primary",
        "subtitle": f"/Videos/{item}/{item}/Subtitles/0/Stream.srt",
    }
    statuses = {}
    for name, path in routes.items():
        resp = client.request(
            ctx.target,
            f"{ctx.url.base}{path}",
            method="HEAD",
            context=ctx.insecure_context(),
        )
        statuses[name] = resp.status
    open_routes = [name for name, status in statuses.items() if status not in REFUSED]
    if not open_routes:
        return passed("every media route asked for a token", statuses=statuses)
    if ctx.target.token_gate and open_routes == ["image"]:
        hint = HINT_MEDIA_GATE_IMAGES
    else:
        hint = HINT_MEDIA if ctx.target.gate_offered else HINT_MEDIA_NO_GATE
    return warned(
        f"answered without a token: {', '.join(open_routes)} (by item id)", hint, statuses=statuses
    )


@dataclass(frozen=True)
class LoginRun:
    statuses: tuple[int, ...]
    retry_after: str | None  # of the 429, when one came

    @property
    def limited(self) -> bool:
        return bool(self.statuses) and self.statuses[-1] == 429


def _login(ctx: ProbeContext, headers: dict[str, str] | None = None) -> client.Response:
    return client.request(
        ctx.target,
        f"{ctx.url.base}/Users/AuthenticateByName",
        method="POST",
        headers=headers,
        context=ctx.insecure_context(),
    )


def _login_run(ctx: ProbeContext) -> LoginRun:
    """Login requests until the first 429 (at most LOGIN_ATTEMPTS), once per verify."""

    def run() -> LoginRun:
        statuses: list[int] = []
        for _ in range(LOGIN_ATTEMPTS):
            resp = _login(ctx)
            statuses.append(resp.status)
            if resp.status == 429:
                return LoginRun(tuple(statuses), resp.header("Retry-After"))
        return LoginRun(tuple(statuses), None)

    return ctx.memo(("login-run",), run)


@check(
    "exposure.login-rate-limit",
    "the login route is rate-limited per client",
    HINT_RATE,
    needs=UPSTREAM,
)
def exposure_login_rate_limit(ctx: ProbeContext) -> Outcome:
    found = _login_run(ctx)
    attempts = len(found.statuses)
    details = {"attempts": attempts, "retry_after": found.retry_after}
    if not found.limited:
        return warned(
            f"{attempts} login requests in a row, none refused: password guessing is "
            "slowed only by Jellyfin's lockout",
            HINT_RATE,
            statuses=sorted(set(found.statuses)),
        )
    if not found.retry_after:
        return warned(
            f"429 after {attempts} attempts, but no Retry-After",
            "send Retry-After with the 429, so clients know when to try again",
            **details,
        )
    return passed(
        f"429 after {attempts} attempts (Retry-After {found.retry_after}); verify used up "
        "this address's login allowance for a while",
        **details,
    )


@check(
    "exposure.forwarded-for",
    "a client cannot choose its address with X-Forwarded-For",
    HINT_SPOOF,
    needs=UPSTREAM,
)
def exposure_forwarded_for(ctx: ProbeContext) -> Outcome:
    # Judged by the rate limit: once this address is refused, a request that claims
    # another address must still be refused. Without a limit there is nothing to judge by.
    if not _login_run(ctx).limited:
        raise NotApplicable("no login rate limit to judge it by")
    claimed = f"198.51.100.{secrets.randbelow(254) + 1}"
    resp = _login(
        ctx, {"X-Forwarded-For": claimed, "X-Real-IP": claimed, "Forwarded": f"for={claimed}"}
    )
    details = {"claimed": claimed, "status": resp.status}
    if resp.status == 429:
        return passed("the proxy kept this address, whatever the client claimed", **details)
    return failed(
        f"refused as itself, served ({resp.status}) when claiming {claimed}: a client "
        "chooses its own address, past the rate limit and any allow list",
        HINT_SPOOF,
        **details,
    )


# Both publishers rebuild their country databases at least monthly: two months old means an
# update was missed, and networks that changed country since are judged by old data.
GEO_STALE_DAYS = 60
HINT_GEO = (
    "download the country database again (GeoLite2-Country: geoipupdate, or MaxMind's site "
    "with a free account; DB-IP's IP-to-Country Lite: monthly, no account) and run "
    "`stackgen reload` (docs/access.md)"
)


@check(
    "exposure.geo",
    "the GeoIP allow list's country database is recent",
    HINT_GEO,
    needs=None,
)
def exposure_geo(ctx: ProbeContext) -> Outcome:
    geo = ctx.target.geo
    if geo is None:
        raise NotApplicable("no GeoIP allow list (access.geo)")
    built = datetime.fromisoformat(geo.database_built.replace("Z", "+00:00"))
    age = max(0, (datetime.now(UTC) - built).days)
    details: dict[str, object] = {
        "countries": list(geo.countries),
        "database_built": geo.database_built,
        "database_age_days": age,
        "country_networks": geo.country_networks,
        "admitted_networks": geo.admitted,
    }
    summary = (
        f"{', '.join(geo.countries)}: {geo.country_networks} networks admitted "
        f"({geo.admitted} with the LAN and the stack's own), database {age} days old"
    )
    if age > GEO_STALE_DAYS:
        return warned(f"{summary}: older than {GEO_STALE_DAYS} days", HINT_GEO, **details)
    return passed(summary, **details)


CHECKS = (
    exposure_metrics,
    exposure_wizard,
    exposure_public_users,
    exposure_anonymous_media,
    exposure_login_rate_limit,
    exposure_forwarded_for,
    exposure_geo,
)
