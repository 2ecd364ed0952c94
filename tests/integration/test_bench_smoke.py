"""`stackgen bench` keeps working on a real stack: a seconds-long run, one proxy.

Asserts the JSON schema and that every number is a sane measurement; never a
performance goal (those are `make bench`'s, on a quiet machine).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from integration.conftest import STANDIN_API_KEY, StackFactory, stackgen

from stackgen.bench.schema import SCHEMA_VERSION, validate


def test_bench_measures_a_stack_against_jellyfin_direct(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack("nginx")
    plot = tmp_path / "bench.svg"
    result = stackgen(
        "bench", "--dir", str(stack.directory), "--pairs", "1", "--duration", "1",
        "--rate", "50", "--streams", "2", "--bitrate", "10", "--check-bytes",
        "--plot", str(plot), "--json",
        # Jellyfin refuses a WebSocket without a valid API key (403): the stand-in's key.
        "--token", STANDIN_API_KEY,
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert doc["schema"] == SCHEMA_VERSION
    assert validate(doc) == [], validate(doc)
    assert doc["errors"] == []
    # Jellyfin's own port answers on a host-network stack: the direct side was measured.
    assert doc["targets"]["direct"] is not None
    for name, metric in doc["metrics"].items():
        for side in ("proxied", "direct"):
            values = metric[side]
            assert len(values) == 1, (name, side)
            assert all(v is not None and math.isfinite(v) and v > 0 for v in values), name
        assert metric["compare"]["n"] == 1
    assert doc["api"]["errors"] == 0 and doc["api"]["sent"] == 2 * 50
    streams = doc["streams"]
    assert streams["errors"] == 0 and streams["byte_mismatches"] == 0
    assert streams["bytes"] > 0 and 0 <= streams["max_gap_ms"] < 10_000
    assert "bench: pair 1/1 proxied" in result.stderr  # progress on stderr, JSON on stdout
    ET.parse(plot)
