"""Golden files of the rendered output for the matrix of options (layout: `goldens.py`).

Update them after an intended change with `make golden` (STACKGEN_UPDATE_GOLDEN=1, refused
under CI=true) and review the diff like any other code change: each distinct output of a
template is one file, so a template edit shows each of its outputs changing once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.unit.goldens import (
    GOLDEN,
    GoldenUpdateRefused,
    cases,
    environment_update,
    golden_tree,
    on_disk,
    render_matrix,
    update_requested,
    write_tree,
)

UPDATE = environment_update()
CASE_NAMES = [case.name for case in cases()]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    return render_matrix(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def tree(rendered: dict[str, dict[str, bytes]]) -> dict[str, bytes]:
    built = golden_tree(rendered)
    if UPDATE:
        write_tree(built)
    return built


def test_golden_tree_is_the_rendered_matrix(tree: dict[str, bytes]) -> None:
    """Every golden file is what the matrix renders, and no stale file is left."""
    found = on_disk()
    assert found, "no golden files: run `make golden`"
    assert sorted(found) == sorted(tree), "golden files differ in name: run `make golden`"
    changed = [path for path, content in tree.items() if found[path] != content]
    assert not changed, f"golden files differ: {changed[:10]}"


@pytest.mark.parametrize("case", CASE_NAMES)
def test_golden(case: str, tree: dict[str, bytes], rendered: dict[str, dict[str, bytes]]) -> None:
    """Each file a case renders equals the snapshot its index entry names."""
    index = tomllib.loads((GOLDEN / "index.toml").read_text())["cases"]
    assert case in index, f"{case}: not in tests/golden/index.toml: run `make golden`"
    files = rendered[case]
    assert sorted(files) == sorted(index[case])
    for path, content in files.items():
        snapshot = GOLDEN / "files" / path / index[case][path]
        assert content.decode() == snapshot.read_text(), f"{case}: {path} differs from {snapshot}"


def test_no_two_golden_files_are_identical() -> None:
    by_digest: dict[str, list[str]] = {}
    for path, content in on_disk().items():
        by_digest.setdefault(hashlib.sha256(content).hexdigest(), []).append(path)
    duplicates = [paths for paths in by_digest.values() if len(paths) > 1]
    assert not duplicates, duplicates


def test_every_case_and_file_is_indexed(rendered: dict[str, dict[str, bytes]]) -> None:
    """The index covers the whole matrix: each case, each file it renders, and each snapshot
    it names exists (so no case is checked against nothing)."""
    index = tomllib.loads((GOLDEN / "index.toml").read_text())
    assert sorted(index["cases"]) == sorted(CASE_NAMES)
    for case, files in index["cases"].items():
        for path, variant in files.items():
            assert (GOLDEN / "files" / path / variant).is_file(), (case, path, variant)
    assert set(index["reads"]) == {p for files in rendered.values() for p in files}


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_update_is_refused_under_ci(ci: str) -> None:
    with pytest.raises(GoldenUpdateRefused, match="refused under CI=true"):
        update_requested({"CI": ci, "STACKGEN_UPDATE_GOLDEN": "1"})
    assert update_requested({"STACKGEN_UPDATE_GOLDEN": "1"}) is True
    assert update_requested({"CI": ci}) is False


def test_make_golden_under_ci_fails_and_writes_nothing(tmp_path: Path) -> None:
    before = on_disk()
    env = {**os.environ, "CI": "true", "STACKGEN_UPDATE_GOLDEN": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
         str(Path(__file__))],
        capture_output=True, text=True, env=env, cwd=GOLDEN.parent.parent, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "refused under CI=true" in result.stdout + result.stderr
    assert on_disk() == before
