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
