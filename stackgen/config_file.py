"""Reading and writing `stackgen.toml`, with errors that name the field or line."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Final

import tomlkit
from pydantic import ValidationError

from stackgen import inputs
from stackgen.errors import FilesystemError, InvalidInputError
from stackgen.models import StackConfig, parse_config

CONFIG_NAME: Final = "stackgen.toml"

_HEADER = """\
stackgen.toml - the single source of truth for this stack.
Edit it, then run `stackgen render` (or `stackgen reload` on a running stack).
Every field is documented in stackgen's README ("Configuration reference").
"""


def describe_validation_error(error: ValidationError) -> str:
    """One line naming the first offending field, plus how many more there are."""
    problems = error.errors()
    first = problems[0]
    location = ".".join(str(part) for part in first["loc"]) or "stackgen.toml"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "missing":
        message = "field required"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{location}: {message}{more}"


def build_config(data: dict[str, Any], base_dir: Path, *, check_paths: bool = True) -> StackConfig:
    try:
        return parse_config(data, base_dir, check_paths=check_paths)
    except ValidationError as error:
        raise InvalidInputError(describe_validation_error(error)) from None


def load_config(stack_dir: Path, *, check_paths: bool = True) -> StackConfig:
    path = stack_dir / CONFIG_NAME
    if stack_dir.exists() and not stack_dir.is_dir():
        raise FilesystemError(f"{stack_dir} is not a folder")
    if not path.exists():
        raise FilesystemError(f"no {CONFIG_NAME} in {stack_dir} (run `stackgen init` first)")
    raw = inputs.read_bytes(path, unreadable=FilesystemError)
    try:
        with inputs.bounded_nesting(path, "stackgen's TOML configuration"):
            data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise InvalidInputError(f"{path}: {error}") from None
    except UnicodeDecodeError as error:
        raise FilesystemError(f"cannot read {path}: {error}") from None
    try:
        return parse_config(data, stack_dir, check_paths=check_paths)
    except ValidationError as error:
        raise InvalidInputError(f"{path}: {describe_validation_error(error)}") from None


def dump_config(config: StackConfig) -> str:
    """The full configuration, every default spelled out, so the file documents itself."""
    data = config.model_dump(mode="json", exclude_none=True)
    document = tomlkit.document()
    for line in _HEADER.splitlines():
        document.add(tomlkit.comment(line))
    document.add(tomlkit.nl())
    tables = {key: value for key, value in data.items() if isinstance(value, dict)}
    for key, value in data.items():
        if key not in tables:
            document.add(key, value)
    for key, value in tables.items():
        table = tomlkit.table()
        for sub_key, sub_value in value.items():
            if isinstance(sub_value, list) and sub_value and isinstance(sub_value[0], dict):
                array = tomlkit.aot()
                for item in sub_value:
                    array.append(tomlkit.item(item))
                table.add(sub_key, array)
            else:
                table.add(sub_key, sub_value)
        document.add(tomlkit.nl())
        document.add(key, table)
    return tomlkit.dumps(document)
