"""Dual-stack (`ipv6 = true`): the pinned IPv6 subnet and address, what every file says,
the refusals, and `up`'s check of the engine's other networks. That an IPv6 client keeps
its address end to end is proven against real proxies in tests/integration/test_ipv6.py."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stackgen import lifecycle
from stackgen.config_file import build_config, dump_config
from stackgen.engine import NetworkSubnets
from stackgen.errors import DockerError, ExitCode, InvalidInputError
from stackgen.models import ipv6_subnet_for
from stackgen.proxies import available
from stackgen.stack import Stack
from stackgen.stack_checks import _network_xml
from tests.unit.rendering import config_for, rendered
from tests.unit.test_cli import BASE, stackgen

NETWORK_XML = "jellyfin/config/config/network.xml"


def _config(tmp: Path, **data: Any) -> Any:
    return build_config(
        {"proxy": "nginx", "domain": "jf.example.com", "email": "a@example.com", **data},
        tmp,
        check_paths=False,
    )


def test_the_default_subnet6_is_derived_from_the_ipv4_subnet_and_pinned(tmp_path: Path) -> None:
    config = _config(tmp_path, ipv6=True)
    network = config.network
    assert network.subnet6 == ipaddress.IPv6Network("fd6a:6600:ac1e:4d00::/64")
    assert str(network.proxy_ip6) == "fd6a:6600:ac1e:4d00::2"
    # Docker's own IPv6 allocations stay away from the proxy's address.
    assert network.dynamic_range6 == ipaddress.IPv6Network("fd6a:6600:ac1e:4d00:8000::/66")
    assert config.known_proxies == ["172.30.77.2", "fd6a:6600:ac1e:4d00::2"]
    # Written into stackgen.toml: a later change of the derivation cannot move it.
    written = tomllib.loads(dump_config(config))
    assert written["ipv6"] is True
    assert written["network"]["subnet6"] == "fd6a:6600:ac1e:4d00::/64"


def test_distinct_ipv4_subnets_give_distinct_ipv6_subnets() -> None:
    a = ipv6_subnet_for(ipaddress.IPv4Network("172.30.99.0/24"))
    b = ipv6_subnet_for(ipaddress.IPv4Network("172.30.100.0/24"))
    assert a != b and not a.overlaps(b)
    assert a.subnet_of(ipaddress.IPv6Network("fc00::/7"))


def test_the_proxy_keeps_its_host_number_on_ipv6(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        ipv6=True,
        network={"proxy_address": "172.30.77.10", "subnet6": "fd12:3456:789a:1::/64"},
    )
    assert str(config.network.proxy_ip6) == "fd12:3456:789a:1::a"


def test_ipv6_off_adds_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config.network.subnet6 is None and config.network.proxy_ip6 is None
    assert config.known_proxies == ["172.30.77.2"]
    files = rendered(config, tmp_path)
    assert "enable_ipv6" not in files["docker-compose.yml"]
    assert "[::]" not in files["docker-compose.yml"]
    assert "<EnableIPv6>false</EnableIPv6>" in files[NETWORK_XML]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"ipv6": True, "network": {"subnet6": "2001:db8::/64"}}, "not a unique local range"),
        ({"ipv6": True, "network": {"subnet6": "fd00::/126"}}, "too small"),
        ({"ipv6": True, "network": {"subnet6": 42}}, "expected an IPv6 address as a string"),
        ({"ipv6": True, "network": {"subnet6": "10.0.0.0/24"}}, "IPv6"),
        ({"network": {"subnet6": "fd00:1::/64"}}, "needs ipv6 = true"),
        ({"ipv6": "yes"}, "ipv6: Input should be a valid boolean"),
        ({"ipv6": 1}, "ipv6: Input should be a valid boolean"),
        ({"ipv6": True, "ports": {"listen_address6": "0.0.0.0"}}, "listen_address6"),
        (
            {
                "ipv6": True,
                "network": {"proxy_address": "172.30.77.100", "subnet6": "fd00::/121"},
            },
            "too small for the proxy's address",
        ),
        (
            {
                "ipv6": True,
                "network": {"subnet6": "fd12:3456:789a::/64"},
                "jellyfin": {
                    "lan_url": "http://jf.lan:8096",
                    "lan_subnets": ["fd12:3456::/32"],
                },
            },
            "overlaps the proxy network fd12:3456:789a::/64",
        ),
    ],
)
def test_bad_ipv6_input_is_one_line(tmp_path: Path, data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        _config(tmp_path, **data)
    message = str(refused.value)
    assert fragment in message and "\n" not in message
    assert refused.value.exit_code == ExitCode.INVALID_INPUT


@pytest.mark.parametrize("proxy", available())
def test_every_file_follows_ipv6(proxy: str, tmp_path: Path) -> None:
    config = config_for(proxy, tmp_path, ipv6=True, tls={"mode": "internal"})
    files = rendered(config, tmp_path)
    compose = files["docker-compose.yml"]
    assert "enable_ipv6: true" in compose
    assert '- subnet: "fd6a:6600:ac1e:4d00::/64"' in compose
    assert 'ipv6_address: "fd6a:6600:ac1e:4d00::2"' in compose
    assert '"[::]:443:443"' in compose and '"0.0.0.0:443:443"' in compose
    xml = files[NETWORK_XML]
    assert "<EnableIPv6>true</EnableIPv6>" in xml
    assert "<string>172.30.77.2</string>" in xml
    assert "<string>fd6a:6600:ac1e:4d00::2</string>" in xml


def test_nginx_and_haproxy_listen_on_ipv6_only_with_it(tmp_path: Path) -> None:
    on = rendered(config_for("nginx", tmp_path, ipv6=True), tmp_path)
    off = rendered(config_for("nginx", tmp_path), tmp_path)
    conf = "nginx/conf.d/jellyfin.conf"
    assert "listen [::]:443 ssl default_server;" in on[conf]
    assert "listen [::]:80 default_server;" in on[conf]
    assert "[::]" not in off[conf]
    on = rendered(config_for("haproxy", tmp_path, ipv6=True), tmp_path)
    off = rendered(config_for("haproxy", tmp_path), tmp_path)
    cfg = "haproxy/haproxy.cfg"
    assert "bind :::443 v6only ssl crt" in on[cfg] and "bind :::80 v6only" in on[cfg]
    assert "bind :443 ssl crt" in on[cfg]  # IPv4 keeps its own socket
    assert ":::" not in off[cfg]


def test_udp_is_published_on_ipv6_too_with_http3(tmp_path: Path) -> None:
    config = config_for("caddy", tmp_path, ipv6=True, http3=True)
    compose = rendered(config, tmp_path)["docker-compose.yml"]
    assert '"[::]:443:443/udp"' in compose


def test_a_listen_address6_is_where_ipv6_is_published(tmp_path: Path) -> None:
    config = config_for("nginx", tmp_path, ipv6=True, ports={"listen_address6": "fd00::2"})
    compose = rendered(config, tmp_path)["docker-compose.yml"]
    assert '"[fd00::2]:443:443"' in compose and "[::]" not in compose


def test_check_fails_ipv6_known_proxies_without_enable_ipv6(tmp_path: Path) -> None:
    config = config_for("nginx", tmp_path, ipv6=True)
    files = rendered(config, tmp_path)
    path = tmp_path / NETWORK_XML
    path.parent.mkdir(parents=True)
    path.write_text(files[NETWORK_XML])
    stack = Stack(config, tmp_path)
    assert [f.status.value for f in _network_xml(stack)] == ["pass"]
    path.write_text(files[NETWORK_XML].replace("<EnableIPv6>true<", "<EnableIPv6>false<"))
    findings = _network_xml(stack)
    assert [f.status.value for f in findings] == ["fail"]
    assert "EnableIPv6" in findings[0].message


def _networks(*entries: tuple[str, str, str]) -> list[NetworkSubnets]:
    return [
        NetworkSubnets(name, project, (ipaddress.ip_network(subnet),))
        for name, project, subnet in entries
    ]


def test_up_names_the_docker_network_that_holds_the_ipv6_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, ipv6=True, project="mine")
    stack = Stack(config, tmp_path)
    monkeypatch.setattr(
        lifecycle,
        "network_subnets",
        lambda: _networks(
            ("mine_proxy", "mine", "fd6a:6600:ac1e:4d00::/64"),  # our own: a re-run
            ("bridge", "", "fd5a:14a8:ffff::/64"),
        ),
    )
    lifecycle._subnets_free(stack)
    monkeypatch.setattr(
        lifecycle,
        "network_subnets",
        lambda: _networks(("lab", "other", "fd6a:6600:ac1e::/48")),
    )
    with pytest.raises(DockerError) as refused:
        lifecycle._subnets_free(stack)
    assert str(refused.value) == (
        "network.subnet6 fd6a:6600:ac1e:4d00::/64 overlaps Docker network lab "
        "(fd6a:6600:ac1e::/48): change network.subnet6 or remove that network"
    )
    assert refused.value.exit_code == ExitCode.DOCKER


def test_up_names_the_docker_network_that_holds_the_ipv4_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(_config(tmp_path, project="mine"), tmp_path)
    monkeypatch.setattr(
        lifecycle, "network_subnets", lambda: _networks(("lab", "", "172.30.0.0/16"))
    )
    with pytest.raises(DockerError, match=r"^network.subnet 172.30.77.0/24 overlaps Docker"):
        lifecycle._subnets_free(stack)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--ipv6", "--subnet6", "2001:db8::/64"], "not a unique local range"),
        (["--subnet6", "fd00:1::/64"], "needs ipv6 = true"),
    ],
)
def test_init_refuses_bad_ipv6_and_writes_nothing(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    stack = tmp_path / "stack"
    result = stackgen(*BASE, *args, "--dir", str(stack))
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not stack.exists()


def test_init_ipv6_writes_a_dual_stack(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    result = stackgen(*BASE, "--ipv6", "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    written = tomllib.loads((stack / "stackgen.toml").read_text())
    assert written["ipv6"] is True and written["network"]["subnet6"].startswith("fd6a:6600:")
    assert "<EnableIPv6>true</EnableIPv6>" in (stack / NETWORK_XML).read_text()


class _Gone:
    """A network listed, then removed before it was inspected (python-on-whales inspects
    on first attribute access)."""

    @property
    def name(self) -> str:
        from stackgen.engine import DockerException

        raise DockerException(["docker", "network", "inspect", "x"], 1)


_LISTED = SimpleNamespace(
    name="lab",
    labels={"com.docker.compose.project": "other"},
    ipam=SimpleNamespace(
        config=[{"Subnet": "172.31.0.0/24"}, {"Subnet": "fd6a:6600::/64"}, {"Subnet": ""}]
    ),
)


def test_network_subnets_skips_a_network_removed_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stackgen import engine

    class Networks:
        def list(self) -> list[object]:
            return [_Gone(), _LISTED]

    class Docker:
        network = Networks()

    monkeypatch.setattr(engine, "docker", Docker())
    assert engine.network_subnets() == [
        NetworkSubnets(
            "lab",
            "other",
            (ipaddress.ip_network("172.31.0.0/24"), ipaddress.ip_network("fd6a:6600::/64")),
        )
    ]


def test_verify_observes_both_addresses_of_the_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`verify` judges KnownProxies against every address the running proxy has: over
    IPv6 (a bridged Jellyfin) it connects from its IPv6 one."""
    from stackgen import verify

    endpoint = SimpleNamespace(ip_address="172.30.77.2", global_ipv6_address="fd6a:6600::2")
    ipv4_only = SimpleNamespace(ip_address="172.30.78.2", global_ipv6_address="")
    container = SimpleNamespace(
        id="0123abcd",
        name="mine-nginx-1",
        config=SimpleNamespace(labels={"com.docker.compose.service": "nginx"}),
        state=SimpleNamespace(status="running", health=None, pid=4321),
        network_settings=SimpleNamespace(networks={"a": endpoint, "b": ipv4_only}, ports={}),
    )
    compose = SimpleNamespace(compose=SimpleNamespace(ps=lambda services, all=False: [container]))
    monkeypatch.setattr(Stack, "compose", property(lambda self: compose))
    stack = Stack(_config(tmp_path, ipv6=True), tmp_path)
    assert verify.proxy_addresses(stack) == ["172.30.77.2", "fd6a:6600::2", "172.30.78.2"]
