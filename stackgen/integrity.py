"""Faults `check` fails on (and so `up` refuses) that a hand edit or a crash can leave:
a compose file without stackgen's services, a state file that is not JSON. Each function
returns one-line problems; `checks.py` turns them into findings."""

from __future__ import annotations

import json
import re

from stackgen.render import COMPOSE_FILE
from stackgen.writer import Plan


def compose_services(text: str) -> set[str]:
    """The service names of a compose file, read without a YAML library: the keys one level
    under the top-level `services:` (a truncated file simply has fewer)."""
    lines = text.splitlines()
    if "services:" not in lines:
        return set()
    names: set[str] = set()
    indent = None
    for line in lines[lines.index("services:") + 1 :]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            break  # the next top-level key
        width = len(line) - len(line.lstrip())
        indent = width if indent is None else indent
        match = re.match(r"^\s*([A-Za-z0-9._-]+):\s*(?:#.*)?$", line)
        if width == indent and match:
            names.add(match.group(1))
    return names


def missing_services(plan: Plan) -> list[str]:
    """A hand-edited compose file is kept, but one without stackgen's services would start
    half a stack."""
    rendered = {v.file.path: v for v in plan.verdicts}.get(COMPOSE_FILE)
    if rendered is None or rendered.current is None:
        return []  # missing: the files check says so
    expected = compose_services(rendered.file.content.decode())
    present = compose_services(rendered.current.decode("utf-8", "replace"))
    missing = sorted(expected - present)
    if not missing:
        return []
    return [
        f"{COMPOSE_FILE} lacks stackgen's service(s) {', '.join(missing)} "
        "(truncated or edited?): `stackgen render --force` rewrites it"
    ]


def broken_state_json(plan: Plan) -> list[str]:
    """acme.json holds Traefik's certificates: Traefik does not start when it is not JSON."""
    problems = []
    for verdict in plan.verdicts:
        if not (verdict.file.state and verdict.file.path.endswith(".json") and verdict.current):
            continue
        try:
            json.loads(verdict.current)
        except ValueError as error:
            problems.append(
                f"{verdict.file.path} is not JSON ({error}): restore it from a backup, "
                "or empty it to have the certificates requested again"
            )
    return problems
