"""`access.geo`: the country database reader (stackgen.geoip), the model, the allow file each
proxy renders, and hostile databases (one line, exit 3, nothing written, bounded time and
memory). The behaviour through real proxies: tests/integration/test_geo.py."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import tomllib
from pathlib import Path

import pytest
import tomlkit
from pydantic import ValidationError

from stackgen import exposure
from stackgen.errors import ExitCode, InvalidInputError
from stackgen.geoip import MAX_DATABASE_BYTES, country_networks
from stackgen.proxies import available
from stackgen.proxies.base import GEO_FILE_HEAD
from stackgen.render import geo_allow
from stackgen.stack import Stack
from stackgen.testing.mmdb import encode, many_networks, pack_node, write_database
from stackgen.verify import geo_on_disk
from tests.unit.hostile.bounded import run_bounded
from tests.unit.rendering import config_for, rendered
from tests.unit.test_cli import BASE, stackgen

N = ipaddress.ip_network
FRANCE = {
    N("203.0.113.0/25"): "FR",
    N("203.0.113.128/25"): "FR",  # neighbours: collapsed into one /24
    N("2001:db8:f::/48"): "FR",
    N("198.51.100.0/24"): "CN",
    N("192.0.2.0/24"): "DE",
}


def _database(tmp_path: Path, content: bytes, name: str = "country.mmdb") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


# --- the reader ------------------------------------------------------------------------


@pytest.mark.parametrize("record_size", [24, 28, 32])
def test_the_reader_finds_each_countrys_networks_collapsed(
    tmp_path: Path, record_size: int
) -> None:
    path = _database(tmp_path, write_database(FRANCE, record_size=record_size))
    found = country_networks(path, ["FR"])
    assert found.networks == (N("203.0.113.0/24"), N("2001:db8:f::/48"))
    assert found.per_country == {"FR": 3}
    assert found.database_type == "GeoLite2-Country"
    assert found.built.year == 2025


def test_ipv4_is_read_once_not_again_through_its_ipv6_aliases(tmp_path: Path) -> None:
    # The writer aliases ::ffff:0:0/96, 2001::/32 and 2002::/16 to the IPv4 subtree, as
    # MaxMind's does: none of them may come out as IPv6 networks of the country.
    path = _database(tmp_path, write_database(FRANCE))
    found = country_networks(path, ["CN", "DE"])
    assert found.networks == (N("192.0.2.0/24"), N("198.51.100.0/24"))


def test_a_country_of_realistic_size_reads_in_bounded_time(tmp_path: Path) -> None:
    path = _database(tmp_path, write_database(many_networks(20_000, "FR")))
    found = country_networks(path, ["FR"])
    assert len(found.networks) == 20_000
    assert found.per_country == {"FR": 20_000}


def test_a_country_the_database_does_not_know_is_refused_at_render(tmp_path: Path) -> None:
    database = _database(tmp_path, write_database(FRANCE))
    config = config_for("nginx", tmp_path, access={"geo": _geo(database, ["FR", "UK"])})
    with pytest.raises(InvalidInputError, match=r"no network for UK.*United Kingdom is GB"):
        geo_allow(config, tmp_path)


# --- the model -------------------------------------------------------------------------


def _geo(database: Path, countries: list[str]) -> dict[str, object]:
    return {"countries": countries, "database": str(database)}


def test_off_by_default(tmp_path: Path) -> None:
    config = config_for("nginx", tmp_path)
    assert not config.access.geo.on
    assert geo_allow(config, tmp_path) is None
    assert not any("geo" in path for path in rendered(config, tmp_path))


@pytest.mark.parametrize(
    ("geo", "fragment"),
    [
        ({"countries": ["fr"], "database": "x.mmdb"}, "in capitals such as 'FR' (write 'FR')"),
        ({"countries": ["FRA"], "database": "x.mmdb"}, "not an ISO 3166-1 alpha-2"),
        ({"countries": ["FR"]}, "needs access.geo.database"),
        ({"countries": [], "database": "x.mmdb"}, "countries is empty"),
        ({"countries": ["FR", "FR"], "database": "x.mmdb"}, "names a country twice"),
        ({"countries": ["FR"], "database": "a:b.mmdb"}, "contains ':'"),
    ],
)
def test_bad_geo_settings_are_refused(
    tmp_path: Path, geo: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        config_for("nginx", tmp_path, access={"geo": geo})


# --- what each proxy renders ------------------------------------------------------------


def _rendered_geo(proxy: str, tmp_path: Path, **access: object) -> dict[str, str]:
    database = _database(tmp_path, write_database(FRANCE))
    config = config_for(proxy, tmp_path, access={"geo": _geo(database, ["FR"]), **access})
    return rendered(config, tmp_path)


def _admitted(text: str) -> set[str]:
    head = next(line for line in text.splitlines() if line.startswith(GEO_FILE_HEAD))
    summary = json.loads(head.removeprefix(GEO_FILE_HEAD))
    assert summary["countries"] == ["FR"]
    assert summary["country_networks"] == 2
    assert summary["database_built"].startswith("2025-12-")
    found = {str(n) for n in _every_network(text)}
    assert len(found) == summary["admitted"]
    return found


def _every_network(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for word in text.replace('"', " ").replace(",", " ").replace(";", " ").split():
        if "/" in word:
            try:
                networks.append(ipaddress.ip_network(word))
            except ValueError:
                continue
    return networks


# The country's networks, access.lan's defaults, loopback and the proxy network: nothing else.
EXPECTED_V4 = {"203.0.113.0/24", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"}
EXPECTED_V6 = {"2001:db8:f::/48", "fc00::/7", "::1/128"}

GEO_FILES = {
    "nginx": "nginx/conf.d/geo-allow.geo",
    "haproxy": "haproxy/geo-allow.lst",
    "caddy": "caddy/etc/geo-allow.caddy",
    "apache": "apache/geo-allow.conf",
    "traefik": "traefik/dynamic.toml",
}


@pytest.mark.parametrize("proxy", available())
def test_each_proxy_gets_the_admitted_networks_and_nothing_else(proxy: str, tmp_path: Path) -> None:
    files = _rendered_geo(proxy, tmp_path)
    admitted = _admitted(files[GEO_FILES[proxy]])
    # The proxy network (172.x, inside 172.16.0.0/12 by default) collapses into the LAN's.
    assert admitted == EXPECTED_V4 | EXPECTED_V6
    assert "198.51.100.0/24" not in admitted  # CN
    assert "192.0.2.0/24" not in admitted  # DE


def test_nginx_refuses_outside_the_geo_block(tmp_path: Path) -> None:
    files = _rendered_geo("nginx", tmp_path)
    conf = files["nginx/conf.d/jellyfin.conf"]
    assert "geo $jellyfin_geo_admitted {\n    default 0;\n" in conf
    assert "include /etc/nginx/conf.d/geo-allow.geo;" in conf
    assert "if ($jellyfin_geo_admitted = 0) {\n        return 403;" in conf
    assert "203.0.113.0/24 1;\n" in files["nginx/conf.d/geo-allow.geo"]


def test_haproxy_refuses_outside_the_pattern_file(tmp_path: Path) -> None:
    cfg = _rendered_geo("haproxy", tmp_path)["haproxy/haproxy.cfg"]
    assert (
        "http-request deny deny_status 403 unless "
        "{ src -f /usr/local/etc/haproxy/geo-allow.lst }" in cfg
    )


def test_caddy_imports_a_negated_remote_ip_matcher(tmp_path: Path) -> None:
    files = _rendered_geo("caddy", tmp_path)
    assert "import /etc/caddy/geo-allow.caddy" in files["caddy/etc/Caddyfile"]
    snippet = files["caddy/etc/geo-allow.caddy"]
    assert "@stackgen_geo_refused {\n\tnot {\n\t\tremote_ip 10.0.0.0/8\n" in snippet
    assert snippet.endswith("\t}\n}\nrespond @stackgen_geo_refused 403\n")


def test_apache_adds_a_require_any_to_every_other_rule(tmp_path: Path) -> None:
    files = _rendered_geo("apache", tmp_path, allow=["203.0.113.0/24"])
    conf = files["apache/httpd.conf"]
    include = "Include /usr/local/apache2/conf/stackgen/geo-allow.conf"
    assert include in conf
    assert conf.index("Include /etc/stackgen-ban/deny.conf") < conf.index(include)
    snippet = files["apache/geo-allow.conf"]
    assert '<If "true">\n    AuthMerging And\n    <RequireAny>\n' in snippet
    assert "        Require ip 203.0.113.0/24\n" in snippet


def test_traefik_puts_the_allow_list_on_every_router(tmp_path: Path) -> None:
    dynamic = tomllib.loads(_rendered_geo("traefik", tmp_path)["traefik/dynamic.toml"])
    http = dynamic["http"]
    ranges = http["middlewares"]["jellyfin-geo"]["ipAllowList"]["sourceRange"]
    assert "203.0.113.0/24" in ranges
    for name, router in http["routers"].items():
        assert "jellyfin-geo" in router["middlewares"], name


@pytest.mark.parametrize("proxy", available())
def test_with_the_ban_list_off_too(proxy: str, tmp_path: Path) -> None:
    files = _rendered_geo(proxy, tmp_path, ban={"enabled": False})
    target = "traefik/dynamic.toml" if proxy == "traefik" else GEO_FILES[proxy]
    assert "203.0.113.0/24" in files[target]


# --- hostile databases: one line, exit 3, nothing written, bounded -----------------------


def _stack_with_geo(tmp_path: Path, database: str, proxy: str = "traefik") -> Path:
    stack = tmp_path / "stack"
    result = stackgen(BASE[0], proxy, *BASE[2:], "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    toml = stack / "stackgen.toml"
    document = tomlkit.parse(toml.read_text())
    access = document.setdefault("access", tomlkit.table())
    geo = tomlkit.table()
    geo["countries"] = ["FR"]
    geo["database"] = database
    access["geo"] = geo  # type: ignore[index]
    toml.write_text(tomlkit.dumps(document))
    return stack


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _truncated() -> bytes:
    whole = write_database(FRANCE)
    return whole[: len(whole) // 3]


def _lying_node_count() -> bytes:
    # Metadata claiming far more nodes than the file holds.
    whole = write_database(FRANCE)
    marker = whole.rindex(b"\xab\xcd\xefMaxMind.com")
    meta = {
        "node_count": 4_000_000_000,
        "record_size": 28,
        "ip_version": 6,
        "database_type": "GeoLite2-Country",
        "build_epoch": 1,
    }
    return whole[: marker + 14] + encode(meta)


def _pointer_loop() -> bytes:
    # One node whose both records point at a record that is a pointer to a pointer.
    count = 1
    tree = pack_node(count + 16, count + 16, 28)
    data = bytes([0x20, 0x00])  # a pointer to offset 0: itself
    meta = {
        "node_count": count,
        "record_size": 28,
        "ip_version": 4,
        "database_type": "GeoLite2-Country",
        "build_epoch": 1,
    }
    return tree + b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com" + encode(meta)


def _node_loop() -> bytes:
    # Every node's records point back at the root: a graph, not a tree. Each node is
    # expanded once, so the walk ends at once, having found nothing.
    count = 2
    tree = pack_node(1, 1, 24) + pack_node(0, 0, 24)
    meta = {
        "node_count": count,
        "record_size": 24,
        "ip_version": 6,
        "database_type": "GeoLite2-Country",
        "build_epoch": 1,
    }
    return tree + b"\0" * 16 + b"\xab\xcd\xefMaxMind.com" + encode(meta)


def _fan_out() -> bytes:
    # A record whose map holds thousands of pointers to one big map: exponential unless the
    # decoder counts what it decodes.
    big = {f"k{i}": i for i in range(5000)}
    big_bytes = encode(big)
    count = 1
    pointer = bytes([0x20 | (3 << 3)]) + (0).to_bytes(4, "big")
    record_offset = len(big_bytes)
    entries = b"".join(encode(f"p{i}") + pointer for i in range(5000))
    record = bytes([(7 << 5) | 30]) + (5000 - 285).to_bytes(2, "big") + entries
    tree = pack_node(count + 16 + record_offset, count + 16 + record_offset, 32)
    meta = {
        "node_count": count,
        "record_size": 32,
        "ip_version": 4,
        "database_type": "GeoLite2-Country",
        "build_epoch": 1,
    }
    return tree + b"\0" * 16 + big_bytes + record + b"\xab\xcd\xefMaxMind.com" + encode(meta)


HOSTILE = {
    "not an mmdb": (lambda: b"GIF89a" + os.urandom(4096), "not a MaxMind DB file"),
    "empty": (lambda: b"", "not a MaxMind DB file"),
    "truncated": (_truncated, "not a MaxMind DB file"),
    "a City database": (
        lambda: write_database(FRANCE, database_type="GeoLite2-City"),
        "not a country one",
    ),
    "an ASN database": (
        lambda: write_database(FRANCE, database_type="GeoLite2-ASN"),
        "not a country one",
    ),
    "node count past the file": (_lying_node_count, "do not fit in the file"),
    "a pointer to a pointer": (_pointer_loop, "a pointer to a pointer"),
    "a loop of nodes": (_node_loop, "no network for FR"),
    "a fan-out of pointers": (_fan_out, "values in its records"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_database_is_one_line_exit_3_and_nothing_written(
    tmp_path: Path, case: str
) -> None:
    make, fragment = HOSTILE[case]
    (tmp_path / "db.mmdb").write_bytes(make())
    stack = _stack_with_geo(tmp_path, str(tmp_path / "db.mmdb"))
    before = _snapshot(stack)
    outcome = run_bounded("render", "--dir", str(stack), seconds=20)
    assert outcome.code == ExitCode.INVALID_INPUT, (outcome.stderr, outcome.traceback)
    assert len(outcome.lines) == 1, outcome.stderr
    assert fragment in outcome.lines[0], outcome.lines[0]
    assert "access.geo." in outcome.lines[0]
    assert _snapshot(stack) == before


def test_a_symbolic_link_a_fifo_and_a_huge_file_are_refused_unread(tmp_path: Path) -> None:
    real = _database(tmp_path, write_database(FRANCE))
    link = tmp_path / "link.mmdb"
    link.symlink_to(real)
    fifo = tmp_path / "fifo.mmdb"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.mmdb"
    with huge.open("wb") as handle:
        handle.truncate(MAX_DATABASE_BYTES + 1)  # sparse: no disk used
    for path, fragment in (
        (link, "a symbolic link"),
        (fifo, "not a regular file"),
        (huge, "not read"),
    ):
        stack = _stack_with_geo(tmp_path / path.stem, str(path))
        before = _snapshot(stack)
        outcome = run_bounded("render", "--dir", str(stack), seconds=20)
        assert outcome.code == ExitCode.INVALID_INPUT, (path, outcome.stderr, outcome.traceback)
        assert len(outcome.lines) == 1 and fragment in outcome.lines[0], outcome.stderr
        assert _snapshot(stack) == before


def test_a_good_database_renders_and_a_rerender_refreshes_the_file(tmp_path: Path) -> None:
    database = tmp_path / "db.mmdb"
    database.write_bytes(write_database(FRANCE))
    stack = _stack_with_geo(tmp_path, str(database))
    result = stackgen("render", "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    dynamic = stack / "traefik" / "dynamic.toml"  # traefik: inline, in its routes file
    assert "203.0.113.0/24" in dynamic.read_text()
    # The database changes (a monthly update): the next render writes the new networks.
    database.write_bytes(write_database({N("203.0.113.0/24"): "DE", N("192.0.2.0/24"): "FR"}))
    result = stackgen("render", "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    text = dynamic.read_text()
    assert "192.0.2.0/24" in text
    assert "203.0.113.0/24" not in text


@pytest.mark.parametrize("proxy", ["nginx", "traefik"])
def test_verify_reads_the_summary_back_from_the_rendered_file(proxy: str, tmp_path: Path) -> None:
    database = tmp_path / "db.mmdb"
    database.write_bytes(write_database(FRANCE))
    stack_dir = _stack_with_geo(tmp_path, str(database), proxy)
    assert stackgen("render", "--dir", str(stack_dir)).returncode == 0
    facts = geo_on_disk(Stack.load(stack_dir))
    assert facts is not None
    assert list(facts.countries) == ["FR"]
    assert facts.country_networks == 2
    assert facts.admitted == len(EXPECTED_V4 | EXPECTED_V6)
    assert facts.database_built.startswith("2025-12-")


def test_the_swarm_target_refuses_geo_in_one_line(tmp_path: Path) -> None:
    database = _database(tmp_path, write_database(FRANCE))
    deploy = {"target": "swarm", "media_address": "192.0.2.10"}
    with pytest.raises(ValidationError, match=r"access\.geo: not on the swarm target yet"):
        config_for(
            "nginx",
            tmp_path,
            access={"geo": _geo(database, ["FR"])},
            deploy=deploy,
            jellyfin={"network_mode": "host"},
        )


def test_the_edge_renders_the_allow_file_and_the_home_does_not(tmp_path: Path) -> None:
    database = _database(tmp_path, write_database(FRANCE))
    deploy = {"target": "edge-home", "edge_host": "edge.example.com"}
    for side, expected in (("edge", True), ("home", False)):
        config = config_for(
            "nginx",
            tmp_path,
            access={"geo": _geo(database, ["FR"])},
            deploy={**deploy, "side": side},
            jellyfin={"network_mode": "bridge"},
        )
        files = rendered(config, tmp_path)
        assert ("nginx/conf.d/geo-allow.geo" in files) is expected, side


def test_apache_loads_require_ip_for_geo_alone(tmp_path: Path) -> None:
    # Without access.allow and access.lan_only, mod_authz_host is loaded for access.geo's
    # `Require ip` (else Apache refuses to start: "Unknown Authz provider: ip").
    files = _rendered_geo("apache", tmp_path, lan=[], lan_only=[])
    assert "LoadModule authz_host_module modules/mod_authz_host.so" in files["apache/httpd.conf"]


LINEAR = {"caddy", "apache", "traefik"}


@pytest.mark.parametrize("proxy", available())
def test_a_proxy_that_tries_the_networks_one_by_one_says_so(proxy: str, tmp_path: Path) -> None:
    database = _database(tmp_path, write_database(FRANCE))
    config = config_for(proxy, tmp_path, access={"geo": _geo(database, ["FR"])})
    said = [w for w in exposure.warnings(config) if w.startswith("access.geo:")]
    if proxy in LINEAR:
        assert len(said) == 1, said
        assert "one by one" in said[0] and "nginx or HAProxy" in said[0]
    else:
        assert said == []
    assert not [w for w in exposure.warnings(config_for(proxy, tmp_path)) if "access.geo" in w]


def test_apache_refuses_more_networks_than_it_starts_with_in_time(tmp_path: Path) -> None:
    networks = many_networks(25_001, "FR", start="1.0.0.0")
    database = _database(tmp_path, write_database(networks))
    config = config_for("apache", tmp_path, access={"geo": _geo(database, ["FR"])})
    with pytest.raises(InvalidInputError, match=r"access\.geo: 25\d\d\d networks .* apache"):
        rendered(config, tmp_path)
    # The same list for nginx renders (a tree: no limit).
    nginx = config_for("nginx", tmp_path, access={"geo": _geo(database, ["FR"])})
    assert "1.0.0.0/24 1;" in rendered(nginx, tmp_path)["nginx/conf.d/geo-allow.geo"]
