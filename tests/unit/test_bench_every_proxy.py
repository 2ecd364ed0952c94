"""`stackgen bench --proxies all`: the scratch configuration (only what isolation needs
changes besides `proxy`), the recommendation and its reason, the comparison's schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stackgen import allocate
from stackgen.bench import every_proxy, ranking, schema
from stackgen.errors import InvalidInputError
from stackgen.stack import Stack
from tests.unit.test_bench import _doc
from tests.unit.test_bench_harness import _init
from tests.unit.test_cli import stackgen


def _stack(tmp_path: Path, *args: str) -> Stack:
    return Stack.load(_init(tmp_path, "nginx", *args))


def test_a_scratch_configuration_changes_the_proxy_and_only_what_isolation_needs(
    tmp_path: Path,
) -> None:
    movies = tmp_path / "movies"
    movies.mkdir()
    user = _stack(tmp_path, "--tls", "internal", "--media", f"{movies}:/media/movies:rw")
    mine = user.config.model_dump(mode="json", exclude_none=True)
    data = every_proxy.scratch_data(
        user, "caddy", project="p-caddy", subnet="172.28.9.0/24", ports=(18080, 18443, 18096)
    )
    assert data["proxy"] == "caddy" and data["project"] == "p-caddy"
    assert data["network"]["subnet"] == "172.28.9.0/24"
    assert "proxy_address" not in data["network"]  # derived again inside the new subnet
    assert data["ports"]["listen_address"] == "127.0.0.1"  # never exposed to the LAN
    assert (data["ports"]["http"], data["ports"]["https"]) == (18080, 18443)
    assert data["jellyfin"]["port"] == 18096
    assert (data["jellyfin"]["config_dir"], data["jellyfin"]["cache_dir"]) == (
        "jellyfin/config",
        "jellyfin/cache",
    )
    (media,) = data["jellyfin"]["media"]
    assert media["source"] == str(movies) and media["read_only"]  # rw in the user's
    # Everything else is the user's, as written.
    moved = {"proxy", "project", "ports", "network", "jellyfin"}
    assert {k: v for k, v in data.items() if k not in moved} == {
        k: v for k, v in mine.items() if k not in moved
    }
    assert user.config.proxy == "nginx"  # the user's model is not changed in place


def test_scratch_stacks_side_by_side_claim_different_subnets_and_ports_then_release_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two benches on one engine once picked the same "free" subnet between looking and
    # Compose creating the network: every scratch stack now claims its subnet and ports.
    monkeypatch.setenv("STACKGEN_TESTING_STATE", str(tmp_path / "claims"))
    monkeypatch.setattr(allocate, "docker_subnets", list)
    monkeypatch.setattr(every_proxy.lifecycle, "up", lambda *a, **k: None)
    monkeypatch.setattr(every_proxy.lifecycle, "down", lambda *a, **k: None)
    user = _stack(tmp_path, "--tls", "internal")
    quiet: Any = lambda message: None  # noqa: E731
    root = tmp_path / "scratch"
    with (
        every_proxy._scratch_stack(user, "caddy", root, quiet) as one,
        every_proxy._scratch_stack(user, "haproxy", root, quiet) as two,
    ):
        assert one.config.network.subnet != two.config.network.subnet
        assert one.config.network.subnet.subnet_of(every_proxy.SCRATCH_POOL)
        ports = [s.config.ports.https for s in (one, two)] + [
            s.config.jellyfin.port for s in (one, two)
        ]
        assert len(set(ports)) == 4
        claimed = json.loads((tmp_path / "claims" / "claims.json").read_text())
        assert {c["owner"] for c in claimed["subnets"].values()} == {
            one.config.project,
            two.config.project,
        }
    claimed = json.loads((tmp_path / "claims" / "claims.json").read_text())
    assert claimed["subnets"] == {} and claimed["ports"] == {}


def test_acme_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    user = _stack(tmp_path, "--tls", "acme", "--email", "admin@bench.test")
    with pytest.raises(InvalidInputError, match="must not ask an ACME CA"):
        every_proxy._refusals(user)


def _standing(proxy: str, runs: list[float], cpu: float, error: str | None = None) -> Any:
    doc = _doc()
    doc["metrics"]["stream_mbps"]["proxied"] = runs
    doc["metrics"]["cpu_s_per_gb"]["proxied"] = [cpu] * len(runs)
    return ranking.standing(proxy, doc, error)


def test_the_recommendation_names_the_fastest_and_says_when_the_lead_is_inside_the_spread() -> None:
    clear = [_standing("nginx", [400, 420], 1.0), _standing("traefik", [200, 210], 2.0)]
    lines = ranking.recommendation(clear)
    assert lines[0].startswith("recommendation: nginx: the most throughput")
    assert "410 MB/s" in lines[0] and "1.00 CPU-s per GB" in lines[0]
    assert lines[1] == "  ahead of traefik (205 MB/s) beyond the runs' spread"
    close = [_standing("caddy", [300, 330], 3.0), _standing("haproxy", [290, 310], 1.5)]
    lines = ranking.recommendation(close)
    assert lines[0].startswith("recommendation: caddy:")
    assert "haproxy is within the runs' spread" in lines[1]
    assert lines[1].endswith("; haproxy costs less CPU per GB")
    assert "not interleaved" in lines[-1]


def test_a_proxy_that_failed_is_ranked_last_and_named() -> None:
    standings = [
        ranking.standing("apache", None, "not measured: stackgen up timed out"),
        _standing("nginx", [100], 1.0),
    ]
    assert [s.proxy for s in ranking.rank(standings)] == ["nginx", "apache"]
    assert "  apache: not measured: stackgen up timed out" in ranking.recommendation(standings)
    assert ranking.recommendation([standings[0]]) == [
        "recommendation: none: no proxy could be measured on this machine"
    ]


def test_the_comparison_schema_checks_every_run() -> None:
    standings = [_standing("nginx", [100], 1.0)]
    doc = {
        "schema": schema.COMPARISON_SCHEMA,
        "proxies": ranking.to_json(standings),
        "recommendation": ranking.recommendation(standings),
        "runs": {"nginx": _doc(), "caddy": None},
    }
    assert schema.validate_comparison(doc) == []
    doc["runs"]["nginx"]["schema"] = "x"
    doc["proxies"][0]["stream_mbps"] = "fast"
    problems = schema.validate_comparison(doc)
    assert "proxies[0].stream_mbps must be a number or null" in problems
    assert any(p.startswith("runs.nginx: schema is 'x'") for p in problems), problems


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--proxies", "some"], "--proxies 'some': expected all"),
        (
            ["--proxies", "all", "--ceiling"],
            "--proxies all measures scratch stacks: no --url, --direct, --ceiling or --via",
        ),
    ],
)
def test_bad_proxies_options_are_one_line_and_exit_3(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = stackgen("bench", "--dir", str(tmp_path), *args)
    assert result.returncode == 3, result
    assert result.stderr.strip() == f"stackgen: error: {message}"
