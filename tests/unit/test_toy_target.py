"""A third deploy target from a package outside stackgen (tests/fixtures/toytarget: its
modules and its template folder) renders a stack and runs it through `up`, `status`, `logs`
and `down`, with no edit to any stackgen module: the registry lists it, the model takes its
`deploy` table, render uses its templates, lifecycle drives its operations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackgen import lifecycle
from stackgen.allocate import bind_free_port
from stackgen.errors import ExitCode
from stackgen.models import parse_config
from stackgen.stack import Stack
from stackgen.stack_checks import check_stack
from stackgen.targets import registry
from tests.fixtures.toytarget import SPEC
from tests.unit.rendering import config_for, rendered
from tests.unit.test_cli import stackgen

INIT = ["init", "nginx", "--domain", "jellyfin.example.com", "--tls", "internal"]


@pytest.fixture
def toy() -> Iterator[None]:
    registry.register(SPEC)
    try:
        yield
    finally:
        registry.unregister(SPEC.name)


def test_unknown_until_registered(tmp_path: Path) -> None:
    assert "toy" not in registry.available()
    with pytest.raises(ValueError, match="Input should be 'compose', 'swarm' or 'edge-home'"):
        config_for("nginx", tmp_path, deploy={"target": "toy"})
    result = stackgen(*INIT, "--target", "toy", "--dir", str(tmp_path / "s"))
    assert result.returncode == ExitCode.USAGE
    assert "'toy' is not one of 'compose', 'swarm'" in result.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.usefixtures("toy")
def test_its_deploy_table_and_limits(tmp_path: Path) -> None:
    config = config_for(
        "nginx",
        tmp_path,
        deploy={"target": "toy", "proxy_source": "127.0.0.9"},
        ports={"listen_address": "127.0.0.1"},
    )
    assert config.known_proxies == ["127.0.0.9"]
    with pytest.raises(ValueError, match=r"the toy target listens on 127\.0\.0\.1 only"):
        config_for("nginx", tmp_path, deploy={"target": "toy"})
    # Another target's setting is named as such.
    other = r"deploy\.media_address applies to deploy\.target 'swarm'"
    with pytest.raises(ValueError, match=other):
        config_for("nginx", tmp_path, deploy={"target": "toy", "media_address": "192.0.2.1"})


@pytest.mark.usefixtures("toy")
@pytest.mark.parametrize("proxy", ["nginx", "caddy"])
def test_registered_target_renders_a_stack(proxy: str, tmp_path: Path) -> None:
    config = config_for(
        proxy,
        tmp_path,
        jellyfin={"network_mode": "bridge"},
        deploy={"target": "toy"},
        ports={"listen_address": "127.0.0.1", "https": 8443},
    )
    files = rendered(config, tmp_path)
    stack = files["docker-compose.yml"]
    assert re.match(r"# The toy target's stack file \(\d+ other files\)", stack)
    # The shared skeleton of the proxy service with the toy's own blocks.
    assert f'  {proxy}:\n    image: "' in stack
    assert "    read_only: true\n    cap_drop:\n      - ALL\n" in stack
    assert '      - "127.0.0.1:8443:443"\n' in stack
    assert "    # toy: connects from 127.0.0.1\n" in stack
    assert "    # toy: in this process\n" in stack
    # Neither the other targets' blocks nor their words.
    assert "restart:" not in stack and "mode: host" not in stack and "ipv4_address" not in stack
    network = files["jellyfin/config/config/network.xml"]
    assert "for the toy target" in network
    assert "<string>127.0.0.1</string>" in network
    # The certbot source's service, in the toy's variant.
    certbot = config_for(
        "nginx",
        tmp_path,
        deploy={"target": "toy"},
        ports={"listen_address": "127.0.0.1"},
    )
    with_certbot = rendered(certbot, tmp_path)["docker-compose.yml"]
    assert "\n  certbot:\n" in with_certbot
    assert "depends_on" not in with_certbot


@pytest.mark.usefixtures("toy")
def test_up_status_logs_down_through_lifecycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "stack"
    port = str(bind_free_port())
    init = stackgen(
        *INIT,
        "--target",
        "toy",
        "--listen-address",
        "127.0.0.1",
        "--https-port",
        port,
        "--dir",
        str(folder),
    )
    assert init.returncode == 0, init.stderr
    assert "on a toy" not in init.stdout and "in the toy's own process" in init.stderr
    assert (
        '[deploy]\ntarget = "toy"\nproxy_source = "127.0.0.1"'
        in (folder / "stackgen.toml").read_text()
    )
    # No engine in a unit test: what every target shares runs without its Docker steps.
    monkeypatch.setattr(lifecycle, "require_engine", lambda: None)
    monkeypatch.setattr(lifecycle, "network_subnets", lambda: [])
    monkeypatch.setattr(lifecycle, "check_stack", lambda s: check_stack(s, use_docker=False))
    stack = Stack.load(folder)
    said: list[str] = []
    try:
        # Through the proxy over verified HTTPS, with the stack's own CA, as for any target.
        url = lifecycle.up(stack, timeout=20, progress=said.append)
        assert url == f"https://jellyfin.example.com:{port}/"
        assert said[:2] == ["toy: nothing to check", f"toy: serving {stack.config.project}"]
        status = lifecycle.status(stack)
        assert status["target"] == "toy"
        assert status["healthy"] is True, status["problems"]
        assert status["running"] is True
        certificate = status["certificate"]
        assert isinstance(certificate, dict) and certificate["verified"] is True
        assert any("GET /health" in line for line in lifecycle.logs(stack, None, False))
    finally:
        lifecycle.down(stack, volumes=False)
    assert lifecycle.status(stack)["problems"] == [
        "jellyfin (no runner)",
        "nginx (no runner)",
    ]


def test_the_config_of_a_registered_target_reads_back(tmp_path: Path) -> None:
    """An unregistered target's table is an error again once it is gone."""
    registry.register(SPEC)
    try:
        data = {
            "proxy": "nginx",
            "domain": "jellyfin.example.com",
            "tls": {"mode": "internal"},
            "ports": {"listen_address": "127.0.0.1"},
            "deploy": {"target": "toy"},
        }
        assert parse_config(data, tmp_path, check_paths=False).deploy.target == "toy"
    finally:
        registry.unregister(SPEC.name)
    with pytest.raises(ValueError, match=r"deploy\.target"):
        parse_config(data, tmp_path, check_paths=False)


