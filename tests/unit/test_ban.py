"""The ban list (`access.ban`): each proxy's deny file, what `stackgen ban` refuses, and
what the rendering mounts and includes. Through real proxies: tests/integration/test_ban.py."""

from __future__ import annotations

import ipaddress
import shlex
import tomllib
from pathlib import Path

import pytest

from stackgen.banlist import addresses_in, applies_by_itself, parse_address
from stackgen.errors import ExitCode, InvalidInputError
from stackgen.proxies import available
from stackgen.proxies.base import BAN_PATH
from stackgen.proxies.registry import get_proxy
from stackgen.proxies.traefik.proxy import COMPOSED_PATH, COMPOSER
from stackgen.reloading import ProxyAction, plan_reload
from tests.unit.rendering import config_for, rendered
from tests.unit.test_cli import stackgen

WITH_DENY_FILE = [p for p in available() if get_proxy(p).ban_file is not None]
ADDRESSES = [ipaddress.ip_address("198.51.100.7"), ipaddress.ip_address("2001:db8::7")]


def test_every_proxy_has_a_deny_file() -> None:
    assert set(available()) == set(WITH_DENY_FILE)


@pytest.mark.parametrize("proxy", WITH_DENY_FILE)
def test_a_deny_file_names_exactly_its_addresses(proxy: str) -> None:
    deny = get_proxy(proxy).deny_file
    assert addresses_in(deny([])) == []
    assert addresses_in(deny(ADDRESSES)) == ADDRESSES
    assert addresses_in(deny(ADDRESSES[:1])) == ADDRESSES[:1]


@pytest.mark.parametrize("proxy", WITH_DENY_FILE)
def test_the_proxy_reads_the_deny_file_from_a_read_only_folder(proxy: str, tmp_path: Path) -> None:
    config = config_for(proxy, tmp_path)
    files = rendered(config, tmp_path)
    include = get_proxy(proxy).ban_include(config)
    assert include is not None and include.startswith(BAN_PATH)
    assert any(include in text for name, text in files.items() if name != "docker-compose.yml")
    compose = files["docker-compose.yml"]
    assert f'target: "{BAN_PATH}"' in compose or f":{BAN_PATH}:ro" in compose, compose


@pytest.mark.parametrize("proxy", WITH_DENY_FILE)
@pytest.mark.parametrize("tls", ["internal", "acme"])
def test_the_proxy_applies_a_changed_deny_file_by_itself(
    proxy: str, tls: str, tmp_path: Path
) -> None:
    """The proxy's command is wrapped by the file watcher, which polls the deny file (with the
    certificate when certbot deploys one) and runs the proxy's graceful reload."""
    config = config_for(proxy, tmp_path, tls={"mode": tls})
    instance = get_proxy(proxy)
    assert applies_by_itself(instance, config)
    command = instance.command(config)
    assert command is not None and command[:2] == ["sh", f"{instance.conf_path}/watch-files.sh"]
    assert f"{BAN_PATH}/{instance.ban_file}" in command[3].split()
    assert shlex.split(command[2]) == instance.reload_command(config)
    assert instance.watcher in rendered(config, tmp_path)


@pytest.mark.parametrize("proxy", WITH_DENY_FILE)
def test_switched_off_nothing_is_included_or_mounted(proxy: str, tmp_path: Path) -> None:
    config = config_for(proxy, tmp_path, access={"ban": {"enabled": False}})
    assert get_proxy(proxy).ban_include(config) is None
    assert not any(BAN_PATH in text for text in rendered(config, tmp_path).values())


