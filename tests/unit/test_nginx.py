"""nginx: the rendered server file follows docs/proxies.md, the rules of `stackgen check` catch
the classic mistakes, and the validate/reload commands are the ones nginx documents."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from stackgen.models import StackConfig
from stackgen.proxies import get_proxy
from stackgen.proxies.nginx.proxy import CONF_FILE, Nginx
from stackgen.proxies.nginx.rules import conf_problems, directives
from stackgen.render import render_stack
from tests.unit.rendering import config_for

TLS = {
    "acme": {"mode": "acme"},
    "internal": {"mode": "internal"},
    "files": {"mode": "files", "cert_file": "/c/chain.pem", "key_file": "/c/key.pem"},
}


def _config(tmp: Path, **overrides: Any) -> StackConfig:
    defaults: dict[str, Any] = {"run_as": "0:0", "ports": {"http": 18080, "https": 18443}}
    return config_for("nginx", tmp, **{**defaults, **overrides})


def _conf(config: StackConfig, tmp: Path) -> str:
    files, _ = render_stack(config, tmp)
    return next(f.content.decode() for f in files if f.path == CONF_FILE)


@pytest.mark.parametrize(
    ("subpath", "tls", "network"),
    list(itertools.product(["", "/jellyfin"], TLS, ["host", "bridge"])),
)
def test_rendered_config_passes_its_own_rules(
    subpath: str, tls: str, network: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, subpath=subpath, tls=TLS[tls], jellyfin={"network_mode": network})
    assert conf_problems(_conf(config, tmp_path)) == []


def test_the_facts_of_docs_proxies_md(tmp_path: Path) -> None:
    text = _conf(_config(tmp_path), tmp_path)
    found = {(d.name, d.args) for d in directives(text)}
    for expected in [
        ("listen", ("443", "ssl", "default_server")),
        ("http2", ("on",)),
        ("ssl_protocols", ("TLSv1.2", "TLSv1.3")),
        ("ssl_prefer_server_ciphers", ("off",)),
        ("ssl_ecdh_curve", ("X25519:prime256v1:secp384r1",)),
        ("ssl_session_tickets", ("off",)),
        ("server_tokens", ("off",)),
        ("proxy_buffering", ("off",)),
        ("proxy_http_version", ("1.1",)),
        ("client_max_body_size", ("20M",)),
        ("proxy_set_header", ("X-Forwarded-For", "$proxy_add_x_forwarded_for")),
        ("proxy_set_header", ("X-Forwarded-Proto", "$scheme")),
        ("proxy_set_header", ("X-Forwarded-Host", "$http_host")),
        ("proxy_set_header", ("Host", "$host")),
        ("proxy_set_header", ("Upgrade", "$http_upgrade")),
        ("proxy_set_header", ("Connection", "$connection_upgrade")),
        (
            "add_header",
            ("Strict-Transport-Security", "max-age=63072000; includeSubDomains", "always"),
        ),
        ("proxy_pass", ("http://jellyfin_upstream",)),
        # The published https port, not the container's.
        ("return", ("301", "https://jellyfin.example.com:18443$request_uri")),
    ]:
        assert expected in found, expected
    # Neither the deprecated `listen ... http2` nor HTTP/3 unless asked for.
    assert not any(d.name == "listen" and "http2" in d.args for d in directives(text))
    assert not any(d.name == "listen" and "quic" in d.args for d in directives(text))
    # Connections to Jellyfin are kept for the next request: an upstream block with
    # keepalive, and no `Connection: close` sent when the client asks for no upgrade; an idle
    # one is retired long before Jellyfin closes it (test_upstream_idle.py).
    upstream = {
        (d.name, d.args) for d in directives(text) if d.blocks == ("upstream jellyfin_upstream",)
    }
    assert upstream == {
        ("server", ("host.docker.internal:8096",)),
        ("keepalive", ("16",)),
        ("keepalive_timeout", ("60s",)),
    }
    upgrade_map = {
        d.name: d.args
        for d in directives(text)
        if d.blocks and d.blocks[0].startswith("map $http_upgrade")
    }
    assert upgrade_map == {"default": ("upgrade",), "": ("",)}
    # Every add_header carries `always` and sits at server level.
    headers = [d for d in directives(text) if d.name == "add_header"]
    # Five security headers and Retry-After (set only on a 429: access.rate_limit).
    assert len(headers) == 6
    assert all(d.args[-1] == "always" and d.blocks == ("server",) for d in headers)
    # The access log never shows the query string (api_key=...).
    log_format = next(d for d in directives(text) if d.name == "log_format")
    assert "$uri" in " ".join(log_format.args)
    assert "$request_uri" not in " ".join(log_format.args)
    assert "$args" not in " ".join(log_format.args)
    assert "$request " not in " ".join(log_format.args)


def test_subpath_keeps_the_prefix_and_redirects_the_bare_path(tmp_path: Path) -> None:
    text = _conf(_config(tmp_path, subpath="/jellyfin"), tmp_path)
    https_server = text.split("listen 443 ssl default_server", 1)[1].split("\nserver {", 1)[0]
    by_location = {
        d.blocks[-1]: d.args
        for d in directives(https_server)
        if d.name in ("proxy_pass", "return") and d.blocks[-1].startswith("location")
    }
    assert by_location == {
        "location = /jellyfin": (
            "301",
            "https://jellyfin.example.com:18443/jellyfin/$is_args$args",
        ),
        # No URI after the upstream: the prefix reaches Jellyfin.
        "location /jellyfin/": ("http://jellyfin_upstream",),
        "location /": ("404",),
    }


def test_acme_challenge_only_with_certbot(tmp_path: Path) -> None:
    acme = _conf(_config(tmp_path), tmp_path)
    assert "location ^~ /.well-known/acme-challenge/" in acme
    assert "root /var/www/acme;" in acme
    internal = _conf(_config(tmp_path, tls={"mode": "internal"}), tmp_path)
    assert "acme-challenge" not in internal


@pytest.mark.parametrize(
    ("snippet", "words"),
    [
        (
            "server { add_header X a always; location / { add_header Y b; } }",
            "add_header inside a location",
        ),
        ("server { listen 443 ssl http2; }", "`listen ... http2` is deprecated"),
        ("server { ssl_stapling on; }", "OCSP"),
        (
            "server { location /jellyfin/ { proxy_pass http://jellyfin:8096/; } }",
            "replaces the location's prefix",
        ),
        ("server { ssl_protocols TLSv1.1 TLSv1.2; }", "ssl_protocols"),
    ],
)
def test_rules_catch_the_classic_mistakes(snippet: str, words: str) -> None:
    problems = conf_problems(snippet)
    assert len(problems) == 1 and words in problems[0], problems


def test_a_root_location_may_pass_a_slash() -> None:
    assert conf_problems("server { location / { proxy_pass http://jellyfin:8096/; } }") == []


def test_static_problems_names_the_file(tmp_path: Path) -> None:
    config = _config(tmp_path)
    proxy = get_proxy("nginx")
    assert proxy.static_problems(config, {}) == [f"{CONF_FILE}: missing"]
    bad = b"server { location / { add_header X y; } add_header Z w always; }"
    assert proxy.static_problems(config, {CONF_FILE: bad})[0].startswith(f"{CONF_FILE}: line 1:")


@pytest.mark.parametrize(
    ("network", "host"), [("host", "host.docker.internal"), ("bridge", "jellyfin")]
)
def test_validate_gives_the_upstream_name_to_nginx_t(
    network: str, host: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, jellyfin={"network_mode": network})
    command = Nginx().validate_command(config)
    assert command is not None
    assert command.entrypoint == "sh"
    assert command.argv[0] == "-c"
    assert f"echo '127.0.0.1 {host}' >>/etc/hosts" in command.argv[1]
    assert command.argv[1].endswith("exec nginx -t")
    assert ("nginx/conf.d", "/etc/nginx/conf.d") in command.mounts
    assert ("./certs", "/etc/stackgen/certs") in command.mounts


def test_reload_and_command(tmp_path: Path) -> None:
    nginx = Nginx()
    acme = _config(tmp_path)
    assert nginx.reload_command(acme) == ["nginx", "-s", "reload"]
    assert nginx.command(acme) == [
        "sh",
        "/etc/nginx/conf.d/watch-files.sh",
        "nginx -s reload",
        "/etc/stackgen/certs/*.pem /etc/stackgen-ban/deny.conf /etc/stackgen-banned/deny.conf",
        "nginx",
        "-g",
        "daemon off;",
    ]
    # Nothing to watch (no certbot, no ban list): no wrapper.
    unwatched = _config(tmp_path, tls={"mode": "internal"}, access={"ban": {"enabled": False}})
    assert nginx.command(unwatched) == [
        "nginx",
        "-g",
        "daemon off;",
    ]


def test_capabilities_only_for_a_root_master(tmp_path: Path) -> None:
    def compose(run_as: str) -> str:
        files, _ = render_stack(_config(tmp_path, run_as=run_as), tmp_path)
        text = next(f.content.decode() for f in files if f.path == "docker-compose.yml")
        return text.split("\n  certbot:\n")[0]

    root = compose("0:0")
    assert "cap_add:\n" in root and "- SETUID" in root and "- CHOWN" in root
    assert "- KILL" not in root
    user = compose("1000:1000")
    assert "cap_add" not in user
    assert '"/var/cache/nginx:uid=1000,gid=1000,mode=0755"' in user
