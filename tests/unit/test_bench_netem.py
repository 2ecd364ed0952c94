"""`BENCH_NETWORK`: the named and spelled-out netem profiles, the tc commands on the
client's veth pair, and a kernel without netem stopping the run with tc's own words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import netem

REPO = Path(__file__).resolve().parents[2]


def test_the_named_profiles_are_the_ones_the_docs_give() -> None:
    assert netem.parse("lan") == netem.Profile("lan", delay_ms=0.5, rate_mbit=1000)
    assert netem.parse("WAN") == netem.Profile("wan", delay_ms=40, loss_percent=0.1, rate_mbit=100)
    assert netem.parse("none") is None and netem.parse("") is None


def test_a_profile_can_be_spelled_out() -> None:
    found = netem.parse("delay=20ms,loss=1%,rate=50mbit")
    assert found == netem.Profile("delay=20ms,loss=1%,rate=50mbit", 20, 1, 50)
    assert netem.parse("delay=5") == netem.Profile("delay=5", delay_ms=5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("moon", "expected lan, wan, none"),
        ("delay=5,delay=6", "expected lan, wan, none"),
        ("delay=fast", "'fast' is not a number"),
        ("loss=60", "loss must be 0..50 %"),
        ("delay=-1", "delay must be 0..2000 ms"),
    ],
)
def test_a_bad_profile_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(netem.ProfileError, match=message):
        netem.parse(text)


def test_the_delay_is_split_over_both_ways_and_the_loss_is_toward_the_client() -> None:
    wan = netem.PROFILES["wan"]
    to_servers, to_client = netem.apply("sgbench3", "sgb3-ns", "sgb3-host", wan)
    assert to_servers[:5] == ["ip", "netns", "exec", "sgbench3", "tc"]
    assert to_servers[5:10] == ["qdisc", "replace", "dev", "sgb3-ns", "root"]
    assert to_servers[10:] == ["netem", "delay", "20ms", "rate", "100mbit", "limit", "100000"]
    assert to_client == ["tc", "qdisc", "replace", "dev", "sgb3-host", "root", "netem",
                         "delay", "20ms", "loss", "0.1%", "rate", "100mbit", "limit",
                         "100000"]  # fmt: skip


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_a_kernel_without_netem_stops_the_run_before_it_starts_anything() -> None:
    """On a kernel with sch_netem the check passes; without it (this machine's kernel has
    no CONFIG_NET_SCH_NETEM), the run stops with exit 2 and tc's own error."""
    failed = netem.check(netem.PROFILES["lan"])
    if failed is None:
        return  # netem works here: nothing to refuse
    assert failed.startswith("`tc qdisc replace dev lo root netem delay 0.25ms")
    result = subprocess.run(
        [sys.executable, "-m", "bench.run"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
        env={**os.environ, "BENCH_NETWORK": "lan", "BENCH_SLOT": "9",
             "BENCH_OUT": "/nonexistent-bench-out"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "BENCH_NETWORK=lan: this kernel cannot apply it: `tc qdisc" in result.stderr
    assert failed in result.stderr  # tc's own words, as the check found them