@pytest.mark.parametrize(
    "text",
    ["127.0.0.1", "::1", "0.0.0.0", "224.0.0.1", "not-an-address", "198.51.100.0/24", ""],
)
def test_addresses_that_are_never_a_remote_client_are_refused(text: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_address(text, config_for("nginx", tmp_path))
    assert "\n" not in str(raised.value)


def test_the_proxy_network_is_refused_its_gateway_included(tmp_path: Path) -> None:
    config = config_for("nginx", tmp_path, ipv6=True)
    subnet = config.network.subnet
    assert config.network.subnet6 is not None
    for address in (subnet[1], config.network.subnet6[1], config.network.proxy_ip):
        with pytest.raises(InvalidInputError, match="proxy network"):
            parse_address(str(address), config)
    # An IPv4 client written as IPv4-mapped IPv6 is the IPv4 address the proxy sees.
    assert parse_address("::ffff:198.51.100.7", config) == ADDRESSES[0]


def test_ban_add_refuses_a_bad_address_in_one_line_and_changes_nothing(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    assert (
        stackgen(
            "init",
            "nginx",
            "--domain",
            "jellyfin.example.com",
            "--email",
            "admin@example.com",
            "--dir",
            str(stack),
        ).returncode
        == 0
    )
    deny = stack / "ban" / "deny.conf"
    before = deny.read_bytes()
    assert addresses_in(before.decode()) == []
    for text in ("nope", "127.0.0.1"):
        run = stackgen("ban", "add", text, "--dir", str(stack))
        assert run.returncode == ExitCode.INVALID_INPUT, run
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert deny.read_bytes() == before
    listed = stackgen("ban", "list", "--dir", str(stack))
    assert (listed.returncode, listed.stdout) == (0, "")


def test_ban_add_with_traefik_writes_a_router_refusing_the_client(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    init = stackgen(
        "init", "traefik", "--domain", "jellyfin.example.com", "--email",
        "admin@example.com", "--dir", str(stack),
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    deny = stack / "ban" / "deny.toml"
    assert tomllib.loads(deny.read_text()) == {}  # no address, no router: ClientIP needs one
    for address in ("198.51.100.7", "2001:db8::7"):
        run = stackgen("ban", "add", address, "--dir", str(stack))
        assert run.returncode == 0, run.stderr
    document = tomllib.loads(deny.read_text())
    router = document["http"]["routers"]["stackgen-banned"]
    assert router["rule"] == "ClientIP(`198.51.100.7`) || ClientIP(`2001:db8::7`)"
    assert router["entryPoints"] == ["websecure"]
    assert "tls" in router  # else it would serve plain HTTP on that entry point only
    refuse = document["http"]["middlewares"][router["middlewares"][0]]["ipAllowList"]
    assert refuse["sourceRange"] == ["0.0.0.0/32"]
    listed = stackgen("ban", "list", "--dir", str(stack))
    assert listed.stdout.split() == ["198.51.100.7", "2001:db8::7"]
    assert stackgen("ban", "remove", "198.51.100.7", "--dir", str(stack)).returncode == 0
    rule = tomllib.loads(deny.read_text())["http"]["routers"]["stackgen-banned"]["rule"]
    assert rule == "ClientIP(`2001:db8::7`)"
    assert stackgen("ban", "remove", "2001:db8::7", "--dir", str(stack)).returncode == 0
    assert tomllib.loads(deny.read_text()) == {}


@pytest.mark.parametrize("subpath", ["", "/jellyfin"])
def test_traefik_s_ban_router_outranks_every_router_of_the_site(
    subpath: str, tmp_path: Path
) -> None:
    # Every access feature on, so every router the site can have is rendered.
    config = config_for(
        "traefik",
        tmp_path,
        subpath=subpath,
        http3=True,
        access={"allow": ["198.51.100.0/24"], "gate": {"mode": "token"}},
    )
    proxy = get_proxy("traefik")
    files = rendered(config, tmp_path)
    site = tomllib.loads(files["traefik/dynamic.toml"])["http"]["routers"]
    assert len(site) >= 3, site
    ban = tomllib.loads(proxy.deny_file(ADDRESSES))["http"]["routers"]["stackgen-banned"]
    for name, router in site.items():
        # Traefik's default priority is the rule's length.
        assert ban["priority"] > router.get("priority", len(router["rule"])), name
        assert set(router["entryPoints"]) <= set(ban["entryPoints"]), name
    # Traefik reads both files from the one folder it watches, composed in its container.
    static = tomllib.loads(files["traefik/traefik.toml"])
    assert static["providers"]["file"] == {"directory": COMPOSED_PATH, "watch": True}
    assert static["entryPoints"]["websecure"]["http3"]  # HTTP/3 is this entry point's too


def test_traefik_without_the_ban_list_reads_one_file(tmp_path: Path) -> None:
    config = config_for("traefik", tmp_path, access={"ban": {"enabled": False}})
    files = rendered(config, tmp_path)
    assert not any(name.startswith("ban/") for name in files)
    static = tomllib.loads(files["traefik/traefik.toml"])
    assert static["providers"]["file"]["filename"] == "/etc/traefik/dynamic.toml"
    assert "traefik/dynamic.toml" in files


def test_a_changed_source_of_traefik_s_folder_is_composed_again(tmp_path: Path) -> None:
    # The file watcher composes on its own; `stackgen reload` runs the composer at once.
    config = config_for("traefik", tmp_path)
    proxy = get_proxy("traefik")
    for changed in ("ban/deny.toml", "traefik/dynamic.toml", f"traefik/{COMPOSER}"):
        plan = plan_reload(proxy, config, {changed})
        assert (plan.proxy, plan.recreate, plan.restart_jellyfin) == (
            ProxyAction.RELOAD,
            False,
            False,
        )
        assert plan.reload_command == ("sh", f"/etc/traefik/{COMPOSER}")
    off = config_for("traefik", tmp_path, access={"ban": {"enabled": False}})
    assert plan_reload(proxy, off, {"traefik/dynamic.toml"}).proxy is ProxyAction.WATCH


def test_the_unspecified_address_in_a_deny_file_is_never_listed() -> None:
    # Traefik's deny file admits nobody with 0.0.0.0/32; stackgen never bans it.
    assert addresses_in('sourceRange = ["0.0.0.0/32", "::/128"] deny 198.51.100.7;') == [
        ADDRESSES[0]
    ]


def test_nginx_reads_the_deny_file_ahead_of_the_allow_list(tmp_path: Path) -> None:
    # nginx applies the first matching `allow`/`deny`: a banned client inside an allowed
    # range must still be refused.
    config = config_for("nginx", tmp_path, access={"allow": ["198.51.100.0/24"]})
    text = rendered(config, tmp_path)["nginx/conf.d/jellyfin.conf"]
    include = get_proxy("nginx").ban_include(config)
    assert include is not None
    assert text.index(f"include {include};") < text.index("allow 198.51.100.0/24;")


def test_a_re_render_keeps_the_ban_list(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    init = stackgen(
        "init", "haproxy", "--domain", "jellyfin.example.com", "--email",
        "admin@example.com", "--dir", str(stack),
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    deny = stack / "ban" / "deny.lst"
    deny.write_text(get_proxy("haproxy").deny_file(ADDRESSES))
    assert stackgen("render", "--dir", str(stack)).returncode == 0
    assert addresses_in(deny.read_text()) == ADDRESSES
    assert stackgen("ban", "list", "--dir", str(stack)).stdout.split() == [
        str(a) for a in ADDRESSES
    ]
