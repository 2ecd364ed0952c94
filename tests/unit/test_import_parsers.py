"""The small parsers of our own (Apache, HAProxy, Caddy v1), the line finders for TOML and
YAML, and the certificate helpers, each on its own."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml

from stackgen.errors import InvalidInputError
from stackgen.importers import detect
from stackgen.importers.apache import parse_apache
from stackgen.importers.base import ReportAction, Upstream
from stackgen.importers.caddy_v1 import parse_caddyfile
from stackgen.importers.certs import read_acme_json, split_combined_pem
from stackgen.importers.common import ciphers_verdict, protocols_verdict
from stackgen.importers.haproxy import parse_haproxy
from stackgen.importers.sources import toml_lines, yaml_lines
from tests.unit.import_support import FIXTURES, acme_json_v1, make_cert, served_serial

F = Path("test.conf")

# --- Apache -------------------------------------------------------------------------------


def test_apache_sections_nest_and_keep_lines() -> None:
    tree, commented = parse_apache(
        "<IfModule mod_ssl.c>\n<VirtualHost *:443>\n    ServerName a.example.com\n"
        '    ProxyPass "/" "http://h:8096/" \\\n        timeout=60\n</VirtualHost>\n</IfModule>\n',
        F,
    )
    (module,) = tree.children
    (vhost,) = module.children
    assert (vhost.name, vhost.args, vhost.line) == ("VirtualHost", ["*:443"], 2)
    proxy = vhost.children[1]
    assert (proxy.name, proxy.args, proxy.line) == (
        "ProxyPass",
        ["/", "http://h:8096/", "timeout=60"],
        4,
    )
    assert commented == []


def test_apache_commented_virtualhost_is_returned_apart() -> None:
    _, commented = parse_apache(
        "#<VirtualHost *:443>\n#    ServerName a.example.com\n#</VirtualHost>\n", F
    )
    assert [(c.first, c.last, c.header) for c in commented] == [(1, 3, "<VirtualHost *:443>")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<VirtualHost *:80>\n", "test.conf:1: <VirtualHost> is never closed"),
        ("</VirtualHost>\n", "test.conf:1: </VirtualHost>: expected no closing tag"),
        (
            "<VirtualHost *:80>\n</Directory>\n",
            "test.conf:2: </Directory>: expected </VirtualHost>",
        ),
        ('ServerName "a\n', "test.conf:1: No closing quotation"),
        ("{ not apache }\n", "test.conf:1: '{ not apache }': expected an Apache directive"),
    ],
)
def test_apache_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        parse_apache(text, F)


# --- HAProxy ------------------------------------------------------------------------------


def test_haproxy_sections_comments_and_quotes() -> None:
    sections = parse_haproxy(
        "global\n    log /dev/log local0  # syslog\n\nfrontend fe\n"
        '    http-response set-header X-Note "a # b"\n    bind *:80\n',
        F,
    )
    assert [(s.kind, s.name, s.line) for s in sections] == [
        ("global", "", 1),
        ("frontend", "fe", 4),
    ]
    assert sections[0].lines[0].words == ["log", "/dev/log", "local0"]
    assert sections[1].lines[0].words[-1] == "a # b"
    assert sections[1].lines[1].line == 6


def test_haproxy_directive_before_any_section_is_refused() -> None:
    with pytest.raises(
        InvalidInputError, match=re.escape("test.conf:2: 'bind': expected a section")
    ):
        parse_haproxy("# comment\n    bind *:80\n", F)


# --- Caddy v1 -----------------------------------------------------------------------------


def test_caddy_sites_directives_and_blocks() -> None:
    sites = parse_caddyfile(
        "a.example.com/jf/, b.example.com {\n    proxy / localhost:8096 {\n"
        "        transparent\n    }\n    tls me@example.com  # comment\n}\n\nc.example.com {\n"
        '    header / X-Note "x y"\n}\n',
        F,
    )
    assert [s.addresses for s in sites] == [
        ["a.example.com/jf/", "b.example.com"],
        ["c.example.com"],
    ]
    first = sites[0]
    assert first.hosts() == ["a.example.com", "b.example.com"]
    assert first.path() == "/jf/"
    proxy, tls = first.directives
    assert (proxy.words, proxy.line, [e.words for e in proxy.block]) == (
        ["proxy", "/", "localhost:8096"],
        2,
        [["transparent"]],
    )
    assert (tls.words, tls.line) == (["tls", "me@example.com"], 5)
    assert sites[1].directives[0].words == ["header", "/", "X-Note", "x y"]


def test_caddy_hash_in_quotes_is_text() -> None:
    (site,) = parse_caddyfile('a.example.com {\n    header / X-Note "a # b" # note\n}\n', F)
    assert site.directives[0].words == ["header", "/", "X-Note", "a # b"]


def test_caddy_single_site_without_braces() -> None:
    (site,) = parse_caddyfile("jf.example.com\nproxy / jellyfin:8096\ngzip\n", F)
    assert site.addresses == ["jf.example.com"]
    assert [d.name for d in site.directives] == ["proxy", "gzip"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.example.com {\n    gzip\n", "test.conf:1: '{' is never closed"),
        ("}\n", "test.conf:1: unexpected '}'"),
        ("a.example.com {\n    gzip }\n}\n", "test.conf:2: braces go at the end of a line"),
    ],
)
def test_caddy_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        parse_caddyfile(text, F)


# --- line finders ---------------------------------------------------------------------------


def test_toml_lines_follow_tables_and_keys() -> None:
    lines = toml_lines(
        'a = 1\n[frontends]\n  [frontends."jf"]\n    backend = "b"\n'
        '[[acme.domains]]\n  main = "x"\n'
    )
    assert lines[("a",)] == 1
    assert lines[("frontends", "jf")] == 3
    assert lines[("frontends", "jf", "backend")] == 4
    assert lines[("acme", "domains", "main")] == 6


def test_yaml_lines_for_mappings_and_lists() -> None:
    text = "services:\n  jf:\n    labels:\n      - a=1\n      - b=2\n    image: x\n"
    lines = yaml_lines(yaml.compose(text))
    assert lines[("services", "jf", "labels", 1)] == 5
    assert lines[("services", "jf", "image")] == 6


# --- upstreams, verdicts, detection ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:8096/", ("http", "127.0.0.1", 8096, "/")),
        ("localhost:8096", ("http", "localhost", 8096, "")),
        ("ws://jellyfin:8096/socket", ("ws", "jellyfin", 8096, "/socket")),
        ("https://10.0.0.5", ("https", "10.0.0.5", 443, "")),
    ],
)
def test_upstream_parse(text: str, expected: tuple[str, str, int, str]) -> None:
    upstream = Upstream.parse(text)
    assert upstream is not None
    assert (upstream.scheme, upstream.host, upstream.port, upstream.path) == expected


def test_tls_verdicts() -> None:
    assert protocols_verdict("TLSv1 TLSv1.1 TLSv1.2")[0] is ReportAction.DROPPED
    assert protocols_verdict("VersionTLS10")[0] is ReportAction.DROPPED
    assert protocols_verdict("TLSv1.2 TLSv1.3")[0] is ReportAction.REPLACED
    assert protocols_verdict("VersionTLS12")[0] is ReportAction.REPLACED
    assert ciphers_verdict("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256")[0] is ReportAction.DROPPED
    assert ciphers_verdict("ECDHE-RSA-AES128-SHA:AES128-SHA")[0] is ReportAction.DROPPED
    assert ciphers_verdict("ECDHE-ECDSA-AES128-GCM-SHA256")[0] is ReportAction.REPLACED


@pytest.mark.parametrize(
    ("fixture", "name"),
    [
        ("traefik/docs-folder", "traefik-v1"),
        ("traefik/labels-bridge/docker-compose.yml", "traefik-v1"),
        ("nginx/subpath.conf", "nginx"),
        ("apache/plain-http.conf", "apache"),
        ("haproxy/haproxy-1.6.cfg", "haproxy"),
        ("caddy/Caddyfile", "caddy-v1"),
    ],
)
def test_detect(fixture: str, name: str) -> None:
    assert detect([FIXTURES / fixture]).name == name


# --- certificates ---------------------------------------------------------------------------


def test_combined_pem_splits_in_either_order(tmp_path: Path) -> None:
    pair = make_cert("a.example.com")
    for order, content in (
        ("chain-first", pair.chain_pem + pair.key_pem),
        ("key-first", pair.key_pem + pair.chain_pem),
    ):
        path = tmp_path / order
        path.write_bytes(content)
        chain, key = split_combined_pem(path)
        assert served_serial(chain) == pair.serial
        assert key == pair.key_pem


def test_combined_pem_without_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "only-chain.pem"
    path.write_bytes(make_cert("a.example.com").chain_pem)
    with pytest.raises(InvalidInputError, match="0 key"):
        split_combined_pem(path)


def test_acme_json_v2_layout_is_read_and_rekeyed(tmp_path: Path) -> None:
    pair = make_cert("a.example.com")
    v1 = json.loads(acme_json_v1(pair, "a.example.com"))
    v2 = {
        "le": {
            "Account": v1["Account"],
            "Certificates": [
                {
                    "domain": {"main": "a.example.com"},
                    "certificate": v1["Certificates"][0]["Certificate"],
                    "key": v1["Certificates"][0]["Key"],
                    "Store": "default",
                }
            ],
        }
    }
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(v2))
    store = read_acme_json(path)
    assert store.for_domain("a.example.com") is not None
    out = json.loads(store.to_v3())
    assert list(out) == ["acme"]
    assert (
        served_serial(base64.b64decode(out["acme"]["Certificates"][0]["certificate"]))
        == pair.serial
    )


def test_acme_json_wildcard_covers_one_label_only(tmp_path: Path) -> None:
    path = tmp_path / "acme.json"
    path.write_bytes(acme_json_v1(make_cert("*.example.com"), "*.example.com"))
    store = read_acme_json(path)
    assert store.for_domain("jf.example.com") is not None
    assert store.for_domain("a.jf.example.com") is None
    assert store.for_domain("example.com") is None


def test_acme_json_with_bad_base64_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "acme.json"
    path.write_text(
        json.dumps({"Certificates": [{"Domain": {"Main": "a"}, "Certificate": "%%", "Key": "%%"}]})
    )
    with pytest.raises(InvalidInputError, match=r"Certificates\[0\]: expected base64"):
        read_acme_json(path)
