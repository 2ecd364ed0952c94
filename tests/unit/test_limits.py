"""Every service has a memory and a process limit (a fork bomb or a leak in one container
does not take the host down), with fields to change them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from stackgen.proxies import available
from tests.unit.rendering import config_for, rendered


def _services(proxy: str, tmp_path: Path, **overrides: object) -> dict[str, dict[str, object]]:
    config = config_for(proxy, tmp_path, **overrides)
    compose = yaml.safe_load(rendered(config, tmp_path)["docker-compose.yml"])
    services: dict[str, dict[str, object]] = compose["services"]
    return services


@pytest.mark.parametrize("proxy", available())
@pytest.mark.parametrize("tls", ["acme", "internal"])
def test_every_service_has_memory_and_pids_limits(proxy: str, tls: str, tmp_path: Path) -> None:
    """Before: no service had a memory or process limit."""
    services = _services(proxy, tmp_path, tls={"mode": tls})
    assert len(services) >= 2
    for name, service in services.items():
        assert service.get("mem_limit"), name
        assert isinstance(service.get("pids_limit"), int), name


def test_limits_are_fields(tmp_path: Path) -> None:
    services = _services(
        "nginx",
        tmp_path,
        limits={
            "proxy": {"memory": "300m", "pids": 200},
            "jellyfin": {"memory": "8g", "pids": 4096},
            "certbot": {"memory": "128m", "pids": 64},
        },
    )
    assert (services["nginx"]["mem_limit"], services["nginx"]["pids_limit"]) == ("300m", 200)
    assert (services["jellyfin"]["mem_limit"], services["jellyfin"]["pids_limit"]) == ("8g", 4096)
    assert (services["certbot"]["mem_limit"], services["certbot"]["pids_limit"]) == ("128m", 64)


@pytest.mark.parametrize(
    "limits",
    [
        {"proxy": {"memory": "lots"}},
        {"proxy": {"memory": "1m"}},  # below what any of them starts in
        {"jellyfin": {"pids": 0}},
        {"jellyfin": {"pids": -1}},
        {"certbot": {"pids": "64"}},
        {"proxy": {"memory": "512m\n    privileged: true"}},
        {"nginx": {"memory": "512m"}},
    ],
)
def test_bad_limits_are_refused(limits: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        config_for("nginx", tmp_path, limits=limits)


def test_swarm_services_carry_the_limits_as_resources(tmp_path: Path) -> None:
    config = config_for(
        "caddy",
        tmp_path,
        deploy={"target": "swarm"},
        jellyfin={"network_mode": "bridge"},
        limits={"proxy": {"memory": "300m", "pids": 200}},
    )
    stack = yaml.safe_load(rendered(config, tmp_path)["docker-compose.yml"])
    limits = stack["services"]["caddy"]["deploy"]["resources"]["limits"]
    assert limits == {"memory": "300m", "pids": 200}
    assert stack["services"]["jellyfin"]["deploy"]["resources"]["limits"]["memory"]
