"""The repository stands on its own: code, tests, templates, docs and generated files never
point at documents, issue numbers or work sessions kept outside it (a fact is restated in
the project's own words in docs/ instead)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("stackgen", "tests", "compose-templates", "docs", "bench")
TOP_FILES = ("README.md", "Makefile", "pyproject.toml")
OUTSIDE = re.compile(
    r"design[ -]card|seed[ -]doc(ument)?\b|\bthe seed's\b|\bissue[ #]*\d+|\bthe issue's\b"
    r"|/work/shared|\.\./shared\b|\bsession \d+",
    re.IGNORECASE,
)
SKIPPED_PARTS = {".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".cache"}


def _text_files() -> list[Path]:
    files = [REPO / name for name in TOP_FILES]
    for top in SCANNED:
        files += [
            p
            for p in (REPO / top).rglob("*")
            if p.is_file()
            and not SKIPPED_PARTS.intersection(p.relative_to(REPO).parts)
            and p != Path(__file__).resolve()  # its examples below
        ]
    return sorted(files)


def test_nothing_points_outside_the_repository() -> None:
    found = []
    for path in _text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a binary file says nothing to a reader
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert found == [], "\n".join(found)


def test_the_pattern_finds_what_it_must() -> None:
    # Spelled in pieces, so that a plain grep of the tree for such references finds none here.
    for line in (
        "see the design " + "card",
        "(issue 9)",
        "Issue #12's goals",
        "as the seed " + "document says",
        "the seed's /socket rule",
        "read ../" + "shared/proxy" + "-facts.md",
    ):
        assert OUTSIDE.search(line), line
    for line in ("certbot issues the certificate", "seed: int = 9", "a TLS session ticket"):
        assert not OUTSIDE.search(line), line
