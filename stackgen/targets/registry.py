"""The list of deploy targets: every package under `stackgen/targets/` that declares a
`SPEC`, plus any registered at run time (a plugin, a test's fixture).

Imports no configuration model and no engine: each part of a target is imported on first
use, by the layer that needs it (the model its `deploy` table, render its stack file, the
operations its `Target`).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path
from typing import Any

from stackgen.errors import InvalidInputError
from stackgen.targets.spec import TargetSpec

_registered: dict[str, TargetSpec] = {}
_loaded: dict[tuple[str, str], Any] = {}


@cache
def _builtin() -> tuple[TargetSpec, ...]:
    package = importlib.import_module("stackgen.targets")
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"stackgen.targets.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, TargetSpec):
            found.append(spec)
    return tuple(found)


def specs() -> list[TargetSpec]:
    found = {spec.name: spec for spec in _builtin()} | _registered
    return sorted(found.values(), key=lambda spec: (spec.rank, spec.name))


def available() -> list[str]:
    return [spec.name for spec in specs()]


def default() -> str:
    return available()[0]


def spec(name: str) -> TargetSpec:
    for candidate in specs():
        if candidate.name == name:
            return candidate
    raise InvalidInputError(f"unknown deploy target {name!r} (available: {', '.join(available())})")


def register(new: TargetSpec) -> None:
    """Add a target that does not live in `stackgen/targets/` (or replace one, by name)."""
    _registered[new.name] = new
    for key in [key for key in _loaded if key[0] == new.name]:
        del _loaded[key]


def unregister(name: str) -> None:
    _registered.pop(name, None)
    for key in [key for key in _loaded if key[0] == name]:
        del _loaded[key]


def load(name: str, part: str) -> Any:
    """One part of a target ("config", "stack_file" or "operations"): a class for the
    config, an instance for the others."""
    found = spec(name)
    key = (found.name, part)
    if key not in _loaded:
        module_name, _, attribute = str(getattr(found, part)).partition(":")
        loaded = getattr(importlib.import_module(module_name), attribute)
        _loaded[key] = loaded if part == "config" else loaded()
    return _loaded[key]


def template_dir(name: str) -> Path | None:
    """The template folder of a target that brings its own (None: compose-templates/)."""
    found = {spec.name: spec for spec in specs()}.get(name)
    return found.template_dir if found else None
