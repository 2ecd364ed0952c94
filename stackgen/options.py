"""Every `stackgen.toml` setting declared once, on its model field: `Annotated[T, Setting(...)]`
gives it its `init` flag, its help and its README row; its type and validators are the
model's. `stackgen init` is built from this list, the README's configuration table is
generated from it (a test keeps them equal), and a component's table contributes its own
settings (each deploy target's `deploy` table).

Adding a setting is one edit: a field with its `Setting` in the model.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeGuard, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclass(frozen=True)
class Setting:
    """How one setting is offered to a user."""

    help: str  # one line: `init --help` and the README's meaning
    # init's option without "--" (default: the field's name, "_" as "-"); "" for none:
    # the setting is edited in stackgen.toml only.
    flag: str | None = None
    readme: str = ""  # more for the README, after `help`
    default: str | None = None  # the README's default, when it is not the value itself
    # A port: digits only on the command line (Click would read "80.0" as 80).
    port: bool = False
    # init's default when it is not the model's (e.g. your own uid:gid).
    init_default: Callable[[], object] | None = None
    # The positional argument of init, not an option.
    argument: bool = False


@dataclass(frozen=True)
class Option:
    """A setting at its place in stackgen.toml."""

    path: tuple[str, ...]
    setting: Setting
    annotation: Any
    default: Any  # PydanticUndefined when required

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def flag(self) -> str:
        flag = self.setting.flag
        return self.path[-1].replace("_", "-") if flag is None else flag

    @property
    def param(self) -> str:
        return self.flag.replace("-", "_")

    @property
    def required(self) -> bool:
        return self.default is PydanticUndefined

    @property
    def _types(self) -> list[Any]:
        """The field's type and, for `X | None`, X; without their Annotated metadata."""
        found = [self.annotation, *get_args(self.annotation)]
        return [get_args(t)[0] if get_origin(t) is Annotated else t for t in found]

    @property
    def choices(self) -> type[enum.Enum] | None:
        for candidate in self._types:
            if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
                return candidate
        return None

    @property
    def is_list(self) -> bool:
        return any(get_origin(t) is list for t in self._types)

    @property
    def is_bool(self) -> bool:
        return bool in self._types

    @property
    def is_int(self) -> bool:
        return int in self._types and not self.is_bool


def _setting(field: FieldInfo) -> Setting | None:
    return next((m for m in field.metadata if isinstance(m, Setting)), None)


def _is_table(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def options(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[Option]:
    """Every setting of `model` and its tables, in file order. A table whose class has
    `variants()` (the `deploy` table: one class per target) gives its own settings, then
    each variant's."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        annotation = field.annotation
        setting = _setting(field)
        # A table with a Setting of its own is one setting (edited in stackgen.toml).
        if _is_table(annotation) and setting is None:
            yield from options(annotation, path)
            variants: Callable[[], list[type[BaseModel]]] | None = getattr(
                annotation, "variants", None
            )
            seen = set(annotation.model_fields)
            for variant in variants() if variants else []:
                for option in options(variant, path):
                    if option.path[-1] not in seen:
                        seen.add(option.path[-1])
                        yield option
            continue
        if setting is not None:
            yield Option(path, setting, annotation, _default(field))


def unset(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[str]:
    """Fields with neither a Setting nor a table of settings (a test keeps this empty)."""
    missing = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if _is_table(annotation) and _setting(field) is None:
            missing += unset(annotation, (*prefix, name))
            variants = getattr(annotation, "variants", None)
            for variant in variants() if variants else []:
                missing += [
                    key
                    for key in unset(variant, (*prefix, name))
                    if key.rpartition(".")[2] not in annotation.model_fields
                ]
        elif _setting(field) is None:
            missing.append(".".join((*prefix, name)))
    return missing


# --- the README's configuration table ------------------------------------------------------


def _spelled(value: Any) -> str:
    if value is None or value is PydanticUndefined:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, list):
        return f"`{value}`" if value else "`[]`"
    if isinstance(value, str) and not value:
        return '`""`'
    if isinstance(value, str | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return f"`{value}`"
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return f"`{value}`"
    return f"`{value}`"


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] if text[0].islower() else text


def readme_row(option: Option) -> str:
    setting = option.setting
    default = setting.default if setting.default is not None else _spelled(option.default)
    if setting.argument:
        flag = f"`init {option.flag.upper()}`"
    elif option.flag:
        flag = f"`--{option.flag}`"
    else:
        flag = ""
    meaning = ". ".join(_sentence(part) for part in (setting.help, setting.readme) if part)
    return f"| `{option.key}` | {default} | {flag} | {meaning} |"


README_HEADER = "| field | default | `init` | meaning |\n|---|---|---|---|"


def readme_table(model: type[BaseModel], extra: list[str] | None = None) -> str:
    rows = [readme_row(option) for option in options(model)]
    return "\n".join([README_HEADER, *rows, *(extra or [])]) + "\n"


def config_reference() -> str:
    """The README's configuration table, from the model (`python -m stackgen.options`)."""
    from stackgen.models import StackConfig
    from stackgen.proxies import registry

    names = ", ".join(f"`{name}`" for name in registry.default_images())
    images = (
        "| `images.*` | official images, pinned | `--image SERVICE=IMAGE` | one image per "
        f"proxy and per service beside it: {names} |"
    )
    return readme_table(StackConfig, extra=[images])


if __name__ == "__main__":
    # Run as a script this module is `__main__`: the model's settings are the package's.
    from stackgen.options import config_reference as reference

    print(reference(), end="")
