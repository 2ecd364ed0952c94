"""The stack's `.env` as Docker Compose reads it (its dotenv rules), and written so that
Compose reads each value literally.

Compose expands `$NAME` and `${NAME}` in an unquoted or double-quoted value, cuts an unquoted
value at ` #` (a comment), and processes backslash escapes between double quotes; between
single quotes it takes every character as it is. So stackgen writes `NAME='value'`, refuses a
value holding a single quote or a line break (no quoting carries those literally), and
`check` judges the value Compose will really pass, not the text of the line. The swarm target has
no `.env`: its credentials are Swarm secrets (render.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

_REFERENCE: Final = re.compile(r"\$(\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)")
_ESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


@dataclass(frozen=True)
class EnvValue:
    value: str  # what Compose passes (before expansion)
    cut: bool = False  # an unquoted value Compose cut at ` #`
    expands: list[str] = field(default_factory=list)  # `$X` Compose would replace


def literal_line(name: str, value: str) -> str:
    """A line Compose reads back as exactly value; ValueError
    when there is none."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("must be one line")
    if not value:
        return f"{name}={value}"
    if "'" in value:
        raise ValueError("holds a single quote, which .env cannot carry literally")
    return f"{name}='{value}'"


def parse_env(text: str) -> dict[str, EnvValue]:
    values: dict[str, EnvValue] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, rest = line.partition("=")
        if not sep:
            continue
        values[name.strip()] = _value(rest.lstrip())
    return values


def _value(rest: str) -> EnvValue:
    if rest.startswith("'"):
        end = rest.find("'", 1)
        return EnvValue(rest[1:end] if end > 0 else rest[1:])
    if rest.startswith('"'):
        chars: list[str] = []
        references: list[str] = []
        i = 1
        while i < len(rest) and rest[i] != '"':
            if rest[i] == "\\" and i + 1 < len(rest):
                chars.append(_ESCAPES.get(rest[i + 1], "\\" + rest[i + 1]))
                i += 2
                continue
            if rest[i] == "$" and (match := _REFERENCE.match(rest, i)):
                references.append(match.group(0))
            chars.append(rest[i])
            i += 1
        return EnvValue("".join(chars), expands=references)
    comment = re.search(r"\s#", rest)
    value = (rest[: comment.start()] if comment else rest).strip()
    references = [match.group(0) for match in _REFERENCE.finditer(value)]
    return EnvValue(value, cut=comment is not None, expands=references)
