"""What Traefik v3 accepts, as far as a Jellyfin stack uses it, and what it removed.

Traefik's file provider only *logs* errors in a dynamic file and keeps serving without the
route, so problems must be caught before the proxy ever sees the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# Traefik v1 top-level sections, long gone (Jellyfin's old reverse-proxy page still uses them).
V1_SECTIONS: Final[Mapping[str, str]] = {
    "frontends": "Traefik v1 [frontends] is gone: use http.routers",
    "backends": "Traefik v1 [backends] is gone: use http.services",
    "defaultEntryPoints": "Traefik v1 option: set entryPoints on each router",
    "acme": "Traefik v1 [acme] is gone: use certificatesResolvers.NAME.acme",
    "file": "Traefik v1 [file] is gone: use providers.file",
    "docker": "Traefik v1 [docker] is gone: use providers.docker",
}
# Options removed in v3, wherever they appear (docs/proxies.md, Traefik).
REMOVED_OPTIONS: Final[Mapping[str, str]] = {
    "sslRedirect": "removed in v3: use the entryPoints redirection on 'web'",
    "sslTemporaryRedirect": "removed in v3: use the entryPoints redirection on 'web'",
    "sslHost": "removed in v3: use a redirectRegex middleware",
    "sslForceHost": "removed in v3: use a redirectRegex middleware",
    "featurePolicy": "removed in v3: use permissionsPolicy",
}

STATIC_TOP: Final = frozenset(
    {
        "global",
        "serversTransport",
        "tcpServersTransport",
        "entryPoints",
        "providers",
        "api",
        "metrics",
        "ping",
        "log",
        "accessLog",
        "tracing",
        "hostResolver",
        "certificatesResolvers",
        "experimental",
        "core",
        "spiffe",
        "ocsp",
    }
)
ENTRYPOINT_KEYS: Final = frozenset(
    {
        "address",
        "allowACMEByPass",
        "reusePort",
        "asDefault",
        "forwardedHeaders",
        "http",
        "http2",
        "http3",
        "transport",
        "proxyProtocol",
        "udp",
        "observability",
    }
)
ACME_KEYS: Final = frozenset(
    {
        "email",
        "caServer",
        "certificatesDuration",
        "clientTimeout",
        "clientResponseHeaderTimeout",
        "preferredChain",
        "profile",
        "storage",
        "keyType",
        "eab",
        "caCertificates",
        "caSystemCertPool",
        "caServerName",
        "emailAddresses",
        "disableCommonName",
        "dnsChallenge",
        "httpChallenge",
        "tlsChallenge",
    }
)
DYNAMIC_TOP: Final = frozenset({"http", "tcp", "udp", "tls"})
HTTP_KEYS: Final = frozenset({"routers", "services", "middlewares", "serversTransports"})
ROUTER_KEYS: Final = frozenset(
    {
        "entryPoints",
        "rule",
        "ruleSyntax",
        "priority",
        "middlewares",
        "service",
        "tls",
        "observability",
        "parentRefs",
    }
)
HEADERS_KEYS: Final = frozenset(
    {
        "customRequestHeaders",
        "customResponseHeaders",
        "accessControlAllowCredentials",
        "accessControlAllowHeaders",
        "accessControlAllowMethods",
        "accessControlAllowOriginList",
        "accessControlAllowOriginListRegex",
        "accessControlExposeHeaders",
        "accessControlMaxAge",
        "addVaryHeader",
        "allowedHosts",
        "hostsProxyHeaders",
        "sslProxyHeaders",
        "stsSeconds",
        "stsIncludeSubdomains",
        "stsPreload",
        "forceSTSHeader",
        "frameDeny",
        "customFrameOptionsValue",
        "contentTypeNosniff",
        "browserXssFilter",
        "customBrowserXSSValue",
        "contentSecurityPolicy",
        "contentSecurityPolicyReportOnly",
        "publicKey",
        "referrerPolicy",
        "permissionsPolicy",
        "isDevelopment",
    }
)
TLS_OPTION_KEYS: Final = frozenset(
    {
        "minVersion",
        "maxVersion",
        "cipherSuites",
        "curvePreferences",
        "clientAuth",
        "sniStrict",
        "alpnProtocols",
        "preferServerCipherSuites",
        "disableSessionTickets",
    }
)


def _removed(document: Mapping[str, Any]) -> list[str]:
    problems = [f"{key}: {why}" for key, why in V1_SECTIONS.items() if key in document]

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if key in REMOVED_OPTIONS:
                    problems.append(f"{where}: {REMOVED_OPTIONS[key]}")
                walk(value, where)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{path}[{index}]")

    walk(document, "")
    api = document.get("api")
    if isinstance(api, Mapping) and api.get("insecure"):
        problems.append("api.insecure: exposes the dashboard unauthenticated; never enable it")
    return problems


def _unknown(node: Any, allowed: frozenset[str], where: str) -> list[str]:
    if not isinstance(node, Mapping):
        return [f"{where}: expected a table"]
    return [
        f"{where}.{key}: unknown to Traefik v3" if where else f"{key}: unknown to Traefik v3"
        for key in node
        if key not in allowed and key not in V1_SECTIONS and key not in REMOVED_OPTIONS
    ]


def static_problems(document: Mapping[str, Any]) -> list[str]:
    problems = _removed(document) + _unknown(document, STATIC_TOP, "")
    for name, entry in dict(document.get("entryPoints", {})).items():
        problems += _unknown(entry, ENTRYPOINT_KEYS, f"entryPoints.{name}")
    for name, resolver in dict(document.get("certificatesResolvers", {})).items():
        acme = resolver.get("acme") if isinstance(resolver, Mapping) else None
        if acme is None:
            problems.append(f"certificatesResolvers.{name}: has no acme table")
            continue
        problems += _unknown(acme, ACME_KEYS, f"certificatesResolvers.{name}.acme")
        challenges = [c for c in ("httpChallenge", "tlsChallenge", "dnsChallenge") if c in acme]
        if len(challenges) != 1:
            problems.append(
                f"certificatesResolvers.{name}.acme: needs exactly one challenge, has "
                f"{', '.join(challenges) or 'none'}"
            )
        if "storage" not in acme:
            problems.append(f"certificatesResolvers.{name}.acme.storage: missing")
    return problems


def dynamic_problems(document: Mapping[str, Any]) -> list[str]:
    problems = _removed(document) + _unknown(document, DYNAMIC_TOP, "")
    http = document.get("http", {})
    problems += _unknown(http, HTTP_KEYS, "http")
    services = dict(http.get("services", {})) if isinstance(http, Mapping) else {}
    middlewares = dict(http.get("middlewares", {})) if isinstance(http, Mapping) else {}
    routers = dict(http.get("routers", {})) if isinstance(http, Mapping) else {}
    for name, router in routers.items():
        problems += _unknown(router, ROUTER_KEYS, f"http.routers.{name}")
        if not isinstance(router, Mapping):
            continue
        if "rule" not in router:
            problems.append(f"http.routers.{name}.rule: missing")
        service = router.get("service")
        if service and "@" not in service and service not in services:
            problems.append(f"http.routers.{name}.service: no service named {service!r}")
        for middleware in router.get("middlewares", []):
            if "@" not in middleware and middleware not in middlewares:
                problems.append(
                    f"http.routers.{name}.middlewares: no middleware named {middleware!r}"
                )
    for name, middleware in middlewares.items():
        if isinstance(middleware, Mapping) and "headers" in middleware:
            problems += _unknown(
                middleware["headers"], HEADERS_KEYS, f"http.middlewares.{name}.headers"
            )
    tls = document.get("tls", {})
    options = dict(tls.get("options", {})) if isinstance(tls, Mapping) else {}
    for name, option in options.items():
        problems += _unknown(option, TLS_OPTION_KEYS, f"tls.options.{name}")
    return problems
