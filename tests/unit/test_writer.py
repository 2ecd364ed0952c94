"""The one writer: classification, modes, hand edits, and all-or-nothing writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stackgen import writer
from stackgen.errors import FilesystemError
from stackgen.writer import Action, PlannedFile


def _apply(root: Path, *files: PlannedFile, force: bool = False) -> writer.Plan:
    plan = writer.plan(root, files, force=force)
    writer.apply(plan)
    return plan


def _actions(plan: writer.Plan) -> dict[str, Action]:
    return {v.file.path: v.action for v in plan.verdicts}


def test_create_identical_update(tmp_path: Path) -> None:
    plan = _apply(tmp_path, PlannedFile("a/b.txt", b"one\n"))
    assert _actions(plan) == {"a/b.txt": Action.CREATE}
    assert (tmp_path / "a/b.txt").read_bytes() == b"one\n"
    assert _actions(_apply(tmp_path, PlannedFile("a/b.txt", b"one\n"))) == {
        "a/b.txt": Action.IDENTICAL
    }
    plan = _apply(tmp_path, PlannedFile("a/b.txt", b"two\n"))
    assert _actions(plan) == {"a/b.txt": Action.UPDATE}
    assert (tmp_path / "a/b.txt").read_bytes() == b"two\n"


def test_hand_edit_is_kept_unless_forced(tmp_path: Path) -> None:
    _apply(tmp_path, PlannedFile("x.conf", b"generated\n"))
    (tmp_path / "x.conf").write_bytes(b"my edit\n")
    plan = _apply(tmp_path, PlannedFile("x.conf", b"generated v2\n"))
    assert _actions(plan) == {"x.conf": Action.CONFLICT}
    assert (tmp_path / "x.conf").read_bytes() == b"my edit\n"
    # Still a conflict next time: the manifest keeps what stackgen wrote, not the edit.
    assert _actions(writer.plan(tmp_path, [PlannedFile("x.conf", b"v3\n")])) == {
        "x.conf": Action.CONFLICT
    }
    plan = _apply(tmp_path, PlannedFile("x.conf", b"generated v2\n"), force=True)
    assert _actions(plan) == {"x.conf": Action.FORCE}
    assert (tmp_path / "x.conf").read_bytes() == b"generated v2\n"


def test_unknown_existing_file_is_a_conflict(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yml").write_bytes(b"services: {}\n")
    plan = _apply(tmp_path, PlannedFile("docker-compose.yml", b"new\n"))
    assert _actions(plan) == {"docker-compose.yml": Action.CONFLICT}
    assert (tmp_path / "docker-compose.yml").read_bytes() == b"services: {}\n"


def test_modes_are_explicit_and_drift_is_repaired(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        _apply(tmp_path, PlannedFile("secret", b"s", 0o600), PlannedFile("pub", b"p", 0o644))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pub").stat().st_mode) == 0o644
    (tmp_path / "secret").chmod(0o644)
    plan = _apply(tmp_path, PlannedFile("secret", b"s", 0o600))
    assert plan.verdicts[0].mode_drift
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_state_files_are_created_once(tmp_path: Path) -> None:
    _apply(tmp_path, PlannedFile("acme.json", b"", 0o600, state=True))
    (tmp_path / "acme.json").write_bytes(b'{"certs": 1}')
    plan = _apply(tmp_path, PlannedFile("acme.json", b"", 0o600, state=True), force=True)
    assert _actions(plan) == {"acme.json": Action.KEEP}
    assert (tmp_path / "acme.json").read_bytes() == b'{"certs": 1}'


def test_failure_mid_apply_leaves_the_folder_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply(tmp_path, PlannedFile("a.txt", b"old a\n"), PlannedFile("b.txt", b"old b\n"))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # after a.txt was swapped in, while b.txt is being replaced
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", failing_replace)
    plan = writer.plan(
        tmp_path,
        [
            PlannedFile("a.txt", b"new a\n"),
            PlannedFile("new/d.txt", b"d"),
            PlannedFile("b.txt", b"new b\n"),
        ],
    )
    with pytest.raises(FilesystemError, match="No space left"):
        writer.apply(plan)
    monkeypatch.setattr(writer.os, "replace", real_replace)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
    assert not (tmp_path / "new").exists()


def test_a_file_in_the_way_of_a_folder_fails_before_writing(tmp_path: Path) -> None:
    (tmp_path / "b").write_bytes(b"blocker")
    with pytest.raises(FilesystemError):
        writer.apply(writer.plan(tmp_path, [PlannedFile("a.txt", b"a"), PlannedFile("b/c", b"c")]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_diff_is_unified(tmp_path: Path) -> None:
    _apply(tmp_path, PlannedFile("f", b"a\nb\n"))
    plan = writer.plan(tmp_path, [PlannedFile("f", b"a\nc\n")])
    diff = plan.verdicts[0].diff()
    assert "--- a/f" in diff and "+++ b/f" in diff and "-b" in diff and "+c" in diff
