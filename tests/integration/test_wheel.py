"""The wheel, installed into a fresh virtual environment, renders a valid stack from an
empty folder: templates ship inside it, and nothing depends on the checkout."""

from __future__ import annotations

import stat
import subprocess
import sys
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

from integration.conftest import REPO


def test_wheel_in_a_fresh_venv_renders_a_valid_stack(engine: None, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("stackgen-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    subprocess.run(
        [str(env_dir / "bin/python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [
            str(env_dir / "bin/stackgen"),
            "init",
            "traefik",
            "--domain",
            "jellyfin.example.com",
            "--email",
            "admin@example.com",
        ],
        cwd=empty,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for name in (
        "stackgen.toml",
        "docker-compose.yml",
        "traefik/traefik.toml",
        "traefik/dynamic.toml",
        "traefik/acme.json",
        "jellyfin/config/config/network.xml",
    ):
        assert (empty / name).is_file(), name
    assert stat.S_IMODE((empty / "traefik/acme.json").stat().st_mode) == 0o600
    root = ET.parse(empty / "jellyfin/config/config/network.xml").getroot()
    assert [e.text for e in root.findall("./KnownProxies/string")] == ["172.30.77.2"]
    config = subprocess.run(
        ["docker", "compose", "config", "--quiet"],
        cwd=empty,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert config.returncode == 0, config.stderr
    check = subprocess.run(
        [str(env_dir / "bin/stackgen"), "check"],
        cwd=empty,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
