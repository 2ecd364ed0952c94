"""Jinja rendering with StrictUndefined: a missing variable is an error, never ''."""

from __future__ import annotations

import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import jinja2

from stackgen import __version__
from stackgen.models import bind_source


def templates_dir() -> Path:
    """Inside the wheel the templates ship as stackgen/compose-templates; in a checkout they
    stay at the top level (design card)."""
    packaged = Path(__file__).parent / "compose-templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "compose-templates"


def _quote(value: object) -> str:
    # A JSON string is a valid TOML basic string and a valid YAML double-quoted scalar.
    return json.dumps(str(value))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - these are config files, not HTML; XML uses |xml
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = _quote
    env.filters["bind"] = bind_source
    env.filters["regex"] = re.escape
    env.filters["sh"] = shlex.quote  # a single-quoted POSIX shell word (scripts)
    env.filters["xml"] = lambda value: escape(str(value))
    env.globals["stackgen_version"] = __version__
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
