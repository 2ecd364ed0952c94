"""Registry of proxy modules: one per proxy, behind the `Proxy` interface."""

from __future__ import annotations

from stackgen.errors import InvalidInputError
from stackgen.models import ProxyKind
from stackgen.proxies.apache import Apache
from stackgen.proxies.base import InImageCommand, Proxy, StateFile, TemplateFile
from stackgen.proxies.caddy import Caddy
from stackgen.proxies.haproxy import HAProxy
from stackgen.proxies.nginx import Nginx
from stackgen.proxies.traefik import Traefik

_PROXIES: dict[ProxyKind, Proxy] = {
    proxy.kind: proxy for proxy in (Traefik(), Caddy(), Nginx(), Apache(), HAProxy())
}


def available() -> list[str]:
    return [kind.value for kind in _PROXIES]


def get_proxy(kind: ProxyKind | str) -> Proxy:
    try:
        return _PROXIES[ProxyKind(kind)]
    except (KeyError, ValueError):
        raise InvalidInputError(
            f"unknown proxy {str(kind)!r} (available: {', '.join(available())})"
        ) from None


__all__ = ["InImageCommand", "Proxy", "StateFile", "TemplateFile", "available", "get_proxy"]
