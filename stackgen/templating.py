"""Jinja rendering with StrictUndefined: a missing variable is an error, never ''."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape

import jinja2

from stackgen import __version__
from stackgen.models import bind_source
from stackgen.parts import Duration
from stackgen.proxies import registry
from stackgen.targets import registry as targets

HEALTHCHECK_INTERVAL: Final = "2s"


def templates_dir() -> Path:
    """Inside the wheel the templates ship as stackgen/compose-templates; in a checkout they
    stay at the top level of the repository."""
    packaged = Path(__file__).parent / "compose-templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "compose-templates"


class _Loader(jinja2.BaseLoader):
    """compose-templates/, except `proxies/<name>/...` of a proxy and `targets/<name>/...` of
    a deploy target that brings its own template folder (one registered from outside
    stackgen)."""

    def __init__(self, root: Path) -> None:
        self._root = jinja2.FileSystemLoader(str(root))

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        top, name, rest = [*template.split("/", 2), "", ""][:3]
        folder = None
        if top == "proxies" and rest:
            folder = registry.template_dir(name)
        elif top == "targets" and rest:
            folder = targets.template_dir(name)
        if folder is not None:
            return jinja2.FileSystemLoader(str(folder)).get_source(environment, rest)
        return self._root.get_source(environment, template)

    def list_templates(self) -> list[str]:
        """The shipped templates (a proxy registered from outside brings its own folder)."""
        return self._root.list_templates()


def _duration(value: Duration, unit: str = "") -> str:
    return value.spelled(unit)


_BINARY_UNITS = {"": 1, "k": 1024, "M": 1024**2, "G": 1024**3}


def _bytes_in(value: int, unit: str = "") -> str:
    """A size in bytes as a whole number of `unit` with its suffix (`65536 | bytes_in("k")`
    gives nginx's `64k`)."""
    factor = _BINARY_UNITS[unit]
    if value % factor:
        raise ValueError(f"{value} bytes is not a whole number of {unit!r}")
    return f"{value // factor}{unit}"


def _each(values: Iterable[object], pattern: str) -> list[str]:
    """`pattern % value` for every value (`versions | each("TLSv%s")`)."""
    return [pattern % (value,) for value in values]


def _quote(value: object) -> str:
    # A JSON string is a valid TOML basic string and a valid YAML double-quoted scalar.
    return json.dumps(str(value))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_Loader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - these are config files, not HTML; XML uses |xml
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = _quote
    env.filters["bind"] = bind_source
    env.filters["duration"] = _duration
    env.filters["each"] = _each
    env.filters["bytes_in"] = _bytes_in
    env.filters["regex"] = re.escape
    env.filters["sh"] = shlex.quote  # a single-quoted POSIX shell word (scripts)
    env.filters["xml"] = lambda value: escape(str(value))
    env.globals["stackgen_version"] = __version__
    # Every service's healthcheck interval. `up` waits for the first check, which engine 20.10
    # runs one interval after start (no start_interval): 10 s made every `up` take 12-15 s.
    # 2 s keeps `up` near 4 s for one exec every 2 s per service (docs/performance.md).
    env.globals["healthcheck_interval"] = HEALTHCHECK_INTERVAL
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
