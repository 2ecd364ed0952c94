"""A container owns the folders it writes (Jellyfin's /config): it can plant a symbolic link
there. stackgen's writes must never pass through one, and must say which path was a link."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen import writer
from stackgen.errors import ExitCode, FilesystemError
from tests.unit.test_cli import stackgen

INIT = ["init", "nginx", "--domain", "jellyfin.example.com", "--tls", "internal"]


def _stack(tmp_path: Path) -> Path:
    stack = tmp_path / "stack"
    result = stackgen(*INIT, "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    return stack


def test_render_refuses_a_folder_a_container_replaced_by_a_link(tmp_path: Path) -> None:
    """Before: `render` followed jellyfin/config/config -> elsewhere and wrote network.xml
    (as root) outside the stack."""
    stack = _stack(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = stack / "jellyfin/config/config"
    (planted / "network.xml").unlink()
    planted.rmdir()
    planted.symlink_to(outside)
    result = stackgen("render", "--dir", str(stack))
    assert result.returncode == ExitCode.FILESYSTEM, result.stderr
    assert "jellyfin/config/config is a symbolic link" in result.stderr
    assert list(outside.iterdir()) == []


def test_render_refuses_a_file_replaced_by_a_link(tmp_path: Path) -> None:
    """A link in the file's place is neither read (its target would reach `--diff`) nor
    replaced."""
    stack = _stack(tmp_path)
    secret = tmp_path / "shadow"
    secret.write_text("root:SECRET-HASH:19000::::::\n")
    target = stack / "jellyfin/config/config/network.xml"
    target.unlink()
    target.symlink_to(secret)
    for command in (["render", "--diff"], ["render", "--force"], ["check", "--no-docker"]):
        result = stackgen(*command, "--dir", str(stack))
        assert "SECRET-HASH" not in result.stdout + result.stderr, command
        assert "network.xml is a symbolic link" in result.stdout + result.stderr, command
        assert result.returncode != 0, command
    assert secret.read_text() == "root:SECRET-HASH:19000::::::\n"
    assert target.is_symlink()


def test_a_planned_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = stack / "jellyfin/cache"
    cache.rmdir()
    cache.symlink_to(outside)
    result = stackgen("render", "--dir", str(stack))
    assert result.returncode == ExitCode.FILESYSTEM
    assert "jellyfin/cache is a symbolic link" in result.stderr


def test_writer_refuses_a_link_among_parents(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    (tmp_path / "elsewhere").mkdir()
    stack.mkdir()
    (stack / "conf").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FilesystemError, match=r"conf is a symbolic link"):
        writer.apply(writer.plan(stack, [writer.PlannedFile("conf/deep/file.txt", b"x\n")]))
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_stack_folder_reached_through_a_link_is_fine(tmp_path: Path) -> None:
    """The user's own path to the stack may pass through links (/srv -> /data/srv): only
    what lies inside the stack folder is checked."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    result = stackgen(*INIT, "--dir", str(tmp_path / "alias" / "stack"))
    assert result.returncode == 0, result.stderr
    assert (real / "stack/docker-compose.yml").is_file()
