"""`stackgen bench` keeps working on a real stack: a seconds-long run, one proxy.

Asserts the JSON schema, the path and TLS the client took, the verdict and the user's
thresholds, and that every number is a sane measurement; never a performance goal (those
are `make bench`'s, on a quiet machine).
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from integration.conftest import STANDIN_API_KEY, StackFactory, stackgen, stackgen_with_pid

from stackgen.bench import every_proxy
from stackgen.bench.ceiling import LABEL
from stackgen.bench.endpoint import PATH_CONTAINER, PATH_LOOPBACK, TLS13_CIPHER
from stackgen.bench.schema import SCHEMA_VERSION, validate, validate_comparison
from stackgen.proxies import available


def test_bench_measures_a_stack_against_jellyfin_direct(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack("nginx")
    plot = tmp_path / "bench.svg"
    result = stackgen(
        "bench", "--dir", str(stack.directory), "--pairs", "1", "--duration", "1",
        "--rate", "50", "--streams", "2", "--bitrate", "10", "--check-bytes",
        "--expect", "streams=1@8", "--ramp", "20", "--ramp-seconds", "3", "--ramp-max", "4",
        "--plot", str(plot), "--json",
        # Jellyfin refuses a WebSocket without a valid API key (403): the stand-in's key.
        "--token", STANDIN_API_KEY,
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert doc["schema"] == SCHEMA_VERSION
    assert validate(doc) == [], validate(doc)
    assert doc["errors"] == []
    # A LAN client's path: the proxy container's own address, not docker-proxy.
    proxied = doc["targets"]["proxied"]
    assert proxied["path"] == PATH_CONTAINER and proxied["port"] == 443, proxied
    assert not proxied["address"].startswith("127."), proxied
    assert (proxied["tls"], proxied["cipher"], proxied["alpn"]) == (
        "TLSv1.3",
        TLS13_CIPHER,
        "http/1.1",
    )
    # Jellyfin's own port answers on a host-network stack: the direct side was measured.
    assert doc["targets"]["direct"] is not None
    for name, metric in doc["metrics"].items():
        values = metric["proxied"]
        assert len(values) == 1, name
        assert all(v is not None and math.isfinite(v) and v > 0 for v in values), name
        if name == "cpu_s_per_gb":  # charged to the proxy's container only
            assert metric["direct"] == [None] and metric["compare"] is None
            continue
        assert len(metric["direct"]) == 1 and all(v > 0 for v in metric["direct"]), name
        assert metric["compare"]["n"] == 1
    assert doc["api"]["errors"] == 0 and doc["api"]["sent"] == 2 * 50
    streams = doc["streams"]
    assert streams["errors"] == 0 and streams["byte_mismatches"] == 0
    assert streams["bytes"] > 0 and 0 <= streams["max_gap_ms"] < 10_000
    # The verdict: capacity in streams, the proxy's share of a core, the path taken.
    assert doc["verdict"][0].startswith("verdict: this stack carries ~ "), doc["verdict"]
    assert "(measured via the container address)" in doc["verdict"][0]
    assert "% of a core per 20 Mbit/s stream" in doc["verdict"][1]
    # The capacity at 20 Mbit/s is the ramp's: buffered players, 1, 2, 4 at most.
    ramp = doc["ramp"]["per_bitrate"]["20"]
    assert [t["players"] for t in ramp["trials"]][:1] == [1] and len(ramp["trials"]) <= 5
    assert ramp["stall_free"] >= 1, ramp  # one 20 Mbit/s player on loopback never stalls
    assert doc["capacity"]["20"]["streams"] == ramp["stall_free"]
    assert doc["capacity"]["20"]["limit"] == ramp["limit"] in ("players", "ramp-max")
    assert doc["expectations"] == [
        {"expect": "streams=1@8", "measured": doc["expectations"][0]["measured"],
         "passed": True, "line": doc["expectations"][0]["line"]}
    ]  # fmt: skip
    assert "bench: pair 1/1 proxied" in result.stderr  # progress on stderr, JSON on stdout
    ET.parse(plot)


def test_bench_says_so_when_it_measures_through_docker_proxy(make_stack: StackFactory) -> None:
    stack = make_stack("nginx")
    result = stackgen(
        "bench", "--dir", str(stack.directory), "--via", "published", "--pairs", "1",
        "--only", "stream", "--expect", "streams=100000@100",
        check=False,
    )  # fmt: skip
    # The threshold is out of reach: exit 1, a k6-style line, the verdict first.
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("bench: ")]
    assert lines[0].startswith("verdict: this stack carries ~ "), result.stderr
    assert f"(measured via the {PATH_LOOPBACK})" in lines[0]
    assert any("docker-proxy on 127.0.0.1" in line for line in lines), result.stderr
    assert any(line.startswith("✗ streams=100000@100: ") for line in lines), result.stderr
    assert "1 of 1 expectation(s) not met: streams=100000@100" in result.stderr


def test_the_ceiling_splits_the_gap_and_leaves_nothing_behind(
    make_stack: StackFactory, images: dict[str, str]
) -> None:
    """`--ceiling --via both`: a bare TLS server with the stack's own certificate and bytes
    beside the proxy, plain HTTP from it, and the published port; each part of the gap is
    a per-pair ratio; the server and its scratch folder are gone afterwards."""
    stack = make_stack("nginx")
    result, pid = stackgen_with_pid(
        "bench", "--dir", str(stack.directory), "--pairs", "2", "--only", "stream",
        "--streams", "0", "--ceiling", "--ceiling-image", images["nginx"], "--via", "both",
        "--json",
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert validate(doc) == [], validate(doc)
    assert doc["errors"] == []
    found = doc["gap"]
    sides = found["sides"]
    assert set(sides) == {"ceiling", "plain", "published"}
    # The same network path as the proxy, the same TLS: the stack's own certificate (curl
    # verified it against the stack's CA) and the one pinned cipher.
    assert sides["ceiling"]["path"] == PATH_CONTAINER and sides["ceiling"]["port"] == 8443
    assert (sides["ceiling"]["tls"], sides["ceiling"]["cipher"]) == ("TLSv1.3", TLS13_CIPHER)
    assert sides["plain"]["tls"] is None and sides["plain"]["protocol"] == "http/1.1"
    assert sides["published"]["path"] != PATH_CONTAINER
    for side in ("proxied", "ceiling", "plain", "published"):
        runs = found["stream_mbps"][side]
        assert len(runs) == 2 and all(v is not None and v > 0 for v in runs), (side, runs)
    for part in ("tls", "relay", "docker_proxy"):
        spread = found["parts"][part]
        assert spread["n"] == 2 and spread["low"] <= spread["median"] <= spread["high"], part
    assert found["relay_cpu"] is not None and found["relay_cpu"]["median"] > 0
    # Only this run's own: other runs on the machine may be benching at the same moment.
    leftovers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL}",
         "--filter", f"name=stackgen-bench-ceiling-{pid}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    assert leftovers == []
    assert not list(Path(tempfile.gettempdir()).glob(f"stackgen-ceiling-{pid}-*"))


def test_every_proxy_is_measured_in_scratch_stacks_and_the_users_stack_is_untouched(
    make_stack: StackFactory,
) -> None:
    """`--proxies all`: the user's stackgen.toml with each proxy, in scratch stacks beside
    the user's running one; a ranking with its reason; nothing left behind; the user's
    folder byte-identical and its stack still running."""
    # ACME is refused (a scratch stack must not ask a CA for certificates): internal.
    stack = make_stack("nginx", tls="internal")
    before = {p: p.read_bytes() for p in sorted(stack.directory.rglob("*")) if p.is_file()}
    running = _containers(f"label=com.docker.compose.project={stack.compose_project}")
    result, pid = stackgen_with_pid(
        "bench", "--dir", str(stack.directory), "--proxies", "all", "--pairs", "1",
        "--only", "stream", "--streams", "0", "--json",
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert validate_comparison(doc) == [], validate_comparison(doc)
    measured = {item["proxy"]: item for item in doc["proxies"]}
    assert set(measured) == set(available())
    for proxy, item in measured.items():
        assert item["error"] is None, (proxy, item, result.stderr[-3000:])
        assert item["stream_mbps"] > 0 and item["cpu_s_per_gb"] > 0, (proxy, item)
        run = doc["runs"][proxy]
        assert run["targets"]["proxied"]["path"] == PATH_CONTAINER, proxy
        assert run["targets"]["proxied"]["cipher"] == TLS13_CIPHER, proxy
    best = doc["proxies"][0]["proxy"]
    assert doc["recommendation"][0].startswith(f"recommendation: {best}: the most throughput")
    # Only this run's own (the pid names them): other runs may be benching at the same moment.
    projects = [f"{every_proxy.PROJECT_PREFIX}{proxy}-{pid}" for proxy in measured]
    # The names looked for below are the ones the run used (its progress says so).
    for project in projects:
        assert f"(scratch stack {project})" in result.stderr, (project, result.stderr[-3000:])
    assert [
        p for p in projects if _containers(f"label=com.docker.compose.project={p}", all_=True)
    ] == []
    assert not list(Path(tempfile.gettempdir()).glob(f"stackgen-bench-proxies-{pid}-*"))
    after = {p: p.read_bytes() for p in sorted(stack.directory.rglob("*")) if p.is_file()}
    assert after == before
    assert _containers(f"label=com.docker.compose.project={stack.compose_project}") == running


def _containers(filter_: str, *, all_: bool = False) -> list[str]:
    """Running containers matching `filter_` (`all_`: stopped ones too)."""
    return subprocess.run(
        ["docker", "ps", "-q", *(["-a"] if all_ else []), "--filter", filter_],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
