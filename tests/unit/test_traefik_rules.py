"""Traefik v3 rules: the v1 syntax of Jellyfin's old reverse-proxy page, and options removed
in v3, are caught."""

from __future__ import annotations

import tomllib

from stackgen.proxies.traefik.rules import dynamic_problems, static_problems

SEED_V1_STATIC = """
defaultEntryPoints = ["http", "https"]
[entryPoints]
  [entryPoints.http]
  address = ":80"
    [entryPoints.http.redirect]
    entryPoint = "https"
[acme]
email = "you@example.com"
storage = "acme.json"
[file]
[frontends]
  [frontends.jellyfin]
  backend = "jellyfin"
[backends]
"""


def test_seed_v1_file_is_refused_with_reasons() -> None:
    problems = static_problems(tomllib.loads(SEED_V1_STATIC))
    joined = "\n".join(problems)
    for key in ("frontends", "backends", "defaultEntryPoints", "acme:", "file:"):
        assert key in joined, key
    assert "entryPoints.http.redirect: unknown to Traefik v3" in joined


def test_removed_v3_header_options() -> None:
    document = tomllib.loads(
        """
[http.middlewares.sec.headers]
  sslRedirect = true
  sslHost = "x"
  featurePolicy = "camera 'none'"
  stsSeconds = 1
"""
    )
    problems = "\n".join(dynamic_problems(document))
    assert "sslRedirect: removed in v3" in problems
    assert "sslHost: removed in v3" in problems
    assert "featurePolicy: removed in v3: use permissionsPolicy" in problems
    assert "stsSeconds" not in problems


def test_dangling_references_and_insecure_api() -> None:
    dynamic = tomllib.loads(
        """
[http.routers.r]
  rule = "Host(`a.example.com`)"
  service = "missing"
  middlewares = ["nope", "auth@file"]
"""
    )
    problems = "\n".join(dynamic_problems(dynamic))
    assert "no service named 'missing'" in problems
    assert "no middleware named 'nope'" in problems
    assert "auth@file" not in problems
    static = tomllib.loads("[api]\n  insecure = true\n")
    assert any("api.insecure" in p for p in static_problems(static))


def test_resolver_needs_exactly_one_challenge() -> None:
    static = tomllib.loads(
        """
[certificatesResolvers.le.acme]
  storage = "/acme.json"
  [certificatesResolvers.le.acme.httpChallenge]
    entryPoint = "web"
  [certificatesResolvers.le.acme.tlsChallenge]
"""
    )
    assert any("exactly one challenge" in p for p in static_problems(static))
