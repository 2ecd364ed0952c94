"""HAProxy module: one `crt` path in every mode, the certbot watcher's reload, the config's
redirect, subpath and header rules."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from stackgen.errors import InvalidInputError
from stackgen.parts import Mount
from stackgen.proxies.haproxy.proxy import CONF_FILE, FOREGROUND, HAProxy
from stackgen.render import render_stack
from tests.unit.rendering import config_for, rendered

PROXY = HAProxy()
FILES = {"mode": "files", "cert_file": "/srv/tls/chain.pem", "key_file": "/srv/tls/key.pem"}


def _config(tmp_path: Path, **overrides: Any) -> Any:
    return config_for("haproxy", tmp_path, **overrides)


def _rendered(tmp_path: Path, **overrides: Any) -> dict[str, str]:
    return rendered(_config(tmp_path, **overrides), tmp_path)


def test_crt_is_one_path_in_every_mode(tmp_path: Path) -> None:
    crt = "/etc/stackgen/certs/haproxy.pem"
    for tls in ({"mode": "acme"}, {"mode": "internal"}, FILES):
        cfg = _rendered(tmp_path, tls=tls)["haproxy/haproxy.cfg"]
        assert f"bind :443 ssl crt {crt} alpn h2,http/1.1" in cfg
    # acme: certbot's deploy hook builds the combined file; a placeholder exists first.
    acme = _config(tmp_path)
    assert Mount("./certs", "/etc/stackgen/certs") in PROXY.tls_mounts(acme)
    placeholder = {s.target: s for s in PROXY.state_files(acme, tmp_path)}["certs/haproxy.pem"]
    assert b"CERTIFICATE" in placeholder.content and b"PRIVATE KEY" in placeholder.content
    assert placeholder.mode == 0o600
    # files/internal: the key is mounted beside the chain, where HAProxy looks for it, and
    # says it is the key (a secret on a swarm).
    assert PROXY.tls_mounts(_config(tmp_path, tls=FILES)) == [
        Mount("/srv/tls/chain.pem", crt, file=True),
        Mount("/srv/tls/key.pem", f"{crt}.key", secret=True),
    ]
    assert PROXY.tls_mounts(_config(tmp_path, tls={"mode": "internal"})) == [
        Mount("./tls/fullchain.pem", crt, file=True),
        Mount("./tls/privkey.pem", f"{crt}.key", secret=True),
    ]


def test_certbot_watcher_reloads_the_master_gracefully(tmp_path: Path) -> None:
    command = PROXY.command(_config(tmp_path))
    assert command[:2] == ["sh", "/usr/local/etc/haproxy/watch-files.sh"]
    # The watcher runs its first argument with `sh -c`: one shell word per argument.
    assert shlex.split(command[2]) == ["sh", "-c", "kill -USR2 1"]
    # The image's entrypoint adds -W -db only when `haproxy` comes first: given here.
    assert command[3].split() == [
        "/etc/stackgen/certs/*.pem",
        "/etc/stackgen-ban/deny.lst",
        "/etc/stackgen-banned/deny.lst",
    ]
    assert command[4:] == list(FOREGROUND)
    assert FOREGROUND[:3] == ("haproxy", "-W", "-db")
    unwatched = _config(tmp_path, tls=FILES, access={"ban": {"enabled": False}})
    assert PROXY.command(unwatched) == list(FOREGROUND)


def test_validation_runs_as_the_user_that_owns_the_keys(tmp_path: Path) -> None:
    command = PROXY.validate_command(_config(tmp_path))
    assert command is not None
    assert command.argv == ("haproxy", "-c", "-f", CONF_FILE)
    assert command.user == "1000:1000"
    assert ("haproxy", "/usr/local/etc/haproxy") in command.mounts


def test_dns_and_tls_alpn_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"does not support tls\.mode 'acme-tls-alpn'"):
        render_stack(_config(tmp_path, tls={"mode": "acme-tls-alpn"}), tmp_path)


def test_port_80_answers_acme_then_redirects_to_the_public_port(tmp_path: Path) -> None:
    files = _rendered(tmp_path, ports={"http": 8080, "https": 8443})
    http = files["haproxy/haproxy.cfg"].split("frontend http\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in http.splitlines() if not line.strip().startswith("#")]
    acme = lines.index("http-request use-service lua.acme_webroot if acme_challenge")
    redirect = lines.index(
        "http-request redirect prefix https://jellyfin.example.com:8443 code 301"
    )
    assert acme < redirect
    assert "Strict-Transport-Security" not in http
    lua = files["haproxy/acme-webroot.lua"]
    assert 'local dir = "/var/www/acme/.well-known/acme-challenge/"' in lua
    # Without certbot there is no webroot: the ACME path is a plain 404, never redirected.
    cfg = _rendered(tmp_path, tls={"mode": "internal"})["haproxy/haproxy.cfg"]
    assert "http-request return status 404 if acme_challenge" in cfg
    assert "lua-load" not in cfg
    assert "haproxy/acme-webroot.lua" not in _rendered(tmp_path, tls={"mode": "internal"})


def test_subpath_forwarding_and_headers(tmp_path: Path) -> None:
    cfg = _rendered(
        tmp_path,
        subpath="/jellyfin",
        jellyfin={"network_mode": "bridge"},
        headers={"content_security_policy": "default-src 'self'; img-src data:"},
    )["haproxy/haproxy.cfg"]
    assert "http-request redirect location /jellyfin/ code 301 if { path /jellyfin }" in cfg
    assert "http-request return status 404 unless { path_beg /jellyfin/ }" in cfg
    assert "http-check send meth GET uri /jellyfin/health ver HTTP/1.1" in cfg
    assert "server jellyfin jellyfin:8096 check" in cfg
    # A client's own X-Forwarded-For is dropped before HAProxy adds the real one.
    assert cfg.index("del-header X-Forwarded-For") < cfg.index("\n    option forwardfor\n")
    # set-header values are log-format strings: '%' is refused in every header value
    # (stackgen.validation), so the value is sent as written.
    assert "Content-Security-Policy \"default-src 'self'; img-src data:\"" in cfg
    assert "http-after-response del-header Server" in cfg
    assert "%HPO" in cfg and "%HU" not in cfg  # the access log has no query string
