"""What crosses machines on the swarm target is encrypted, or refused with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from stackgen import exposure
from stackgen.stack import Stack
from stackgen.stack_checks import check_stack
from tests.unit.rendering import config_for, rendered
from tests.unit.test_cli import stackgen

HOST: dict[str, Any] = {
    "jellyfin": {"network_mode": "host"},
    "deploy": {"target": "swarm", "media_address": "192.0.2.10"},
}


def test_the_overlay_is_encrypted_and_not_attachable(tmp_path: Path) -> None:
    """Before: the overlay was attachable and carried proxy-Jellyfin traffic in clear."""
    config = config_for(
        "nginx", tmp_path, deploy={"target": "swarm"}, jellyfin={"network_mode": "bridge"}
    )
    stack = yaml.safe_load(rendered(config, tmp_path)["docker-compose.yml"])
    network = stack["networks"]["proxy"]
    assert network["driver_opts"] == {"encrypted": ""}
    assert network["attachable"] is False


def test_host_network_jellyfin_on_a_media_node_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    """Before: the proxy talked plain HTTP to the media node across the LAN, silently."""
    with pytest.raises(ValidationError, match="plain HTTP") as error:
        config_for("nginx", tmp_path, **HOST)
    assert "allow_plain_media_link" in str(error.value)
    folder = tmp_path / "stack"
    result = stackgen(
        *("init", "nginx", "--domain", "jellyfin.example.com", "--email", "a@example.com"),
        *("--target", "swarm", "--media-address", "192.0.2.10", "--dir", str(folder)),
    )
    assert result.returncode == 3
    assert "plain HTTP" in result.stderr
    assert not folder.exists()


def test_the_plain_link_only_when_asked_and_then_said(tmp_path: Path) -> None:
    folder = tmp_path / "stack"
    result = stackgen(
        *("init", "nginx", "--domain", "jellyfin.example.com", "--email", "a@example.com"),
        *("--target", "swarm", "--media-address", "192.0.2.10", "--allow-plain-media-link"),
        *("--dir", str(folder)),
    )
    assert result.returncode == 0, result.stderr
    assert "plain HTTP" in result.stderr
    warns = [
        f.message
        for f in check_stack(Stack.load(folder), use_docker=False)
        if f.check == "exposure"
    ]
    assert any("192.0.2.10" in w and "plain HTTP" in w for w in warns), warns


def test_the_default_host_network_jellyfin_is_named_with_the_fix(tmp_path: Path) -> None:
    """Before: Jellyfin's own plain-HTTP port on every interface went unmentioned."""
    folder = tmp_path / "stack"
    result = stackgen(
        *("init", "nginx", "--domain", "jellyfin.example.com", "--email", "a@example.com"),
        *("--dir", str(folder)),
    )
    assert result.returncode == 0
    assert "serves plain HTTP on port 8096 on every interface" in result.stderr
    assert "--jellyfin-network bridge" in result.stderr
    warns = [
        f.message
        for f in check_stack(Stack.load(folder), use_docker=False)
        if f.check == "exposure"
    ]
    assert any("port 8096 on every interface" in w for w in warns), warns
    bridged = tmp_path / "bridged"
    quiet = stackgen(
        *("init", "nginx", "--domain", "jellyfin.example.com", "--email", "a@example.com"),
        *("--jellyfin-network", "bridge", "--dir", str(bridged)),
    )
    assert "plain HTTP" not in quiet.stderr


def test_an_overlay_in_clear_only_when_asked_and_then_said(tmp_path: Path) -> None:
    config = config_for(
        "nginx",
        tmp_path,
        deploy={"target": "swarm", "encrypt_overlay": False},
        jellyfin={"network_mode": "bridge"},
    )
    stack = yaml.safe_load(rendered(config, tmp_path)["docker-compose.yml"])
    assert "driver_opts" not in stack["networks"]["proxy"]
    assert any("not encrypted" in w for w in exposure.warnings(config))
    with pytest.raises(ValidationError, match="swarm' only"):
        config_for("nginx", tmp_path, deploy={"encrypt_overlay": False})
