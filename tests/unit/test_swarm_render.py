"""The swarm target's model and stack file (no Docker): validation, KnownProxies, the
content-hashed configs and secrets, and bad input refused in one line with nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stackgen.errors import ExitCode
from stackgen.models import parse_config
from stackgen.render import COMPOSE_FILE, render_stack
from stackgen.targets.swarm.config import EDGE_LABEL, MEDIA_LABEL
from stackgen.targets.swarm.stack_file import NAME_LIMIT
from tests.unit.test_cli import BASE, stackgen


def _config(tmp: Path, **overrides: Any) -> Any:
    data: dict[str, Any] = {
        "proxy": "traefik",
        "domain": "jellyfin.example.com",
        "email": "admin@example.com",
        "run_as": "1000:1000",
        "jellyfin": {"network_mode": "bridge"},
        "deploy": {"target": "swarm"},
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return parse_config(data, tmp, check_paths=False)


def _stack_file(tmp: Path, **overrides: Any) -> dict[str, Any]:
    files, _ = render_stack(_config(tmp, **overrides), tmp)
    content = next(f.content for f in files if f.path == COMPOSE_FILE)
    loaded = yaml.safe_load(content)
    assert isinstance(loaded, dict)
    return loaded


def test_default_target_is_compose(tmp_path: Path) -> None:
    config = parse_config(
        {"proxy": "nginx", "domain": "jellyfin.example.com", "tls": {"mode": "internal"}},
        tmp_path,
        check_paths=False,
    )
    assert config.deploy.target == "compose"
    assert config.known_proxies == ["172.30.77.2"]


def test_known_proxies_bridge_is_the_overlay_subnet(tmp_path: Path) -> None:
    config = _config(tmp_path, network={"subnet": "172.31.5.0/24"})
    assert config.known_proxies == ["172.31.5.0/24"]
    assert config.jellyfin_upstream == "http://jellyfin:8096"


def test_known_proxies_host_network(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        jellyfin={"network_mode": "host"},
        deploy={
            "media_address": "192.0.2.10",
            "edge_addresses": ["192.0.2.20"],
            "allow_plain_media_link": True,
        },
    )
    # The gateway bridge (proxy on the media node) and the edge node (proxy elsewhere).
    assert config.known_proxies == ["172.18.0.0/16", "192.0.2.20"]
    assert config.jellyfin_upstream == "http://192.0.2.10:8096"


def test_stack_file_services_and_placement(tmp_path: Path) -> None:
    stack = _stack_file(tmp_path, proxy="nginx")
    services = stack["services"]
    assert sorted(services) == ["certbot", "jellyfin", "nginx"]
    for name, service in services.items():
        assert "restart" not in service and "security_opt" not in service, name
        assert service["deploy"]["endpoint_mode"] == "dnsrr"
        assert service["deploy"]["replicas"] == 1
        assert service["cap_drop"] == ["ALL"]
        role = MEDIA_LABEL if name == "jellyfin" else EDGE_LABEL
        assert service["deploy"]["placement"]["constraints"] == [f"node.labels.{role} == true"]
    ports = services["nginx"]["ports"]
    assert {(p["published"], p["mode"]) for p in ports} == {(80, "host"), (443, "host")}
    assert stack["networks"]["proxy"]["driver"] == "overlay"
    assert stack["networks"]["proxy"]["attachable"] is False
    # Every config a service names is declared, with a hashed name; no read-only bind of
    # a rendered file remains.
    declared = stack["configs"]
    for service in services.values():
        for config in service.get("configs", []):
            assert config["source"] in declared
        for volume in service.get("volumes", []):
            if isinstance(volume, dict) and volume["type"] == "bind":
                assert not volume["source"].startswith(("./nginx", "./certbot"))
    for obj in declared.values():
        assert len(obj["name"]) <= NAME_LIMIT


def test_a_changed_file_gets_a_new_config_name(tmp_path: Path) -> None:
    off = {"ban": {"enabled": False}}
    before = _stack_file(tmp_path, access=off)["configs"]
    after = _stack_file(tmp_path, access=off, headers={"referrer_policy": "no-referrer"})
    assert before.keys() == after["configs"].keys()
    changed = [key for key in before if before[key]["name"] != after["configs"][key]["name"]]
    assert changed == ["traefik-dynamic.toml"]


def test_the_ban_folder_stays_the_node_s_own_and_traefik_s_routes_a_config(
    tmp_path: Path,
) -> None:
    # `stackgen ban` rewrites the deny file while Traefik runs, and Traefik's composer copies
    # it: a config (immutable) would never change, so the folder is a bind mount. The site's
    # routes are a config, as the other proxies' files.
    stack = _stack_file(tmp_path)
    assert "traefik-dynamic.toml" in stack["configs"]
    assert not any(key.startswith("ban") for key in stack.get("configs", {}))
    volumes = stack["services"]["traefik"]["volumes"]
    ban = [v for v in volumes if isinstance(v, dict) and v.get("source") == "./ban"]
    assert ban == [
        {"type": "bind", "source": "./ban", "target": "/etc/stackgen-ban", "read_only": True}
    ]


def test_network_xml_change_rolls_jellyfin(tmp_path: Path) -> None:
    def label(**overrides: Any) -> str:
        service = _stack_file(tmp_path, **overrides)["services"]["jellyfin"]
        return str(service["labels"]["stackgen.network-xml"])

    assert label() != label(subpath="/jellyfin")


def test_private_keys_are_secrets_for_the_service_user(tmp_path: Path) -> None:
    stack = _stack_file(tmp_path, proxy="caddy", tls={"mode": "internal"}, email=None)
    caddy = stack["services"]["caddy"]
    assert [s["target"] for s in caddy["secrets"]] == ["/etc/stackgen/tls/privkey.pem"]
    assert caddy["secrets"][0]["uid"] == "1000"
    assert oct(caddy["secrets"][0]["mode"]) == "0o400"
    assert "tls-fullchain.pem" in stack["configs"]
    assert list(stack["secrets"]) == ["tls-privkey.pem"]


def test_owned_tmpfs_is_a_tmpfs_volume(tmp_path: Path) -> None:
    stack = _stack_file(tmp_path, proxy="nginx")
    volume = stack["volumes"]["nginx-tmpfs-run"]
    assert volume["driver_opts"] == {
        "type": "tmpfs",
        "device": "tmpfs",
        "o": "uid=1000,gid=1000,mode=0755",
    }


def test_host_network_jellyfin(tmp_path: Path) -> None:
    stack = _stack_file(
        tmp_path,
        jellyfin={"network_mode": "host"},
        deploy={"media_address": "192.0.2.10", "allow_plain_media_link": True},
    )
    assert stack["services"]["jellyfin"]["networks"] == ["host"]
    assert stack["networks"]["host"] == {"external": True, "name": "host"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "swarm"], "deploy.media_address is needed"),
        (["--target", "swarm", "--listen-address", "127.0.0.1"], "ports.listen_address"),
        (["--media-address", "192.0.2.10"], "applies to deploy.target 'swarm' only"),
        (
            ["--target", "swarm", "--jellyfin-network", "bridge", "--media-address", "192.0.2.1"],
            "network_mode 'host' only",
        ),
        (
            ["--target", "swarm", "--jellyfin-network", "bridge", "--ipv6"],
            "ipv6: not on the swarm target yet",
        ),
        (["--target", "kubernetes"], "kubernetes"),
    ],
)
def test_bad_swarm_input_is_one_line_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    folder = tmp_path / "stack"
    result = stackgen(*BASE, *args, "--dir", str(folder))
    expected = ExitCode.USAGE if "kubernetes" in args else ExitCode.INVALID_INPUT
    assert result.returncode == expected, result.stderr
    assert message in result.stderr
    if expected is ExitCode.INVALID_INPUT:
        assert len(result.stderr.strip().splitlines()) == 1
    assert not folder.exists()


def test_proxy_address_cannot_be_pinned_on_a_swarm(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot pin a task's address"):
        _config(tmp_path, network={"subnet": "172.31.5.0/24", "proxy_address": "172.31.5.2"})


def test_init_writes_the_deploy_table(tmp_path: Path) -> None:
    folder = tmp_path / "stack"
    result = stackgen(
        *BASE,
        *("--target", "swarm", "--media-address", "192.0.2.10", "--allow-plain-media-link"),
        *("--dir", str(folder)),
    )
    assert result.returncode == 0, result.stderr
    text = (folder / "stackgen.toml").read_text()
    assert '[deploy]\ntarget = "swarm"\nmedia_address = "192.0.2.10"' in text
    assert (folder / COMPOSE_FILE).read_text().count("mode: host") == 2


# --- up's swarm preflight, against a faked engine ----------------------------------------


def _node(labels: dict[str, str], *, ready: bool = True, active: bool = True) -> Any:
    from stackgen.engine import SwarmNode

    return SwarmNode("n1", "node-1", ready=ready, active=active, labels=labels)


@pytest.mark.parametrize(
    ("membership", "nodes", "message"),
    [
        (("inactive", False), [], "not in a swarm (state inactive): run `docker swarm init"),
        (("active", False), [], "this node is a swarm worker: run stackgen on a manager"),
        (
            ("active", True),
            [_node({MEDIA_LABEL: "true"})],
            f"no swarm node carries the label {EDGE_LABEL}=true (the edge node): "
            f"docker node update --label-add {EDGE_LABEL}=true NODE",
        ),
        (
            ("active", True),
            [_node({EDGE_LABEL: "true", MEDIA_LABEL: "true"}, active=False)],
            "the edge node (node-1, label stackgen.role.edge=true) is drained, paused or down",
        ),
    ],
)
def test_up_explains_the_swarm_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    membership: tuple[str, bool],
    nodes: list[Any],
    message: str,
) -> None:
    from stackgen import engine
    from stackgen.engine import SwarmMembership

    folder = tmp_path / "stack"
    assert (
        stackgen(
            *BASE, "--target", "swarm", "--jellyfin-network", "bridge", "--dir", str(folder)
        ).returncode
        == 0
    )
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    state, manager = membership
    monkeypatch.setattr(engine, "require_engine", lambda: None)
    monkeypatch.setattr(engine, "swarm_membership", lambda: SwarmMembership(state, manager, "n1"))
    monkeypatch.setattr(engine, "swarm_nodes", lambda: nodes)
    monkeypatch.setattr("stackgen.lifecycle.require_engine", lambda: None)
    result = stackgen("up", "--dir", str(folder))
    assert result.returncode == ExitCode.DOCKER, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert message in last, last
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_up_refuses_a_gateway_bridge_known_proxies_does_not_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stackgen import engine
    from stackgen.engine import SwarmMembership

    folder = tmp_path / "stack"
    init = stackgen(
        *BASE,
        *("--target", "swarm", "--media-address", "192.0.2.10", "--allow-plain-media-link"),
        *("--dir", str(folder)),
    )
    assert init.returncode == 0, init.stderr
    monkeypatch.setattr("stackgen.lifecycle.require_engine", lambda: None)
    monkeypatch.setattr(engine, "swarm_membership", lambda: SwarmMembership("active", True, "n1"))
    monkeypatch.setattr(
        engine, "swarm_nodes", lambda: [_node({EDGE_LABEL: "true", MEDIA_LABEL: "true"})]
    )
    monkeypatch.setattr(engine, "stack_services", lambda project: [])
    monkeypatch.setattr(engine, "gateway_bridge_subnet", lambda: "172.19.0.0/16")
    result = stackgen("up", "--dir", str(folder))
    assert result.returncode == ExitCode.INVALID_INPUT, result.stderr
    assert 'set deploy.gateway_subnet = "172.19.0.0/16"' in result.stderr.strip().splitlines()[-1]


def test_certbot_script_change_leaves_the_proxy_alone(tmp_path: Path) -> None:
    def names(email: str) -> dict[str, set[str]]:
        stack = _stack_file(tmp_path, proxy="nginx", email=email)
        declared = stack["configs"]
        return {
            service: {declared[c["source"]]["name"] for c in spec.get("configs", [])}
            for service, spec in stack["services"].items()
        }

    before, after = names("admin@example.com"), names("other@example.com")
    assert before["nginx"] == after["nginx"]  # run.sh holds the email; nginx never reads it
    assert before["certbot"] != after["certbot"]
    # The proxy's file watcher (certbot's certificate, the ban list) is the proxy's own file.
    assert any(
        name.startswith("jellyfin-example-com-nginx-conf.d-watch") for name in after["nginx"]
    )


def test_a_service_that_keeps_failing_is_named_with_its_reason() -> None:
    from stackgen.engine import SwarmTask
    from stackgen.errors import UnhealthyError
    from stackgen.targets.swarm.target import GIVE_UP_AFTER_FAILURES, _keeps_failing

    def task(n: int, state: str = "rejected") -> SwarmTask:
        error = "invalid mount config: bind source path does not exist: /srv/x"
        return SwarmTask(f"t{n}", "jellyfin", 1, "media-1", "shutdown", state, error, "")

    old = [task(n, "failed") for n in range(GIVE_UP_AFTER_FAILURES)]
    _keeps_failing(old, frozenset(t.id for t in old))  # history from before the deploy
    new = [task(n) for n in range(10, 10 + GIVE_UP_AFTER_FAILURES)]
    _keeps_failing(new[:-1], frozenset())  # not yet
    with pytest.raises(UnhealthyError, match=r"jellyfin failed 4 times on the swarm \(node "):
        _keeps_failing(new, frozenset())
