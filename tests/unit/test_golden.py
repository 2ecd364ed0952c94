"""Golden files of the rendered output for the matrix of options.

Update them after an intended change with `make golden` (STACKGEN_UPDATE_GOLDEN=1) and
review the diff like any other code change.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest

from stackgen.models import TlsMode, parse_config
from stackgen.proxies import available, get_proxy
from stackgen.render import render_stack

GOLDEN = Path(__file__).parent.parent / "golden"
UPDATE = os.environ.get("STACKGEN_UPDATE_GOLDEN") == "1"

TLS_CASES: dict[str, dict[str, Any]] = {
    "acme": {"mode": "acme"},
    "acme-tls-alpn": {"mode": "acme-tls-alpn"},
    "acme-dns": {"mode": "acme-dns", "dns_provider": "cloudflare", "dns_env": ["CF_DNS_API_TOKEN"]},
    # The old docs' Traefik example, on any proxy: one certificate for the zone, DNS-01
    # through RFC 2136 (bind9), no port 80.
    "acme-dns-wildcard": {
        "mode": "acme-dns",
        "dns_provider": "rfc2136",
        "wildcard": True,
        "dns_resolvers": ["192.0.2.53:53"],
        "dns_propagation_seconds": 10,
    },
    "internal": {"mode": "internal"},
    "files": {
        "mode": "files",
        "cert_file": "/etc/ssl/jf/fullchain.pem",
        "key_file": "/etc/ssl/jf/privkey.pem",
    },
    "private-ca": {
        "mode": "acme",
        "ca_url": "https://acme.internal.example:14000/dir",
        "ca_bundle": "pebble.minica.pem",
    },
}
CASES = [
    (proxy, subpath, tls, network)
    for proxy, subpath, tls, network in itertools.product(
        available(), ["", "/jellyfin"], TLS_CASES, ["host", "bridge"]
    )
    # A mode the proxy does not implement is refused (asserted in the proxies' own tests).
    if TlsMode(TLS_CASES[tls]["mode"]) in get_proxy(proxy).tls_modes
]


def _supports(proxy: str, option: str) -> bool:
    return not OPTION_CASES[option].get("http3") or get_proxy(proxy).supports_http3


def _case_id(proxy: str, subpath: str, tls: str, network: str) -> str:
    return f"{proxy}-{'subpath' if subpath else 'root'}-{tls}-{network}"


# The client-facing options (issue 14), each on top of the root/acme/host case; a proxy that
# refuses an option (HTTP/3 without QUIC) is asserted in the proxies' own tests.
OPTION_CASES: dict[str, dict[str, Any]] = {
    "no-http2": {"http2": False},
    "http3": {"http3": True},
    "lan-url": {
        "jellyfin": {
            "lan_url": "http://192.168.1.10:8096",
            "lan_subnets": ["192.168.1.0/24", "fd12:3456:789a::/64"],
        }
    },
    "ipv6": {"ipv6": True},
}


def _render(
    proxy: str,
    subpath: str,
    tls: str,
    network: str,
    tmp: Path,
    options: dict[str, Any] | None = None,
) -> dict[str, bytes]:
    jellyfin: dict[str, Any] = {
        "network_mode": network,
        "media": [{"source": "/srv/media/movies"}],
    }
    extra = dict(options or {})
    jellyfin.update(extra.pop("jellyfin", {}))
    config = parse_config(
        {
            "proxy": proxy,
            "domain": "jellyfin.example.com",
            "email": "admin@example.com",
            "subpath": subpath,
            "run_as": "1000:1000",
            "tls": TLS_CASES[tls],
            "jellyfin": jellyfin,
            **extra,
        },
        tmp,
        check_paths=False,
    )
    files, _ = render_stack(config, tmp)
    # State files (keys, acme.json) are random or empty: their presence is asserted elsewhere.
    return {f.path: f.content for f in files if not f.state}


@pytest.mark.parametrize(
    ("proxy", "subpath", "tls", "network"), CASES, ids=[_case_id(*c) for c in CASES]
)
def test_golden(proxy: str, subpath: str, tls: str, network: str, tmp_path: Path) -> None:
    rendered = _render(proxy, subpath, tls, network, tmp_path)
    _compare(GOLDEN / _case_id(proxy, subpath, tls, network), rendered)


OPTION_MATRIX = [
    (proxy, option)
    for proxy, option in itertools.product(available(), OPTION_CASES)
    if _supports(proxy, option)
]


@pytest.mark.parametrize(
    ("proxy", "option"), OPTION_MATRIX, ids=[f"{p}-{o}" for p, o in OPTION_MATRIX]
)
def test_golden_options(proxy: str, option: str, tmp_path: Path) -> None:
    rendered = _render(proxy, "", "acme", "host", tmp_path, OPTION_CASES[option])
    _compare(GOLDEN / "options" / f"{proxy}-{option}", rendered)


def _compare(folder: Path, rendered: dict[str, bytes]) -> None:
    if UPDATE:
        for path, content in rendered.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(content)
    expected = {
        str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    assert expected, f"no golden files in {folder}: run `make golden`"
    assert sorted(rendered) == sorted(expected)
    for path, content in rendered.items():
        assert content.decode() == expected[path].decode(), f"{folder.name}/{path} differs"


# The swarm target (docs/swarm.md): every proxy, both Jellyfin networks, ACME (HTTP-01);
# plus a subpath and HTTP/3 (a UDP port in mode host) where a proxy offers it.
SWARM_CASES = [
    (proxy, network, option)
    for proxy, network, option in itertools.product(
        available(), ["host", "bridge"], ["", "subpath", "http3"]
    )
    if (not option or network == "bridge") and (option != "http3" or _supports(proxy, "http3"))
]


def _swarm_id(proxy: str, network: str, option: str) -> str:
    return "-".join(part for part in (proxy, network, option) if part)


@pytest.mark.parametrize(
    ("proxy", "network", "option"), SWARM_CASES, ids=[_swarm_id(*c) for c in SWARM_CASES]
)
def test_golden_swarm(proxy: str, network: str, option: str, tmp_path: Path) -> None:
    deploy: dict[str, Any] = {"target": "swarm"}
    if network == "host":
        deploy["media_address"] = "192.0.2.10"
        deploy["edge_addresses"] = ["192.0.2.20"]
        deploy["allow_plain_media_link"] = True
    options: dict[str, Any] = {"deploy": deploy}
    if option == "http3":
        options["http3"] = True
    subpath = "/jellyfin" if option == "subpath" else ""
    rendered = _render(proxy, subpath, "acme", network, tmp_path, options)
    _compare(GOLDEN / "swarm" / _swarm_id(proxy, network, option), rendered)
