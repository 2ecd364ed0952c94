"""The CI recipes in docs/ci/ are valid for their CI (vendored schemas, no network) and only
use stackgen commands and options that exist."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from stackgen.cli import app

REPO = Path(__file__).resolve().parents[2]
RECIPES = {
    "github-actions.yml": "vendor.github-workflows",
    "gitlab-ci.yml": "vendor.gitlab-ci",
}
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _check(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    # --builtin-schema: the schema shipped inside check-jsonschema, never downloaded.
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(("name", "schema"), RECIPES.items())
def test_recipe_matches_its_ci_schema(name: str, schema: str) -> None:
    result = _check(REPO / "docs/ci" / name, schema)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "schema"), RECIPES.items())
def test_the_schema_check_rejects_a_broken_recipe(name: str, schema: str, tmp_path: Path) -> None:
    broken = tmp_path / name
    text = (REPO / "docs/ci" / name).read_text()
    broken.write_text(text.replace("timeout", "time-out", 1))  # a key neither CI knows
    assert _check(broken, schema).returncode == 1


def _shell_lines(node: object) -> list[str]:
    """Every shell command in a workflow (`run:`) or job (`script:` and friends)."""
    lines: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("run", "script", "before_script", "after_script"):
                items = value if isinstance(value, list) else [value]
                lines += [line for item in items for line in str(item).splitlines()]
            else:
                lines += _shell_lines(value)
    elif isinstance(node, list):
        for item in node:
            lines += _shell_lines(item)
    return [line.strip() for line in lines if line.strip()]


def _stackgen_commands(name: str) -> list[list[str]]:
    document = YAML(typ="safe").load((REPO / "docs/ci" / name).read_text())
    commands = []
    for line in _shell_lines(document):
        words = shlex.split(line.split("||")[0])
        if words and words[0].endswith("stackgen"):
            commands.append(words[1:])
    return commands


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_runs_init_up_verify_junit_and_the_plugin(name: str) -> None:
    commands = _stackgen_commands(name)
    verbs = [c[0] for c in commands]
    assert verbs[:3] == ["init", "up", "verify"], verbs
    assert "--junit" in next(c for c in commands if c[0] == "verify")
    text = (REPO / "docs/ci" / name).read_text()
    assert re.search(r"pytest -n 2 .*junit", text)
    assert "pip install stackgen " in text
    assert "index-url" not in text and "://" not in text.replace("tcp://", "")


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_commands_and_options_exist(name: str, tmp_path: Path) -> None:
    runner = CliRunner()
    for words in _stackgen_commands(name):
        if words[0] == "init":
            # The recipe's own init, for real (no Docker needed), into a scratch folder.
            args = [tmp_path / "stack" if w == "stack" else w for w in words]
            result = runner.invoke(app, [str(a) for a in args])
            assert result.exit_code == 0, result.output
            assert (tmp_path / "stack/stackgen.toml").is_file()
            continue
        shown = runner.invoke(app, [words[0], "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        for option in (w for w in words if w.startswith("--")):
            assert option in shown.output, f"stackgen {words[0]} has no {option}"
