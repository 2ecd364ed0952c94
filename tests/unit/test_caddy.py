"""Caddy module: modes it refuses, what the Caddyfile says per option, what is mounted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackgen.proxies.caddy.proxy import CADDYFILE, Caddy
from stackgen.render import render_stack
from tests.unit.rendering import config_for, rendered


def _config(tmp_path: Path, **overrides: Any) -> Any:
    return config_for("caddy", tmp_path, **overrides)


def _rendered(tmp_path: Path, **overrides: Any) -> dict[str, str]:
    return rendered(_config(tmp_path, **overrides), tmp_path)


def test_dns_01_comes_from_certbot_and_caddy_reloads_it(tmp_path: Path) -> None:
    # The official image has no DNS module: the certbot service obtains the certificate,
    # Caddy serves the files and is reloaded (forced: the Caddyfile itself is unchanged).
    config = _config(tmp_path, tls={"mode": "acme-dns", "dns_provider": "cloudflare"})
    files, _ = render_stack(config, tmp_path)
    rendered = {f.path: f.content.decode() for f in files}
    assert (
        "tls /etc/stackgen/certs/fullchain.pem /etc/stackgen/certs/privkey.pem {"
        in (rendered["caddy/etc/Caddyfile"])
    )
    assert "issuer acme" not in rendered["caddy/etc/Caddyfile"]
    compose = rendered["docker-compose.yml"]
    assert '- "sh"\n      - "/etc/caddy/watch-files.sh"' in compose
    assert "caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile --force" in compose
    assert "--authenticator dns-cloudflare" in rendered["certbot/run.sh"]
    assert "dns_cloudflare_api_token" in rendered["certbot/run.sh"]
    # No port 80 without HTTP-01, unless a redirect listener is asked for.
    assert ":80:80" not in compose


def test_certbot_source_for_http_01_serves_the_webroot(tmp_path: Path) -> None:
    config = _config(tmp_path, tls={"mode": "acme", "source": "certbot"})
    files, _ = render_stack(config, tmp_path)
    caddyfile = {f.path: f.content.decode() for f in files}["caddy/etc/Caddyfile"]
    assert "root * /var/www/acme\n\t\tfile_server" in caddyfile
    assert "issuer acme" not in caddyfile


def test_redirect_names_the_public_https_port_and_spares_the_acme_path(tmp_path: Path) -> None:
    caddyfile = _rendered(tmp_path, ports={"http": 8080, "https": 8443})["caddy/etc/Caddyfile"]
    http_site = caddyfile.split("http://jellyfin.example.com {", 1)[1].split("\n}\n", 1)[0]
    assert "redir https://jellyfin.example.com:8443{uri} 308" in http_site
    assert "handle /.well-known/acme-challenge/* {\n\t\trespond 404" in http_site
    # Inside the container Caddy keeps its own ports; the published ones are compose's.
    assert "http_port 80\n\thttps_port 443" in caddyfile
    default = _rendered(tmp_path)["caddy/etc/Caddyfile"]
    assert "redir https://jellyfin.example.com{uri} 308" in default


@pytest.mark.parametrize(
    ("mode", "disabled"),
    [("acme", "disable_tlsalpn_challenge"), ("acme-tls-alpn", "disable_http_challenge")],
)
def test_each_acme_mode_uses_exactly_its_challenge(
    tmp_path: Path, mode: str, disabled: str
) -> None:
    caddyfile = _rendered(tmp_path, tls={"mode": mode})["caddy/etc/Caddyfile"]
    assert disabled in caddyfile
    other = {"disable_tlsalpn_challenge", "disable_http_challenge"} - {disabled}
    assert other.pop() not in caddyfile
    assert 'acme_ca "https://acme-v02.api.letsencrypt.org/directory"' in caddyfile


def test_private_ca_root_is_trusted_and_mounted(tmp_path: Path) -> None:
    files = _rendered(tmp_path, tls={"mode": "acme", "ca_bundle": "pebble.pem"})
    assert "acme_ca_root /etc/stackgen/acme-ca.pem" in files["caddy/etc/Caddyfile"]
    assert '"./pebble.pem:/etc/stackgen/acme-ca.pem:ro"' in files["docker-compose.yml"]


def test_files_mode_serves_the_given_pair_and_validates_with_it(tmp_path: Path) -> None:
    tls = {"mode": "files", "cert_file": "/srv/tls/chain.pem", "key_file": "/srv/tls/key.pem"}
    config = _config(tmp_path, tls=tls)
    files, _ = render_stack(config, tmp_path)
    rendered = {f.path: f.content.decode() for f in files}
    caddyfile = rendered["caddy/etc/Caddyfile"]
    assert "tls /etc/stackgen/tls/fullchain.pem /etc/stackgen/tls/privkey.pem {" in caddyfile
    assert "acme_ca" not in caddyfile and "issuer acme" not in caddyfile
    compose = rendered["docker-compose.yml"]
    assert '"/srv/tls/chain.pem:/etc/stackgen/tls/fullchain.pem:ro"' in compose
    assert '"/srv/tls/key.pem:/etc/stackgen/tls/privkey.pem:ro"' in compose
    command = Caddy().validate_command(config)
    assert command is not None
    assert command.argv == ("caddy", "validate", "--config", CADDYFILE, "--adapter", "caddyfile")
    assert ("/srv/tls/chain.pem", "/etc/stackgen/tls/fullchain.pem") in command.mounts


def test_subpath_keeps_the_prefix(tmp_path: Path) -> None:
    caddyfile = _rendered(tmp_path, subpath="/jellyfin")["caddy/etc/Caddyfile"]
    assert "redir /jellyfin /jellyfin/ 308" in caddyfile
    assert "reverse_proxy /jellyfin/* http://host.docker.internal:8096 {" in caddyfile
    assert "handle_path" not in caddyfile


def test_headers_hsts_and_server_also_on_caddys_own_errors(tmp_path: Path) -> None:
    caddyfile = _rendered(tmp_path, headers={"frame_options": "SAMEORIGIN"})["caddy/etc/Caddyfile"]
    snippet = caddyfile.split("(security_headers) {", 1)[1].split("\n}\n", 1)[0]
    assert 'Strict-Transport-Security "max-age=63072000; includeSubDomains"' in snippet
    assert '\t\tX-Frame-Options "SAMEORIGIN"' in snippet
    assert "\t\t-Server" in snippet
    errors = caddyfile.split("handle_errors {", 1)[1].split("}", 1)[0]
    assert "import security_headers" in errors
    assert "X-Frame-Options" not in _rendered(tmp_path)["caddy/etc/Caddyfile"]


def test_state_folders_are_private_and_persisted(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _, directories = render_stack(config, tmp_path)
    assert ("caddy/data", 0o700) in directories
    assert ("caddy/config", 0o700) in directories
    compose = _rendered(tmp_path)["docker-compose.yml"]
    assert '"./caddy/data:/data"' in compose
    assert '"./caddy/etc:/etc/caddy:ro"' in compose


def test_access_log_filter_redacts_every_spelling_of_the_token(tmp_path: Path) -> None:
    import re

    caddyfile = _rendered(tmp_path)["caddy/etc/Caddyfile"]
    match = re.search(r'request>uri regexp "([^"]+)" "([^"]+)"', caddyfile)
    assert match is not None
    # The pattern is RE2 (Go); this one reads the same in Python's re.
    pattern, replacement = match.group(1), match.group(2).replace("${1}", r"\g<1>")
    uri = "/socket?api_key=s1&deviceId=d&ApiKey=s2&APIKEY=s3&x_api_key=keep"
    assert re.sub(pattern, replacement, uri) == (
        "/socket?api_key=REDACTED&deviceId=d&ApiKey=REDACTED&APIKEY=REDACTED&x_api_key=keep"
    )
    for header in ("X-Emby-Token", "X-Mediabrowser-Token", "X-Emby-Authorization"):
        assert f"request>headers>{header} delete" in caddyfile
