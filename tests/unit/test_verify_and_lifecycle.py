"""Pure parts of verify and lifecycle: target building, resolve parsing, port probing, and
the reload decision for every proxy."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from stackgen.errors import InvalidInputError
from stackgen.models import StackConfig, parse_config
from stackgen.proxies import available, get_proxy
from stackgen.reloading import ProxyAction, plan_reload
from stackgen.stack import Stack
from stackgen.targets.ports import port_free as _port_free
from stackgen.verify import known_proxies_on_disk, parse_resolve, stack_target, target_for_url


def test_parse_resolve() -> None:
    assert parse_resolve(["jf.example.com:192.0.2.7", "b.example.com:[2001:db8::1]"]) == {
        "jf.example.com": "192.0.2.7",
        "b.example.com": "2001:db8::1",
    }
    for bad in ("jf.example.com", ":192.0.2.7", "jf.example.com:"):
        with pytest.raises(InvalidInputError):
            parse_resolve([bad])


def test_bad_url_is_a_one_line_input_error() -> None:
    with pytest.raises(InvalidInputError, match="https"):
        target_for_url(
            "http://jf.example.com",
            resolve=[],
            ca_file=None,
            http_port=80,
            media_path=None,
            known_proxies=[],
            proxy_address=[],
            frames_allowed=False,
            timeout=5,
        )


def test_probe_target_follows_the_config(tmp_path: Path) -> None:
    config = parse_config(
        {
            "proxy": "traefik",
            "domain": "jf.example.com",
            "subpath": "/jf",
            "tls": {"mode": "internal"},
            "ports": {"http": 8080, "https": 8443},
        },
        tmp_path,
    )
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls/ca.pem").write_text("x")
    target = stack_target(Stack(config, tmp_path), timeout=10.0)
    assert target.url == "https://jf.example.com:8443/jf"
    assert target.resolve == {"jf.example.com": "127.0.0.1"}
    assert target.http_port == 8080
    assert target.ca_file == tmp_path / "tls/ca.pem"


def test_known_proxies_are_read_from_the_file_on_disk(tmp_path: Path) -> None:
    config = parse_config(
        {"proxy": "traefik", "domain": "jf.example.com", "email": "a@example.com"}, tmp_path
    )
    xml = tmp_path / "jellyfin/config/config/network.xml"
    xml.parent.mkdir(parents=True)
    xml.write_text(
        "<NetworkConfiguration><KnownProxies><string>10.0.0.9</string>"
        "</KnownProxies></NetworkConfiguration>"
    )
    assert known_proxies_on_disk(Stack(config, tmp_path)) == ["10.0.0.9"]
    xml.write_text("<NetworkConfiguration><KnownProxies /></NetworkConfiguration>")
    assert known_proxies_on_disk(Stack(config, tmp_path)) == []


def test_port_free_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not _port_free("127.0.0.1", port)
    assert _port_free("127.0.0.1", port)


# --- the reload decision ---------------------------------------------------------------


def _reload_config(proxy: str, tmp_path: Path, **extra: Any) -> StackConfig:
    data: dict[str, Any] = {"proxy": proxy, "domain": "jf.example.com", "email": "a@example.com"}
    return parse_config({**data, **extra}, tmp_path, check_paths=False)


# What each proxy does when only its own config files changed, and which file needs a
# restart because the proxy (or the certificate watcher wrapping it) reads it at start only.
RELOAD = {
    # With the ban list on, Traefik's watched folder is composed: its reload composes it.
    "traefik": (ProxyAction.RELOAD, "sh", "traefik/traefik.toml"),
    "caddy": (ProxyAction.RELOAD, "caddy", "caddy/etc/watch-files.sh"),
    "nginx": (ProxyAction.RELOAD, "nginx", "nginx/conf.d/watch-files.sh"),
    "haproxy": (ProxyAction.RELOAD, "sh", "haproxy/watch-files.sh"),
    "apache": (ProxyAction.RELOAD, "httpd", "apache/watch-files.sh"),
}


def test_every_proxy_has_a_reload_case() -> None:
    assert set(RELOAD) == set(available())


@pytest.mark.parametrize("proxy", sorted(RELOAD))
def test_plan_reload_per_proxy(proxy: str, tmp_path: Path) -> None:
    config = _reload_config(proxy, tmp_path)
    action, command, restart_file = RELOAD[proxy]
    conf = {t.target for t in get_proxy(proxy).own_templates(config)}
    plan = plan_reload(get_proxy(proxy), config, conf - {restart_file})
    assert (plan.recreate, plan.restart_jellyfin, plan.proxy) == (False, False, action)
    assert (plan.reload_command or (None,))[0] == command
    if restart_file is not None:
        plan = plan_reload(get_proxy(proxy), config, {restart_file})
        assert plan.proxy is ProxyAction.RESTART
        assert plan.reload_command is None


@pytest.mark.parametrize("proxy", sorted(RELOAD))
def test_plan_reload_compose_and_network_xml(proxy: str, tmp_path: Path) -> None:
    config = _reload_config(proxy, tmp_path)
    assert plan_reload(get_proxy(proxy), config, set()).recreate is False
    plan = plan_reload(
        get_proxy(proxy), config, {"docker-compose.yml", "jellyfin/config/config/network.xml"}
    )
    assert plan.recreate and plan.restart_jellyfin


def test_plan_reload_restarts_the_gate_when_its_script_changed(tmp_path: Path) -> None:
    gated = _reload_config("nginx", tmp_path, access={"gate": {"mode": "token"}})
    assert plan_reload(get_proxy("nginx"), gated, {"gate/gate.py"}).restart_gate
    assert not plan_reload(get_proxy("nginx"), gated, {"nginx/conf.d/jellyfin.conf"}).restart_gate
    plain = _reload_config("nginx", tmp_path)
    assert not plan_reload(get_proxy("nginx"), plain, {"gate/gate.py"}).restart_gate


EDGE_HOME = {"target": "edge-home", "edge_host": "edge.example.com"}


def test_plan_reload_of_a_side_touches_only_what_the_side_runs(tmp_path: Path) -> None:
    """Home runs no proxy: its reload never asks one (the proxy's service is not there);
    the edge runs no Jellyfin: no network.xml restart."""
    bridge = {"network_mode": "bridge"}
    home = _reload_config("nginx", tmp_path, deploy={**EDGE_HOME, "side": "home"}, jellyfin=bridge)
    conf = {t.target for t in get_proxy("nginx").own_templates(home)}
    plan = plan_reload(get_proxy("nginx"), home, conf | {"jellyfin/config/config/network.xml"})
    assert (plan.proxy, plan.reload_command, plan.restart_jellyfin) == (None, None, True)
    edge = _reload_config("nginx", tmp_path, deploy={**EDGE_HOME, "side": "edge"}, jellyfin=bridge)
    plan = plan_reload(get_proxy("nginx"), edge, conf | {"jellyfin/config/config/network.xml"})
    assert (plan.proxy, plan.restart_jellyfin) == (ProxyAction.RELOAD, False)


def test_plan_reload_without_watched_files_has_no_watcher(tmp_path: Path) -> None:
    config = _reload_config(
        "nginx", tmp_path, tls={"mode": "internal"}, access={"ban": {"enabled": False}}
    )
    # No certbot, no ban list: the watcher script is not part of the stack, so it never
    # forces a restart.
    assert plan_reload(get_proxy("nginx"), config, {"nginx/conf.d/watch-files.sh"}).proxy is (
        ProxyAction.RELOAD
    )


@pytest.mark.parametrize(
    ("mode", "http01"),
    [("acme", True), ("acme-tls-alpn", False), ("acme-dns", False), ("internal", False)],
)
def test_stack_target_knows_whether_certificates_come_over_http01(
    tmp_path: Path, mode: str, http01: bool
) -> None:
    tls: dict[str, Any] = {"mode": mode}
    if mode == "acme-dns":
        tls.update(dns_provider="cloudflare", dns_env=["CF_DNS_API_TOKEN"])
    config = parse_config(
        {"proxy": "traefik", "domain": "jf.example.com", "email": "a@example.com", "tls": tls},
        tmp_path,
    )
    if mode == "internal":
        (tmp_path / "tls").mkdir()
        (tmp_path / "tls/ca.pem").write_text("x")
    assert stack_target(Stack(config, tmp_path), timeout=5.0).acme_http01 is http01


def test_url_target_judges_the_acme_path_unless_declared() -> None:
    common: dict[str, Any] = {
        "resolve": [],
        "ca_file": None,
        "http_port": 80,
        "media_path": None,
        "known_proxies": [],
        "proxy_address": [],
        "frames_allowed": False,
        "timeout": 5,
    }
    assert target_for_url("https://jf.example.com", **common).acme_http01 is None
    declared = target_for_url("https://jf.example.com", acme_http01=False, **common)
    assert declared.acme_http01 is False


def test_plan_reload_restarts_the_feeder_when_its_configuration_changed(tmp_path: Path) -> None:
    """fail2ban reads its jail and filter at start only: a changed `max_failures` restarts it
    (which lifts its bans); nothing else of the stack restarts for it."""
    config = _reload_config("nginx", tmp_path, tls={"mode": "internal"})
    plan = plan_reload(get_proxy("nginx"), config, {"fail2ban/jail.conf"})
    assert plan.restart_feeder and not plan.restart_jellyfin and not plan.recreate
    assert plan.proxy is ProxyAction.RELOAD
    assert not plan_reload(
        get_proxy("nginx"), config, {"nginx/conf.d/jellyfin.conf"}
    ).restart_feeder
    off = _reload_config("nginx", tmp_path, access={"ban": {"feeder": False}})
    assert not plan_reload(get_proxy("nginx"), off, {"fail2ban/jail.conf"}).restart_feeder
