"""The pieces every importer shares: how a folder becomes files, how a text file is scored
for detection, and the report line of a site that is not Jellyfin's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from stackgen.importers import reasons
from stackgen.importers.base import (
    Imported,
    ReportAction,
    TextFileImporter,
    Upstream,
    expand_folders,
    files_in,
    pattern_score,
)
from stackgen.models import ProxyKind


class _Marker(TextFileImporter):
    """Scores a file 1.0 when it holds `MARK`, and remembers what it was asked about."""

    name: ClassVar[str] = "marker"
    kind: ClassVar[ProxyKind] = "nginx"

    def __init__(self) -> None:
        self.scored: list[Path] = []

    def score(self, file: Path, text: str) -> float:
        self.scored.append(file)
        return 1.0 if "MARK" in text else 0.25

    def parse(
        self, paths: Sequence[Path], *, jellyfin_url: Upstream | None, root: Path
    ) -> Imported:
        raise NotImplementedError  # detection only


def test_files_in_lists_files_by_name_without_subfolders(tmp_path: Path) -> None:
    for name in ("b.conf", "a.conf", ".hidden"):
        (tmp_path / name).write_text("x", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.conf").write_text("x", encoding="utf-8")
    assert [p.name for p in files_in(tmp_path)] == [".hidden", "a.conf", "b.conf"]
    assert files_in(tmp_path, lambda p: not p.name.startswith(".")) == [
        tmp_path / "a.conf",
        tmp_path / "b.conf",
    ]


def test_expand_folders_filters_folders_only_and_keeps_the_order_given(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    for name in ("z.cfg", "y.cfg", "notes.txt"):
        (folder / name).write_text("x", encoding="utf-8")
    given = tmp_path / "named.txt"
    given.write_text("x", encoding="utf-8")
    # A file named on its own is kept whatever its name; a folder gives its matching files.
    assert expand_folders([given, folder], lambda p: p.suffix == ".cfg") == [
        given,
        folder / "y.cfg",
        folder / "z.cfg",
    ]
    assert expand_folders([folder]) == [folder / "notes.txt", folder / "y.cfg", folder / "z.cfg"]


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("", 0.0, 0.0),
        ("server {", 0.0, 0.5),
        ("server {\nlisten 80;", 0.0, 0.9),
        ("server {\nlisten 80;", 0.6, 1.0),  # capped
        ("nothing", 0.6, 0.6),
    ],
)
def test_pattern_score_adds_the_weights_found_and_caps_at_one(
    text: str, start: float, expected: float
) -> None:
    score = pattern_score(text, (r"(?m)^server \{", 0.5), (r"listen", 0.4), start=start)
    assert score == pytest.approx(expected)


def test_text_importer_scores_a_folder_as_its_best_file(tmp_path: Path) -> None:
    importer = _Marker()
    (tmp_path / "a.conf").write_text("plain", encoding="utf-8")
    (tmp_path / "b.conf").write_text("MARK", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    assert importer.detect(tmp_path) == 1.0
    assert importer.scored == [tmp_path / "a.conf", tmp_path / "b.conf"]
    assert importer.detect(tmp_path / "a.conf") == 0.25


def test_text_importer_never_raises_on_unreadable_or_empty_input(tmp_path: Path) -> None:
    importer = _Marker()
    assert importer.detect(tmp_path / "missing.conf") == 0.0
    assert importer.detect(tmp_path) == 0.0  # an empty folder
    assert importer.scored == []
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"\xff\xfeMARK")
    assert importer.detect(binary) == 1.0  # undecodable bytes are replaced, not fatal


def test_other_site_is_a_skipped_report_line() -> None:
    imp = Imported("nginx", [])
    imp.add_other_site("site.conf", 7, "server other.example")
    [entry] = imp.report
    assert (entry.source_file, entry.line, entry.directive) == (
        "site.conf",
        7,
        "server other.example",
    )
    assert entry.action is ReportAction.SKIPPED
    assert entry.reason == f"another site ({reasons.NOT_JELLYFIN})"
