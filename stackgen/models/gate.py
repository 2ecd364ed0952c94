"""The token gate (`access.gate`): what passes the proxy without a token Jellyfin confirms valid.

Its own table under `[access]` (`[access.gate]`); templates and code read it through
`StackConfig.token_gate`. How it works and what it costs: docs/access.md.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, StrictInt

from stackgen.models.fields import Image, Strict
from stackgen.options import Setting

# The gate is one small Python service (stdlib only) in the stack; the official image of
# the language runs its script, mounted read-only from the stack folder, so there is no
# image of stackgen's own to publish or trust.
DEFAULT_GATE_IMAGE: Final = "python:3.13-alpine"
SERVICE: Final = "gate"
# HTTP for the proxies that ask by HTTP (nginx, Caddy, Traefik, HAProxy's Lua client);
# FastCGI for Apache's mod_authnz_fcgi, its one native sub-request to an outside service.
HTTP_PORT: Final = 9090
FASTCGI_PORT: Final = 9091
CHECK_PATH: Final = "/check"
HEALTH_PATH: Final = "/healthz"
# Enough for a stdlib server and its cache; a leak or a flood stops at this container.
MEMORY: Final = "64m"
PIDS: Final = 64


class GateSettings(Strict):
    mode: Annotated[
        Literal["off", "token"],
        Setting(
            "the token gate: `token` lets through without a token only what clients need "
            "before login, everything else only with a token Jellyfin confirms valid",
            flag="gate",
            readme="streams, subtitles, `/socket`, `/Users/Public`, ... included; a gate "
            "service beside the proxy asks Jellyfin, caches the answer by a hash of the token "
            "([docs/access.md](docs/access.md#the-token-gate)); not on the swarm target yet",
        ),
    ] = "off"
    cache_seconds: Annotated[
        StrictInt,
        Field(ge=0, le=3600),
        Setting(
            "how long the gate trusts Jellyfin's answer for one token (0: ask every time)",
            flag="",
            readme="a revoked token is refused at most this long after its revocation",
        ),
    ] = 30
    images: Annotated[
        Literal["open", "token"],
        Setting(
            "posters and other images (`GET …/Images/…`): `open`, or `token` too",
            flag="",
            readme="open by default: jellyfin-web loads posters with `<img>` tags that carry "
            "no token, so `token` leaves the web client without pictures",
        ),
    ] = "open"
    image: Annotated[
        Image,
        Setting(
            "the gate service's image (any Python 3.11+ with `python3` on the path)",
            flag="",
        ),
    ] = DEFAULT_GATE_IMAGE

    @property
    def on(self) -> bool:
        return self.mode == "token"

    @property
    def service(self) -> str:
        return SERVICE

    @property
    def http_port(self) -> int:
        return HTTP_PORT

    @property
    def fastcgi_port(self) -> int:
        return FASTCGI_PORT

    @property
    def check_path(self) -> str:
        return CHECK_PATH

    @property
    def health_path(self) -> str:
        return HEALTH_PATH

    @property
    def memory(self) -> str:
        return MEMORY

    @property
    def pids(self) -> int:
        return PIDS
