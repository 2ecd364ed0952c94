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


CONTROL = (
    "stackgen.toml",
    "docker-compose.yml",
    ".stackgen",
    ".stackgen/manifest.json",
    "traefik",
    "traefik/traefik.toml",
    "ban",
    "traefik/dynamic.toml",
    "ban/deny.toml",
    "tls",
    "tls/ca-key.pem",
    "tls/ca.pem",
    "tls/fullchain.pem",
    "jellyfin",
)
WRITTEN = ("jellyfin/config", "jellyfin/cache", "jellyfin/config/config/network.xml")


def _owner(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, st.st_mode & 0o777


@root_only
def test_run_as_owns_only_what_the_containers_write(tmp_path: Path) -> None:
    """Before: uid 1000 was given docker-compose.yml, stackgen.toml, .stackgen/ and the CA
    key; it could edit the compose file root's next `up` starts."""
    stack = tmp_path / "stack"
    assert stackgen(*INTERNAL, "--dir", str(stack)).returncode == 0
    for name in CONTROL:
        assert _owner(stack / name)[:2] == (0, 0), name
    assert _owner(stack / "tls/ca-key.pem") == (0, 0, 0o600)
    # The served key: the proxy reads it through its group, and cannot change it.
    assert _owner(stack / "tls/privkey.pem") == (0, 1000, 0o640)
    for name in WRITTEN:
        assert _owner(stack / name)[:2] == (1000, 1000), name
    assert _fails(stack) == (0, [])


@root_only
def test_render_takes_back_control_files_an_earlier_version_gave_away(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    assert stackgen(*INTERNAL, "--dir", str(stack)).returncode == 0
    for name in CONTROL:
        os.lchown(stack / name, 1000, 1000)
    code, fails = _fails(stack)
    assert code == ExitCode.PROBLEMS_FOUND
    for name in ("stackgen.toml", "docker-compose.yml", "tls/ca-key.pem", ".stackgen"):
        assert any(m.startswith(f"{name} is 1000:1000") and "can change it" in m for m in fails), (
            name,
            fails,
        )
    assert stackgen("render", "--dir", str(stack)).returncode == 0
    for name in CONTROL:
        assert _owner(stack / name)[:2] == (0, 0), name
    assert _fails(stack) == (0, [])


@root_only
def test_check_fails_a_control_file_the_containers_group_can_write(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    assert stackgen(*INTERNAL, "--dir", str(stack)).returncode == 0
    os.chown(stack / "docker-compose.yml", 0, 1000)
    (stack / "docker-compose.yml").chmod(0o664)
    os.chown(stack / "tls/ca-key.pem", 0, 1000)
    (stack / "tls/ca-key.pem").chmod(0o640)
    code, fails = _fails(stack)
    assert code == ExitCode.PROBLEMS_FOUND
    assert any(m.startswith("docker-compose.yml is 0:1000 0o664") for m in fails), fails
    assert any(m.startswith("tls/ca-key.pem is 0:1000 0o640") for m in fails), fails


@root_only
def test_root_without_run_as_runs_the_containers_as_a_dedicated_user(tmp_path: Path) -> None:
    """Before: run as root, run_as defaulted to 0:0 and every container ran as root."""
    stack = tmp_path / "stack"
    result = stackgen(*INTERNAL[:6], "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    assert 'run_as = "65532:65532"' in (stack / "stackgen.toml").read_text()
    compose = (stack / "docker-compose.yml").read_text()
    assert compose.count('user: "65532:65532"') == 3, compose  # proxy, Jellyfin, fail2ban
    assert '"0:0"' not in compose
    assert "run as root" not in result.stderr
    assert _owner(stack / "jellyfin/config")[:2] == (65532, 65532)
    assert _owner(stack / "docker-compose.yml")[:2] == (0, 0)


def test_root_only_when_written_and_then_with_a_warning(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    result = stackgen(*INTERNAL[:6], "--run-as", "0:0", "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    assert "containers run as root (run_as 0:0)" in result.stderr
    check = stackgen("check", "--dir", str(stack), "--no-docker", "--json")
    warns = [f["message"] for f in json.loads(check.stdout)["findings"] if f["status"] == "warn"]
    assert any(m.startswith("containers run as root (run_as 0:0)") for m in warns), warns


@root_only
def test_check_fails_when_run_as_cannot_read_a_key(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    assert stackgen(*INTERNAL, "--dir", str(stack)).returncode == 0
    os.chown(stack / "tls/privkey.pem", 0, 0)
    code, fails = _fails(stack)
    assert code == ExitCode.PROBLEMS_FOUND
    assert any(
        m.startswith("tls/privkey.pem is 0:0 0o640") and "cannot read" in m for m in fails
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
