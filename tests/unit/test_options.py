"""Each setting is declared once, on its model field (stackgen/options.py): the README's
configuration table, `init`'s options and the model cannot drift apart."""

from __future__ import annotations

from pathlib import Path

import typer

from stackgen.cli import INIT_OPTIONS, app
from stackgen.models import StackConfig
from stackgen.options import config_reference, options, unset

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("| field | default | `init` | meaning |")
    return text[start : text.index("\n\n", start) + 1]


def test_the_readme_table_is_the_models() -> None:
    assert _readme_table() == config_reference(), "run: python -m stackgen.options"


def test_every_field_is_declared_as_a_setting() -> None:
    assert unset(StackConfig) == []


def test_every_setting_with_a_flag_is_an_init_option() -> None:
    init = typer.main.get_command(app).commands["init"]  # type: ignore[attr-defined]
    offered = {opt for param in init.params for opt in param.opts}
    flags = {f"--{o.flag}" for o in options(StackConfig) if o.flag and not o.setting.argument}
    assert flags <= offered, flags - offered
    assert "--media-address" in flags  # the swarm target's own setting
    assert [o.key for o in INIT_OPTIONS if o.setting.argument] == ["proxy"]


def test_a_setting_declared_on_the_model_is_an_init_option_end_to_end(tmp_path: Path) -> None:
    """jellyfin.start_seconds: declared once, in the model; init, validation, stackgen.toml
    and the compose file follow."""
    from tests.unit.test_cli import BASE, stackgen

    folder = tmp_path / "stack"
    result = stackgen(*BASE, "--jellyfin-start-seconds", "300", "--dir", str(folder))
    assert result.returncode == 0, result.stderr
    assert "start_seconds = 300" in (folder / "stackgen.toml").read_text()
    assert "      start_period: 300s\n" in (folder / "docker-compose.yml").read_text()
    refused = stackgen(*BASE, "--jellyfin-start-seconds", "5", "--dir", str(tmp_path / "no"))
    assert refused.returncode == 3
    assert "jellyfin.start_seconds: Input should be greater than or equal to 10" in refused.stderr
    assert not (tmp_path / "no").exists()
