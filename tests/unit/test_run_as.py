"""--run-as: the containers' user owns what they read or write, and check says when not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stackgen.errors import ExitCode
from tests.unit.test_cli import stackgen

INTERNAL = [
    "init",
    "traefik",
    "--domain",
    "jellyfin.example.com",
    "--tls",
    "internal",
    "--run-as",
    "1000:1000",
]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")


def _fails(stack: Path) -> tuple[int, list[str]]:
    result = stackgen("check", "--dir", str(stack), "--no-docker", "--json")
    findings = json.loads(result.stdout)["findings"]
    return result.returncode, [f["message"] for f in findings if f["status"] == "fail"]


@root_only
def test_run_as_owns_every_file_and_folder_the_containers_use(tmp_path: Path) -> None:
    """Before: keys stayed root 0600, the proxy could not read them, and check passed."""
    stack = tmp_path / "stack"
    assert stackgen(*INTERNAL, "--dir", str(stack)).returncode == 0
    for name in (
        "docker-compose.yml",
        "traefik",
        "traefik/traefik.toml",
        "tls",
        "tls/privkey.pem",
        "tls/fullchain.pem",
        "jellyfin/config",
        "jellyfin/cache",
        "jellyfin/config/config/network.xml",
    ):
        st = (stack / name).stat()
        assert (st.st_uid, st.st_gid) == (1000, 1000), name
    assert _fails(stack) == (0, [])


@root_only
def test_check_fails_when_run_as_cannot_read_a_key(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    assert stackgen(*INTERNAL, "--dir", str(stack)).returncode == 0
    os.chown(stack / "tls/privkey.pem", 0, 0)
    code, fails = _fails(stack)
    assert code == ExitCode.PROBLEMS_FOUND
    assert any(
        m.startswith("tls/privkey.pem is 0:0 0o600") and "cannot read" in m for m in fails
    ), fails
    # The writer gives it back (running as root), and says nothing is wrong any more.
    assert stackgen("render", "--dir", str(stack)).returncode == 0
    assert _fails(stack) == (0, [])


def test_check_fails_when_a_folder_the_containers_write_is_not_theirs(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    assert stackgen(*INTERNAL[:6], "--dir", str(stack)).returncode == 0
    (stack / "jellyfin/cache").chmod(0o500)
    code, fails = _fails(stack)
    assert code == ExitCode.PROBLEMS_FOUND
    assert any(m.startswith("jellyfin/cache is") and "cannot write in" in m for m in fails), fails
