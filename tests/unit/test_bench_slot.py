"""Two bench runs on one engine never share a name, an address, a port or a subnet, and a
second run in a slot already held stops at once (before its start-up cleanup could remove
the first run's stacks)."""

from __future__ import annotations

import ipaddress
import itertools
import multiprocessing
import os
import subprocess
import sys
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from bench import slot

REPO = Path(__file__).resolve().parents[2]
# The integration tests' slots 0..9 (tests/integration/conftest.py): 18xxx + 100 x slot,
# with bases up to 18443, and 172.30.(99 + slot).0/24.
INTEGRATION_PORTS = range(18000, 18500 + 100 * 10)
INTEGRATION_SUBNETS = [ipaddress.ip_network(f"172.30.{99 + s}.0/24") for s in range(10)]


def _names(s: slot.Slot) -> set[str]:
    return {s.netns, s.host_if, s.ns_if, s.project_prefix, s.baseline, s.pin, s.pinned_standin}


def _subnets(s: slot.Slot) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = [ipaddress.ip_network(lay["subnet"]) for lay in s.layout.values()]
    return [*nets, ipaddress.ip_network(f"{s.host_ip}/30", strict=False)]


def test_slot_zero_keeps_the_names_the_harness_always_had() -> None:
    zero = slot.Slot(0)
    assert (zero.netns, zero.host_ip, zero.ns_ip) == ("sgbench", "10.203.0.1", "10.203.0.2")
    assert zero.layout["stackgen"]["https"] == 28443 and zero.ceiling_port == 28444


def test_no_two_slots_share_anything_and_none_meets_the_integration_slots() -> None:
    slots = [slot.Slot(n) for n in range(slot.SLOTS)]
    for s in slots:
        assert all(len(name) <= 15 for name in (s.host_if, s.ns_if)), s  # IFNAMSIZ
        assert len(set(s.ports())) == len(s.ports()), s
        assert not set(s.ports()) & set(INTEGRATION_PORTS), s
        for net in _subnets(s):
            assert not any(net.overlaps(other) for other in INTEGRATION_SUBNETS), (s, net)
    for a, b in itertools.combinations(slots, 2):
        assert not set(a.ports()) & set(b.ports()), (a, b)
        assert not _names(a) & _names(b), (a, b)
        # A cleanup removes projects by prefix: no slot's prefix may start another's.
        assert not b.project_prefix.startswith(a.project_prefix), (a, b)
        assert not a.project_prefix.startswith(b.project_prefix), (a, b)
        for x, y in itertools.product(_subnets(a), _subnets(b)):
            assert not x.overlaps(y), (a, b, x, y)


@pytest.mark.parametrize("text", ["10", "-1", "one", "1.5"])
def test_a_bad_slot_is_one_line_and_exit_2(text: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import bench.run"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={**os.environ, "BENCH_SLOT": text}, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result  # sys.exit(message): Python's code for a message
    shown = text if text.isdigit() else repr(text)
    assert result.stderr.splitlines() == [f"bench: BENCH_SLOT={shown}: expected 0..9"]


def _hold(number: int, ready: Event, done: Event) -> None:
    with slot.holding(slot.Slot(number)):
        ready.set()
        done.wait(30)


def test_a_second_run_in_a_held_slot_stops_at_once_and_another_slot_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Never the machine's real slot locks: a colleague's run may hold one.
    monkeypatch.setattr(slot, "lock_path", lambda s: tmp_path / f"slot{s.number}.lock")
    context = multiprocessing.get_context("fork")
    ready, done = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(7, ready, done))
    holder.start()
    try:
        assert ready.wait(30)
        in_use = rf"slot 7 is in use \(pid {holder.pid}\)"
        with pytest.raises(slot.SlotError, match=in_use), slot.holding(slot.Slot(7)):
            pass
        with slot.holding(slot.Slot(8)):  # another slot is free
            pass
    finally:
        done.set()
        holder.join(30)
    with slot.holding(slot.Slot(7)):  # released when its holder ended
        pass
