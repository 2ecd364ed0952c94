"""HTTP/3: who may enable it, what it renders, and verify's judgement of Alt-Svc (the QUIC
round trip itself is proven against real Caddy, Traefik, nginx and HAProxy in
tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen.errors import InvalidInputError
from stackgen.models import parse_config
from stackgen.probe import Status, Target, run_checks
from stackgen.probe.checks.http3 import alt_svc_h3_port
from stackgen.proxies import available, get_proxy
from stackgen.render import render_stack

from .probe_fixtures import PKI, fake_stack, make_pki


def _config(proxy: str, tmp: Path, **extra: object) -> object:
    return parse_config(
        {"proxy": proxy, "domain": "jf.example.com", "tls": {"mode": "internal"}, **extra},
        tmp,
        check_paths=False,
    )


@pytest.mark.parametrize("proxy", available())
def test_http3_only_where_the_image_has_it(proxy: str, tmp_path: Path) -> None:
    config = _config(proxy, tmp_path, http3=True)
    if get_proxy(proxy).supports_http3:
        files, _ = render_stack(config, tmp_path)  # type: ignore[arg-type]
        compose = next(f for f in files if f.path == "docker-compose.yml").content.decode()
        assert '"0.0.0.0:443:443/udp"' in compose
    else:
        with pytest.raises(InvalidInputError) as refused:
            render_stack(config, tmp_path)  # type: ignore[arg-type]
        message = str(refused.value)
        assert message.startswith("http3: ") and "\n" not in message
        assert "HTTP/3" in message


def test_caddy_names_the_published_port_in_alt_svc(tmp_path: Path) -> None:
    config = _config("caddy", tmp_path, http3=True, ports={"https": 8443, "http": 8080})
    files, _ = render_stack(config, tmp_path)  # type: ignore[arg-type]
    caddyfile = next(f for f in files if f.path.endswith("Caddyfile")).content.decode()
    assert 'Alt-Svc "h3=\\":8443\\"; ma=2592000"' in caddyfile
    assert "protocols h1 h2 h3" in caddyfile


def test_nginx_listens_on_quic_and_names_the_published_port(tmp_path: Path) -> None:
    config = _config("nginx", tmp_path, http3=True, ipv6=True, ports={"https": 8443, "http": 8080})
    files, _ = render_stack(config, tmp_path)  # type: ignore[arg-type]
    conf = next(f for f in files if f.path == "nginx/conf.d/jellyfin.conf").content.decode()
    assert "listen 443 quic reuseport default_server;" in conf
    assert "listen [::]:443 quic reuseport default_server;" in conf
    assert """add_header Alt-Svc 'h3=":8443"; ma=86400' always;""" in conf
    # Beside the TCP listener, never instead of it.
    assert "listen 443 ssl default_server;" in conf


def test_haproxy_binds_quic_and_names_the_published_port(tmp_path: Path) -> None:
    config = _config(
        "haproxy", tmp_path, http3=True, ipv6=True, ports={"https": 8443, "http": 8080}
    )
    files, _ = render_stack(config, tmp_path)  # type: ignore[arg-type]
    cfg = next(f for f in files if f.path == "haproxy/haproxy.cfg").content.decode()
    assert "bind quic4@:443 ssl crt " in cfg and "alpn h3\n" in cfg
    assert "bind quic6@:::443 v6only ssl crt " in cfg
    assert 'http-after-response set-header Alt-Svc "h3=\\":8443\\"; ma=86400"' in cfg


@pytest.mark.parametrize("proxy", ["nginx", "haproxy"])
def test_no_quic_unless_asked(proxy: str, tmp_path: Path) -> None:
    files, _ = render_stack(_config(proxy, tmp_path), tmp_path)  # type: ignore[arg-type]
    text = "".join(f.content.decode() for f in files if f.path.startswith(proxy))
    # Jellyfin's Quick Connect routes (access.rate_limit) are no QUIC.
    text = text.replace("quickconnect", "")
    assert "quic" not in text and "Alt-Svc" not in text


def test_alt_svc_parsing() -> None:
    assert alt_svc_h3_port(['h3=":443"; ma=2592000']) == 443
    assert alt_svc_h3_port(['h2=":443", h3=":8443"; ma=86400']) == 8443
    assert alt_svc_h3_port(['h3="other.example:443"']) is None  # another host: not ours
    assert alt_svc_h3_port(["clear"]) is None


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("h3-pki"))


def test_http3_check_without_alt_svc(pki: PKI) -> None:
    with fake_stack(pki) as stack:
        unknown = run_checks(stack.target(), only={"http3"})
        expected = run_checks(stack.target(http3=True), only={"http3"})
    assert [r.id for r in unknown.results if not r.id.startswith("reach.")] == []
    assert "http3.get" in unknown.skipped
    result = expected.get("http3.get")
    assert result is not None and result.status is Status.FAIL
    assert "no Alt-Svc" in result.reason


def test_http3_check_wrong_port(pki: PKI) -> None:
    with fake_stack(pki, extra_headers=(("Alt-Svc", 'h3=":443"; ma=60'),)) as stack:
        report = run_checks(stack.target(), only={"http3"})
        off = run_checks(stack.target(http3=False), only={"http3"})
    result = report.get("http3.get")
    assert result is not None and result.status is Status.FAIL
    assert "UDP port 443" in result.reason
    off_result = off.get("http3.get")
    assert off_result is not None and off_result.status is Status.FAIL


def test_target_json_names_http3() -> None:
    target = Target(url="https://jf.example.com", http3=True)
    assert target.http3 is True
