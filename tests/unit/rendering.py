"""Rendering a stack in memory for the proxies' unit tests: one config builder for all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stackgen.models import StackConfig, parse_config
from stackgen.render import render_stack


def config_for(proxy: str, tmp: Path, **overrides: Any) -> StackConfig:
    data: dict[str, Any] = {
        "proxy": proxy,
        "domain": "jellyfin.example.com",
        "email": "admin@example.com",
        "run_as": "1000:1000",
        **overrides,
    }
    return parse_config(data, tmp, check_paths=False)


def rendered(config: StackConfig, tmp: Path) -> dict[str, str]:
    """Every rendered file of the stack, by path, as text."""
    files, _ = render_stack(config, tmp)
    return {f.path: f.content.decode() for f in files}
