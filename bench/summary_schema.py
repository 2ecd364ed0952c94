"""The schema of `summary.json` (`schemas/summary.schema.json`) and its validator.

`make bench` validates the summary before it writes the report, and `make bench-report`
before it judges an earlier run again: a report is only ever made from a summary whose
every verdict carries its interval and the goals version it was judged with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "summary.schema.json"
SUMMARY_SCHEMA = "stackgen-make-bench/2"


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def validate_summary(doc: Mapping[str, Any]) -> list[str]:
    """Every way `doc` departs from the schema, one line each (empty when it follows it)."""
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "$"
        problems.append(f"{where}: {error.message}")
    return problems
