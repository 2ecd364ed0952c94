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


# --- crash safety ----------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".stackgen" not in p.parts
    }


OLD = (PlannedFile("stackgen.toml", b"old toml\n"), PlannedFile("conf/c.yml", b"old c\n"))
NEW = (
    PlannedFile("stackgen.toml", b"new toml\n"),
    PlannedFile("conf/c.yml", b"new c\n"),
    PlannedFile("conf/d.yml", b"new d\n"),
)


def test_a_replaced_file_never_stops_existing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier writer moved the old file aside first: killed then, the file was gone."""
    _apply(tmp_path, *OLD)
    real_replace = os.replace
    missing: list[str] = []

    def watching_replace(src: str | Path, dst: str | Path) -> None:
        real_replace(src, dst)
        missing.extend(f.path for f in OLD if not (tmp_path / f.path).exists())

    monkeypatch.setattr(writer.os, "replace", watching_replace)
    _apply(tmp_path, *NEW, force=True)
    assert missing == []
    assert _files(tmp_path) == {f.path: f.content for f in NEW}


def _killed_apply(root: Path, files: tuple[PlannedFile, ...], kill_at: int) -> bool:
    """Apply in a child process that dies (no cleanup, like SIGKILL) at the kill_at-th
    rename or fsync. True when the child was killed before it finished."""
    pid = os.fork()
    if pid == 0:  # child
        calls = {"n": 0}
        real_replace, real_fsync = os.replace, os.fsync

        def die_at_n() -> None:
            calls["n"] += 1
            if calls["n"] == kill_at:
                os._exit(9)

        def replace(src: str | Path, dst: str | Path) -> None:
            die_at_n()
            real_replace(src, dst)

        def fsync(fd: int) -> None:
            die_at_n()
            real_fsync(fd)

        writer.os.replace = replace  # type: ignore[assignment]
        writer.os.fsync = fsync  # type: ignore[assignment]
        try:
            writer.apply(writer.plan(root, files, force=True))
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 9


def test_killed_at_every_step_the_next_run_sees_old_or_new(tmp_path: Path) -> None:
    old = {f.path: f.content for f in OLD}
    new = {f.path: f.content for f in NEW}
    outcomes = set()
    for kill_at in range(1, 60):
        root = tmp_path / str(kill_at)
        _apply(root, *OLD)
        killed = _killed_apply(root, NEW, kill_at)
        # Never a missing file, even before the next run.
        assert all((root / path).exists() for path in old)
        note = writer.recover(root)  # what the next command does first
        after = _files(root)
        assert after in (old, new), (kill_at, after)
        assert not [p for p in root.rglob("*") if p.name.endswith(writer.TEMP_SUFFIX)]
        assert not (root / writer.JOURNAL).exists()
        outcomes.add((after == new, note is not None and note.startswith("finished")))
        if not killed:
            break
    # Kills before the commit point leave the old stack, after it the new one.
    assert (False, False) in outcomes and (True, True) in outcomes


def test_temporaries_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    _apply(tmp_path, PlannedFile("conf/a.txt", b"a\n"))
    (tmp_path / "conf/.a.txt.k3y1.stackgen-tmp").write_bytes(b"half")
    (tmp_path / "conf/.a.txt.xyz.stackgen-new").write_bytes(b"half")  # the earlier writer's
    note = writer.recover(tmp_path)
    assert note is not None and note.startswith("removed 2 temporary file(s)")
    assert sorted(p.name for p in (tmp_path / "conf").iterdir()) == ["a.txt"]
    assert writer.recover(tmp_path) is None


def test_a_file_the_earlier_writer_moved_aside_is_put_back(tmp_path: Path) -> None:
    _apply(tmp_path, PlannedFile("stackgen.toml", b"mine\n"))
    os.replace(tmp_path / "stackgen.toml", tmp_path / ".stackgen.toml.stackgen-old")
    writer.recover(tmp_path)
    plan = _apply(tmp_path, PlannedFile("stackgen.toml", b"rendered\n", state=True))
    assert _actions(plan) == {"stackgen.toml": Action.KEEP}
    assert (tmp_path / "stackgen.toml").read_bytes() == b"mine\n"


def test_a_garbled_manifest_keeps_differing_files_and_says_so(tmp_path: Path) -> None:
    _apply(tmp_path, PlannedFile("a", b"a1\n"), PlannedFile("b", b"b1\n"))
    (tmp_path / writer.MANIFEST).write_text("{not json")
    plan = writer.plan(tmp_path, [PlannedFile("a", b"a1\n"), PlannedFile("b", b"b2\n")])
    assert _actions(plan) == {"a": Action.IDENTICAL, "b": Action.CONFLICT}
    assert len(plan.warnings) == 1 and "manifest.json" in plan.warnings[0]
    assert "--force" in plan.warnings[0] and "\n" not in plan.warnings[0]
    writer.apply(plan)
    assert (tmp_path / "b").read_bytes() == b"b1\n"
    assert writer.read_manifest(tmp_path) == {"a": writer.sha256(b"a1\n")}


def test_a_garbled_journal_says_how_to_recover(tmp_path: Path) -> None:
    _apply(tmp_path, PlannedFile("a", b"a1\n"))
    (tmp_path / writer.JOURNAL).write_text("garbage")
    with pytest.raises(FilesystemError, match=r"delete it, then run `stackgen render --force`"):
        writer.recover(tmp_path)
    with pytest.raises(FilesystemError, match="interrupted write is pending"):
        writer.apply(writer.plan(tmp_path, [PlannedFile("a", b"a2\n")]))


def test_disk_full_during_the_manifest_rolls_back_from_the_backups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply(tmp_path, *OLD)
    before = _files(tmp_path)
    real_stage = writer._stage

    def stage(target: Path, content: bytes, mode: int, owner: tuple[int, int] | None) -> Path:
        if target.name == "manifest.json":
            raise OSError(28, "No space left on device")
        return real_stage(target, content, mode, owner)

    monkeypatch.setattr(writer, "_stage", stage)
    with pytest.raises(FilesystemError, match="No space left"):
        writer.apply(writer.plan(tmp_path, NEW, force=True))
    assert _files(tmp_path) == before
    assert not list(tmp_path.rglob(f"*{writer.TEMP_SUFFIX}"))
    assert not (tmp_path / writer.JOURNAL).exists()


def test_when_even_the_undo_fails_the_journal_lets_the_next_run_end_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _apply(tmp_path, *OLD)
    real_stage, real_replace = writer._stage, os.replace

    def stage(target: Path, content: bytes, mode: int, owner: tuple[int, int] | None) -> Path:
        if target.name == "manifest.json":
            raise OSError(28, "No space left on device")
        return real_stage(target, content, mode, owner)

    def replace(src: str | Path, dst: str | Path) -> None:
        if ".old" in Path(src).name:  # putting a backup back
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(writer, "_stage", stage)
    monkeypatch.setattr(writer.os, "replace", replace)
    with pytest.raises(FilesystemError, match="the next stackgen command that changes the stack"):
        writer.apply(writer.plan(tmp_path, NEW, force=True))
    monkeypatch.undo()
    assert (tmp_path / writer.JOURNAL).exists()
    # The undo had removed the created file before it failed: the next run completes the undo.
    note = writer.recover(tmp_path)
    assert note is not None and note.startswith("rolled back")
    assert _files(tmp_path) == {f.path: f.content for f in OLD}
    assert not list(tmp_path.rglob(f"*{writer.TEMP_SUFFIX}"))
