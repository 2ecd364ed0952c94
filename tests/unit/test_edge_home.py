"""The edge-home target rendered (no Docker): one `init` writes `edge/` and `home/`, home
publishes no port, Jellyfin trusts exactly the edge's tunnel address, the tunnel's keys are
0600 and in no file but wg0.conf, and each side's AllowedIPs is the other's /32 only."""

from __future__ import annotations

import re
import stat
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackgen.config_file import load_config
from stackgen.errors import ExitCode
from stackgen.models import parse_config
from stackgen.tunnel import keys
from tests.unit.test_cli import stackgen

INIT = [
    "init",
    "nginx",
    "--domain",
    "jellyfin.example.com",
    "--email",
    "admin@example.com",
    "--target",
    "edge-home",
    "--edge-host",
    "edge.example.com",
]
KEY_LINE = re.compile(r"^(PrivateKey|PresharedKey|PublicKey) = (\S+)$", re.MULTILINE)


def _init(tmp_path: Path, *extra: str) -> tuple[Path, str]:
    site = tmp_path / "site"
    run = stackgen(*INIT, "--dir", str(site), *extra)
    assert run.returncode == 0, run.stderr
    return site, run.stdout + run.stderr


def _compose(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((folder / "docker-compose.yml").read_text())
    return loaded


def _wg(folder: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in KEY_LINE.findall((folder / "wireguard/wg0.conf").read_text()):
        found.setdefault(key, []).append(value)
    return found


def test_init_renders_an_edge_and_a_home_stack_each_with_its_own_config(tmp_path: Path) -> None:
    site, _ = _init(tmp_path)
    assert sorted(p.name for p in site.iterdir()) == ["edge", "home"]
    edge, home = load_config(site / "edge"), load_config(site / "home")
    assert (edge.deploy.side, home.deploy.side) == ("edge", "home")  # type: ignore[attr-defined]
    assert (edge.project, home.project) == (
        "jellyfin-example-com-edge",
        "jellyfin-example-com-home",
    )
    # Both sides fit on one machine: their networks do not overlap.
    assert not edge.network.subnet.overlaps(home.network.subnet)
    assert set(_compose(site / "edge")["services"]) == {"wireguard", "nginx", "certbot", "gate"}
    assert set(_compose(site / "home")["services"]) == {"wireguard", "jellyfin"}
    # Each side renders only its own part: no proxy configuration at home, no Jellyfin at
    # the edge.
    assert not (site / "home/nginx").exists() and not (site / "home/certs").exists()
    assert not (site / "edge/jellyfin").exists()


def test_home_publishes_no_port(tmp_path: Path) -> None:
    site, _ = _init(tmp_path, "--http3")
    services = _compose(site / "home")["services"]
    assert [name for name, service in services.items() if "ports" in service] == []
    assert services["jellyfin"]["network_mode"] == "service:wireguard"
    # The home endpoint does not forward (a compromised edge gets no route into the LAN).
    assert services["wireguard"]["sysctls"]["net.ipv4.ip_forward"] == 0
    edge = _compose(site / "edge")["services"]
    # At the edge only the endpoint publishes: the WireGuard port and the proxy's.
    assert [name for name, service in edge.items() if "ports" in service] == ["wireguard"]
    assert edge["wireguard"]["ports"] == [
        "0.0.0.0:51820:51820/udp",
        "0.0.0.0:80:80",
        "0.0.0.0:443:443",
        "0.0.0.0:443:443/udp",
    ]
    assert edge["nginx"]["network_mode"] == "service:wireguard"


def test_the_edge_proxy_reaches_jellyfin_at_homes_tunnel_address(tmp_path: Path) -> None:
    site, _ = _init(tmp_path)
    conf = (site / "edge/nginx/conf.d/jellyfin.conf").read_text()
    assert "server 10.203.0.2:8096;" in conf


def test_known_proxies_is_exactly_the_edges_tunnel_address(tmp_path: Path) -> None:
    site, _ = _init(tmp_path, "--tunnel", "10.99.0.8/29")
    root = ET.parse(site / "home/jellyfin/config/config/network.xml").getroot()
    assert [e.text for e in root.findall("./KnownProxies/string")] == ["10.99.0.9"]
    assert "server 10.99.0.10:8096;" in (site / "edge/nginx/conf.d/jellyfin.conf").read_text()


def test_keys_are_0600_in_wg0_conf_only_and_never_printed(tmp_path: Path) -> None:
    site, printed = _init(tmp_path)
    edge, home = _wg(site / "edge"), _wg(site / "home")
    for side in ("edge", "home"):
        mode = stat.S_IMODE((site / side / "wireguard/wg0.conf").stat().st_mode)
        assert mode == 0o600, f"{side}: {oct(mode)}"
    # Each side holds its own private key and the other's public key; one preshared key.
    # Compared into booleans first: a failing assertion must not print a key.
    edge_known = keys.public_key(edge["PrivateKey"][0]) == home["PublicKey"][0]
    home_known = keys.public_key(home["PrivateKey"][0]) == edge["PublicKey"][0]
    one_preshared = edge["PresharedKey"] == home["PresharedKey"]
    assert edge_known, "home's peer key is not the edge's public key"
    assert home_known, "the edge's peer key is not home's public key"
    assert one_preshared, "the sides hold different preshared keys"
    secrets = [edge["PrivateKey"][0], home["PrivateKey"][0], edge["PresharedKey"][0]]
    distinct = len(set(secrets)) == 3
    assert distinct, "two keys are equal"
    for secret in secrets:
        unprinted = secret not in printed
        assert unprinted, "a key was printed by init"
        holders = [
            str(p.relative_to(site))
            for p in sorted(site.rglob("*"))
            if p.is_file() and secret.encode() in p.read_bytes()
        ]
        assert set(holders) <= {"edge/wireguard/wg0.conf", "home/wireguard/wg0.conf"}
    # The edge's private key is at the edge only, home's at home only.
    edge_private_at_edge = (
        edge["PrivateKey"][0] not in (site / "home/wireguard/wg0.conf").read_text()
    )
    home_private_at_home = (
        home["PrivateKey"][0] not in (site / "edge/wireguard/wg0.conf").read_text()
    )
    assert edge_private_at_edge, "the edge's private key is at home"
    assert home_private_at_home, "home's private key is at the edge"


def test_allowed_ips_are_only_the_other_sides_address(tmp_path: Path) -> None:
    site, _ = _init(tmp_path)
    for side, other in (("edge", "10.203.0.2/32"), ("home", "10.203.0.1/32")):
        text = (site / side / "wireguard/wg0.conf").read_text()
        assert re.findall(r"^AllowedIPs = (.*)$", text, re.MULTILINE) == [other]
    home = (site / "home/wireguard/wg0.conf").read_text()
    assert "Endpoint = edge.example.com:51820" in home
    assert "PersistentKeepalive = 25" in home
    # Line by line: a failing assertion must not print a key.
    edge_lines = (site / "edge/wireguard/wg0.conf").read_text().splitlines()
    assert not [line for line in edge_lines if line.startswith("Endpoint")]


def test_render_keeps_the_keys(tmp_path: Path) -> None:
    site, _ = _init(tmp_path)
    before = (site / "home/wireguard/wg0.conf").read_bytes()
    run = stackgen("render", "--dir", str(site / "home"))
    assert run.returncode == 0, run.stderr
    assert (site / "home/wireguard/wg0.conf").read_bytes() == before


def test_nothing_is_written_when_one_side_cannot_be(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "home").mkdir(parents=True)
    (site / "home/docker-compose.yml").write_text("services: {}\n")
    run = stackgen(*INIT, "--dir", str(site))
    assert run.returncode == ExitCode.CONFLICT, run.stderr
    assert run.stderr.count("\n") == 1
    assert not (site / "edge").exists()


def _side(**deploy: Any) -> dict[str, Any]:
    return {
        "proxy": "nginx",
        "domain": "jellyfin.example.com",
        "email": "admin@example.com",
        "jellyfin": {"network_mode": "bridge"},
        "deploy": {"target": "edge-home", "edge_host": "edge.example.com", **deploy},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"edge_host": None}, "deploy.edge_host is needed"),
        ({"edge_host": "edge.example.com\nPostUp = id"}, "not a host name"),
        ({"edge_host": "edge.example.com:51820"}, "not a host name"),
        ({"tunnel": "10.203.0.0/31"}, "no room for two addresses"),
        ({"tunnel": "8.8.8.0/30"}, "not a private range"),
        ({"tunnel": "172.30.77.0/30"}, "overlaps network.subnet"),
        ({"keepalive": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_tunnel_settings_are_refused(change: dict[str, Any], message: str) -> None:
    data = _side(side="home")
    data["deploy"] = {k: v for k, v in {**data["deploy"], **change}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        parse_config(data, Path("."), check_paths=False)


def test_a_side_refuses_a_host_network_jellyfin() -> None:
    data = _side(side="home")
    data["jellyfin"] = {"network_mode": "host"}
    with pytest.raises(ValueError, match="not on the edge-home target"):
        parse_config(data, Path("."), check_paths=False)


def test_the_token_gate_is_on_by_default_at_init_and_said_in_one_line(tmp_path: Path) -> None:
    site, output = _init(tmp_path)
    for side in ("edge", "home"):
        assert load_config(site / side).token_gate.on, side
    lines = [line for line in output.splitlines() if "access.gate" in line]
    assert len(lines) == 1 and "internet clients" in lines[0], output
    # Turned off by the user: nothing said, nothing rendered.
    site_off, output_off = _init(tmp_path / "off", "--gate", "off")
    assert not load_config(site_off / "edge").token_gate.on
    assert "gate" not in _compose(site_off / "edge")["services"]
    assert "access.gate" not in output_off


def test_the_gate_runs_at_the_edge_in_the_endpoints_namespace_on_loopback(tmp_path: Path) -> None:
    site, _ = _init(tmp_path)
    edge, home = _compose(site / "edge")["services"], _compose(site / "home")["services"]
    assert "gate" not in home
    gate = edge["gate"]
    # Beside the proxy in the endpoint's namespace: it asks Jellyfin through the tunnel, from
    # the edge's tunnel address, like the proxy.
    assert gate["network_mode"] == "service:wireguard"
    assert "networks" not in gate and "ports" not in gate and "extra_hosts" not in gate
    assert gate["environment"]["GATE_UPSTREAM"] == "http://10.203.0.2:8096"
    # Only the proxy beside it may ask: the namespace is also reachable through the tunnel
    # and from the edge's bridge, so the gate listens on loopback only.
    assert gate["environment"]["GATE_LISTEN"] == "127.0.0.1"
    assert "gate" in edge["nginx"]["depends_on"]
    nginx = (site / "edge/nginx/conf.d/jellyfin.conf").read_text()
    assert "server 127.0.0.1:9090;" in nginx and "auth_request /.stackgen-gate;" in nginx


@pytest.mark.parametrize("proxy", ["caddy", "traefik", "haproxy", "apache"])
def test_every_proxy_asks_the_gate_on_loopback_at_the_edge(tmp_path: Path, proxy: str) -> None:
    site = tmp_path / "site"
    run = stackgen(*[proxy if a == "nginx" else a for a in INIT], "--dir", str(site))
    assert run.returncode == 0, run.stderr
    rendered = "\n".join(
        p.read_text() for p in (site / "edge").rglob("*") if p.is_file() and p.suffix != ".pem"
    )
    assert "127.0.0.1:9090" in rendered or "127.0.0.1:9091" in rendered, proxy
    # The compose target's pinned gate address (.126, or .125 when the proxy holds .126).
    assert "172.30.77.126" not in rendered and "172.30.77.125" not in rendered


def test_the_side_files_read_back_as_written(tmp_path: Path) -> None:
    site, _ = _init(tmp_path)
    data = tomllib.loads((site / "home/stackgen.toml").read_text())
    assert data["deploy"]["side"] == "home"
    assert data["jellyfin"]["network_mode"] == "bridge"


def test_the_tunnel_state_from_wg_show() -> None:
    from stackgen.tunnel.state import parse

    peer = "PEERPUBLICKEY="
    state = parse(
        f"{peer}\t1000\n",
        f"{peer}\t852\t892\n",
        f"{peer}\t192.0.2.7:51820\n",
        f"{peer}\t10.203.0.2/32\n",
        now=1042,
    )
    assert state.up and state.handshake_age == 42
    assert (state.received, state.sent, state.endpoint) == (852, 892, "192.0.2.7:51820")
    assert state.allowed_ips == ("10.203.0.2/32",)
    assert state.line().startswith("up, last handshake 42 s ago")
    stale = parse(f"{peer}\t1000\n", f"{peer}\t0\t0\n", f"{peer}\t(none)\n", "", now=1181)
    assert not stale.up and stale.line() == "down: no handshake for 181 s"
    never = parse(f"{peer}\t0\n", f"{peer}\t0\t148\n", f"{peer}\t(none)\n", "", now=5)
    assert never.handshake_age is None and never.endpoint is None
    assert never.line() == "down: no handshake yet"


@pytest.mark.parametrize(
    ("age", "allowed", "expected"),
    [
        (20, ["10.203.0.2/32"], {"tunnel.handshake": "pass", "tunnel.allowed-ips": "pass"}),
        (150, ["10.203.0.2/32"], {"tunnel.handshake": "warn", "tunnel.allowed-ips": "pass"}),
        (200, ["10.203.0.2/32"], {"tunnel.handshake": "fail", "tunnel.allowed-ips": "pass"}),
        (None, [], {"tunnel.handshake": "fail", "tunnel.allowed-ips": "fail"}),
        (5, ["10.203.0.2/32", "192.168.1.0/24"], {"tunnel.allowed-ips": "fail"}),
    ],
)
def test_verify_judges_the_tunnel_from_what_the_side_reports(
    age: int | None, allowed: list[str], expected: dict[str, str]
) -> None:
    from stackgen.probe import Target, Tunnel, run_checks

    tunnel = Tunnel(handshake_age=age, allowed_ips=allowed, expected_peer="10.203.0.2/32")
    # Nothing listens there: the tunnel.* checks judge the facts and open no connection.
    report = run_checks(
        Target(url="https://jellyfin.example.com:1", tunnel=tunnel), only=["tunnel"]
    )
    statuses = {r.id: str(r.status) for r in report.results}
    assert {k: statuses[k] for k in expected} == expected


def test_the_edge_home_target_offers_the_token_gate_and_swarm_does_not() -> None:
    from stackgen.models.deploy import DeployConfig
    from stackgen.targets.edge_home.config import EdgeHomeDeploy
    from stackgen.targets.swarm.config import SwarmDeploy

    assert DeployConfig.offers_token_gate
    assert EdgeHomeDeploy.offers_token_gate
    assert not SwarmDeploy.offers_token_gate


def test_bench_on_the_edge_names_the_path_through_the_tunnel(tmp_path: Path) -> None:
    from stackgen.stack import Stack

    site, _ = _init(tmp_path)
    edge = Stack.load(site / "edge")
    route = edge.target.client_route(edge)
    assert route == [
        "the edge proxy (nginx), in the edge tunnel endpoint's network namespace",
        "WireGuard 10.203.0.1 -> 10.203.0.2 (home dials the edge)",
        "Jellyfin at home, http://10.203.0.2:8096",
    ]
    home = Stack.load(site / "home")
    assert home.target.client_route(home) == []


def test_bench_refuses_home_in_one_line(tmp_path: Path) -> None:
    site, _ = _init(tmp_path)
    run = stackgen("bench", "--dir", str(site), "--side", "home")
    assert run.returncode == ExitCode.INVALID_INPUT, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "runs no proxy" in lines[0] and "--side edge" in lines[0], lines


def test_bench_keeps_a_gated_streams_api_key_out_of_its_json() -> None:
    """On a gated edge the stream path carries a token (`--media-path …&api_key=…`)."""
    from stackgen.bench.measure import BenchSettings

    path = "/Videos/x/stream?static=true&api_key=0123456789abcdef0123456789abcdef"
    shown = BenchSettings(media_path=path).to_json()["media_path"]
    assert "0123456789abcdef" not in shown and shown.startswith("/Videos/x/stream?static=true")