ROOT = Path(__file__).resolve().parents[2]
# What asking "which target is this?" looks like, in Python and in Jinja.
ASKS_THE_TARGET = re.compile(
    r"deploy\.swarm|DeployTarget|is_swarm|swarm_ops"
    r"|\{%-?\s*(?:el)?if\s+(?:not\s+)?swarm\b"
    r"|deploy\.target\s*(?:==|!=|is\b|in\b)"
    r"|\btarget(?:\.name)?\s*(?:==|!=)\s*[\"']"
)


def _outside_the_targets() -> list[Path]:
    found = [*(ROOT / "stackgen").rglob("*.py"), *(ROOT / "compose-templates").rglob("*.j2")]
    return [p for p in found if "targets" not in p.relative_to(ROOT).parts]


@pytest.mark.parametrize(
    "line",
    [
        "if config.deploy.swarm:",
        "{% if not swarm %}",
        'if config.deploy.target == "swarm":',
        "if target.name != 'compose':",
    ],
)
def test_the_search_finds_a_question_to_the_target(line: str) -> None:
    assert ASKS_THE_TARGET.search(line)


def test_nothing_outside_the_targets_asks_which_target_it_drives() -> None:
    files = _outside_the_targets()
    assert any(p.name == "lifecycle.py" for p in files)
    assert any(p.name == "proxy.yml.j2" for p in files)
    asking = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ASKS_THE_TARGET.search(line)
    ]
    assert asking == []
