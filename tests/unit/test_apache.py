"""Apache httpd 2.4: the rendered httpd.conf follows docs/proxies.md, the rules of
`stackgen check` catch the classic mistakes, validate/reload are httpd's own."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from stackgen.models import StackConfig
from stackgen.proxies import get_proxy
from stackgen.proxies.apache.proxy import CONF_FILE, Apache
from stackgen.proxies.apache.rules import conf_problems
from tests.unit.rendering import config_for, rendered

TLS = {
    "acme": {"mode": "acme"},
    "internal": {"mode": "internal"},
    "files": {"mode": "files", "cert_file": "/c/chain.pem", "key_file": "/c/key.pem"},
}
REQUIRED_MODULES = (
    "mpm_event",
    "unixd",
    "log_config",
    "authz_core",
    "mime",
    "alias",
    "rewrite",
    "headers",
    "socache_shmcb",
    "ssl",
    "http2",
    "proxy",
    "proxy_http",
)


def _config(tmp: Path, **overrides: Any) -> StackConfig:
    defaults: dict[str, Any] = {"run_as": "0:0", "ports": {"http": 18080, "https": 18443}}
    return config_for("apache", tmp, **{**defaults, **overrides})


def _rendered(config: StackConfig, tmp: Path) -> dict[str, str]:
    return rendered(config, tmp)


def _conf(config: StackConfig, tmp: Path) -> str:
    return _rendered(config, tmp)["apache/httpd.conf"]


def _lines(text: str) -> list[str]:
    return [
        " ".join(line.split())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.mark.parametrize(
    ("subpath", "tls", "network"),
    list(itertools.product(["", "/jellyfin"], TLS, ["host", "bridge"])),
)
def test_rendered_config_passes_its_own_rules(
    subpath: str, tls: str, network: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, subpath=subpath, tls=TLS[tls], jellyfin={"network_mode": network})
    assert conf_problems(_conf(config, tmp_path)) == []


def test_every_module_is_loaded_in_the_main_file(tmp_path: Path) -> None:
    lines = _lines(_conf(_config(tmp_path), tmp_path))
    loaded = {
        m.group(1) for line in lines if (m := re.match(r"LoadModule (\w+)_module modules/", line))
    }
    assert set(REQUIRED_MODULES) <= loaded
    # upgrade=websocket on the main ProxyPass: no wstunnel.
    assert "proxy_wstunnel" not in loaded


def test_the_facts_of_docs_proxies_md(tmp_path: Path) -> None:
    lines = _lines(_conf(_config(tmp_path), tmp_path))
    for expected in (
        "SSLProtocol -all +TLSv1.2 +TLSv1.3",
        "SSLHonorCipherOrder off",
        "SSLSessionTickets off",
        "SSLOpenSSLConfCmd Curves X25519:prime256v1:secp384r1",
        "ServerTokens Prod",
        "ServerSignature Off",
        "Protocols h2 http/1.1",
        "ProxyPreserveHost On",
        'RequestHeader set X-Forwarded-Proto "https"',
        "ProxyPass /.well-known/acme-challenge/ !",
        'Header always set Strict-Transport-Security "max-age=63072000; includeSubDomains"',
        'Header always set X-Content-Type-Options "nosniff"',
        "LimitRequestBody 20971520",
        "ProxyTimeout 3600",
        "ProxyPass / http://host.docker.internal:8096/ upgrade=websocket timeout=3600 ttl=60",
        # Port 80: to the published https port, except the challenge.
        "RewriteCond %{REQUEST_URI} !^/\\.well-known/acme-challenge/",
        "RewriteRule ^ https://jellyfin.example.com:18443%{REQUEST_URI} [R=301,L]",
        "SSLCertificateFile /etc/stackgen/certs/fullchain.pem",
    ):
        assert expected in lines, expected
    assert not any(
        line.startswith("SSLCipherSuite") and "RSA-AES128-SHA " in line for line in lines
    )
    # The challenge is never proxied: the ProxyPass exclusion comes before "/".
    order = [line for line in lines if line.startswith("ProxyPass ")]
    assert order[0] == "ProxyPass /.well-known/acme-challenge/ !"
    # The access log has the path without the query string (api_key=...).
    log_format = next(line for line in lines if line.startswith("LogFormat"))
    assert "%U" in log_format
    assert "%r" not in log_format and "%q" not in log_format and "%{Referer}" not in log_format


def test_subpath_keeps_the_prefix_and_redirects_the_bare_path(tmp_path: Path) -> None:
    lines = _lines(_conf(_config(tmp_path, subpath="/jellyfin"), tmp_path))
    assert (
        "ProxyPass /jellyfin/ http://host.docker.internal:8096/jellyfin/ upgrade=websocket "
        "timeout=3600 ttl=60"
    ) in lines
    assert "RewriteRule ^/jellyfin$ https://jellyfin.example.com:18443/jellyfin/ [R=301,L]" in lines
    assert (
        "ProxyPass / http://host.docker.internal:8096/ upgrade=websocket timeout=3600" not in lines
    )


def test_no_webroot_without_certbot(tmp_path: Path) -> None:
    text = _conf(_config(tmp_path, tls={"mode": "internal"}), tmp_path)
    assert "acme-challenge" not in text


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("ProxyPass /socket ws://jellyfin:8096/socket", "SyncPlay"),
        ("ProxyPass /jellyfin/ http://jellyfin:8096/", "changes the path prefix"),
        ('Header set Strict-Transport-Security "max-age=63072000"', "always"),
        ("SSLUseStapling On", "OCSP"),
        ("SSLProtocol all -SSLv3", "SSLProtocol"),
    ],
)
def test_rules_catch_the_classic_mistakes(line: str, words: str) -> None:
    problems = conf_problems(f"# a comment\n{line}\n")
    assert len(problems) == 1 and words in problems[0] and "line 2" in problems[0], problems


def test_validate_reload_and_command(tmp_path: Path) -> None:
    apache = Apache()
    config = _config(tmp_path)
    command = apache.validate_command(config)
    assert command is not None
    assert list(command.argv) == ["httpd", "-t", "-f", CONF_FILE]
    assert ("apache", "/usr/local/apache2/conf/stackgen") in command.mounts
    assert apache.reload_command(config) == ["httpd", "-k", "graceful", "-f", CONF_FILE]
    assert apache.command(config)[:3] == [
        "sh",
        "/usr/local/apache2/conf/stackgen/watch-files.sh",
        f"httpd -k graceful -f {CONF_FILE}",
    ]
    unwatched = _config(tmp_path, tls={"mode": "internal"}, access={"ban": {"enabled": False}})
    assert apache.command(unwatched) == [
        "httpd-foreground",
        "-f",
        CONF_FILE,
    ]
    assert get_proxy("apache").static_problems(config, {}) == ["apache/httpd.conf: missing"]


def test_healthcheck_needs_no_curl(tmp_path: Path) -> None:
    rendered = _rendered(_config(tmp_path), tmp_path)
    compose = rendered["docker-compose.yml"].split("\n  certbot:\n")[0]
    assert '"perl", "/usr/local/apache2/conf/stackgen/healthcheck.pl"' in compose
    test = next(line for line in compose.splitlines() if line.strip().startswith("test:"))
    assert "curl" not in test and "wget" not in test
    script = rendered["apache/healthcheck.pl"]
    assert "IO::Socket::INET" in script and "PeerPort => 8082" in script
