"""The README's exit-code table is the ExitCode enum, row for row."""

from __future__ import annotations

import re
from pathlib import Path

from stackgen.errors import ExitCode

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_lists_every_exit_code_once() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Exit codes") :]
    section = section[: section.index("\n## ", 1)]
    rows = [int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)]
    assert rows == sorted({int(code) for code in ExitCode})
    assert text.count("## Exit codes") == 1
