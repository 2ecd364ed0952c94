"""A sixth proxy from a package outside stackgen (tests/fixtures/toyproxy: its module and its
template folder) renders a whole stack, with no edit to any stackgen module: the registry
lists it, the model accepts its name and gives it an image field with its default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stackgen.certificates.certbot import LAYOUT
from stackgen.models import parse_config
from stackgen.proxies import available, get_proxy, registry
from tests.fixtures.toyproxy import SPEC
from tests.unit.rendering import config_for, rendered


@pytest.fixture
def toy() -> Iterator[None]:
    registry.register(SPEC)
    try:
        yield
    finally:
        registry.unregister(SPEC.name)


def test_unknown_until_registered(tmp_path: Path) -> None:
    assert "toy" not in available()
    with pytest.raises(ValueError, match="Input should be 'traefik'"):
        config_for("toy", tmp_path)


@pytest.mark.usefixtures("toy")
def test_registered_proxy_renders_a_stack(tmp_path: Path) -> None:
    assert available()[-1] == "toy"
    config = config_for("toy", tmp_path, subpath="/jellyfin")
    assert config.images.of("toy") == "toyproxy:1.0"
    files = rendered(config, tmp_path)

    conf = files["toy/toy.conf"]
    assert f"cert={LAYOUT.fullchain} key={LAYOUT.privkey}" in conf
    assert f"acme-webroot {LAYOUT.webroot_path}" in conf
    assert "upstream http://host.docker.internal:8096/jellyfin" in conf
    assert "timeout 120m" in conf
    assert 'hsts "max-age=63072000; includeSubDomains"' in conf

    compose = files["docker-compose.yml"]
    assert '  toy:\n    image: "toyproxy:1.0"' in compose
    # The shared hardening of every proxy service comes from the base compose template.
    assert "    read_only: true\n" in compose and "    cap_drop:\n      - ALL\n" in compose
    assert "    mem_limit: " in compose and "    pids_limit: " in compose
    assert '"toyd", "--health", "127.0.0.1:8082"' in compose
    # The certbot source composes with it like with a built-in proxy: its service, its
    # scripts, and the proxy's command wrapped by the watcher.
    assert "\n  certbot:\n" in compose
    watcher = "/etc/toy/watch-files.sh"
    assert f'"sh"\n      - "{watcher}"\n      - "toyd --reload"' in compose
    assert {"certbot/run.sh", "certbot/deploy-hook.sh", "toy/watch-files.sh"} <= set(files)
    assert "jellyfin/config/config/network.xml" in files


@pytest.mark.usefixtures("toy")
def test_registered_proxy_gets_an_image_override_and_the_mounted_pair(tmp_path: Path) -> None:
    config = parse_config(
        {
            "proxy": "toy",
            "domain": "jellyfin.example.com",
            "tls": {"mode": "internal"},
            "images": {"toy": "registry.example/toy:2"},
        },
        tmp_path,
        check_paths=False,
    )
    files = rendered(config, tmp_path)
    assert 'image: "registry.example/toy:2"' in files["docker-compose.yml"]
    assert f'"./tls/fullchain.pem:{LAYOUT.fullchain}:ro"' in files["docker-compose.yml"]
    assert "certbot:" not in files["docker-compose.yml"]
    assert "tls/ca.pem" in files
    assert get_proxy("toy").needs_restart(config, {"toy/toy.conf"}) is False
