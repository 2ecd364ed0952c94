"""What the tunnel costs: edge -> home over WireGuard against the same path without it.

    STACKGEN_TEST_IMAGE_TAG=... python -m tests.edge.measure [--pairs N] [--json FILE]

One topology (tests/edge/topology.py). The baseline is what a user without a tunnel would
do: a port forward on the home router (DNAT router:18096 -> home:8096, opened for this
measurement only), so both sides cross the same bridges and the same NAT and differ only
by wireguard-go at both ends. The client runs in the edge container, the server is the
Jellyfin stand-in at home (media served from memory). Sides alternate A-B-B-A per pair
(`stackgen.bench.stats`), every loop is bounded, and traffic stays between the topology's
own containers.

Per side and pair: one 64 MiB stream (MB/s), 200 requests on one kept-alive connection
(ms per request) and 40 requests on new connections (ms, connect included); and the
CPU seconds each container on the path spent on all of it (edge includes the client).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import Cgroup  # make bench's reader of a container's CPU time
from stackgen.bench.stats import abba_order, compare_pairs, summarize
from tests.edge.topology import HOME_TUNNEL, STANDIN_PORT, EdgeHome, run

FORWARDED_PORT = 18096
MEDIA_BYTES = 64 * 1024 * 1024
KEPT_ALIVE_REQUESTS = 200
NEW_CONNECTIONS = 40

CLIENT = """
import http.client, json, sys, time
host, port, media = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kept, fresh = int(sys.argv[4]), int(sys.argv[5])
conn = http.client.HTTPConnection(host, port, timeout=30)
started = time.perf_counter()
conn.request("GET", "/Videos/measure/stream")
reply = conn.getresponse()
got = 0
while chunk := reply.read(1 << 20):
    got += len(chunk)
stream_seconds = time.perf_counter() - started
assert got == media, got
latencies = []
for _ in range(kept):
    t = time.perf_counter()
    conn.request("GET", "/health")
    assert conn.getresponse().read() == b"Healthy"
    latencies.append((time.perf_counter() - t) * 1000)
conn.close()
connects = []
for _ in range(fresh):
    t = time.perf_counter()
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/health")
    assert c.getresponse().read() == b"Healthy"
    c.close()
    connects.append((time.perf_counter() - t) * 1000)
print(json.dumps({"mb_per_s": got / stream_seconds / 1e6, "kept": latencies, "fresh": connects}))
"""


def open_port_forward(topology: EdgeHome) -> None:
    home = topology.home_lan_address
    router = topology.router
    topology.exec(router, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp",
                  "-d", topology.router_public_address, "--dport", str(FORWARDED_PORT),
                  "-j", "DNAT", "--to-destination", f"{home}:{STANDIN_PORT}")  # fmt: skip
    topology.exec(router, "iptables", "-I", "FORWARD", "1", "-p", "tcp", "-d", home,
                  "--dport", str(STANDIN_PORT), "-j", "ACCEPT")  # fmt: skip
    # The forwarded connection also leaves the router from its LAN address. Without it the
    # client's wan-subnet address would appear on the LAN bridge, where the engine's own
    # MASQUERADE rule for the wan network rewrites it (bridged frames cross the host's
    # iptables) and home's answers go to the host instead of the router.
    topology.exec(router, "iptables", "-t", "nat", "-I", "POSTROUTING", "1", "-p", "tcp",
                  "-d", home, "--dport", str(STANDIN_PORT), "-j", "MASQUERADE")  # fmt: skip


def cgroups(topology: EdgeHome) -> dict[str, Cgroup]:
    """CPU counters of the containers on the path (the client shares edge's container)."""
    names = {"edge": topology.edge, "router": topology.router, "home": topology.home,
             "standin": topology.standin}  # fmt: skip
    ids = {role: run(["docker", "inspect", "-f", "{{.Id}}", name]).stdout.strip()
           for role, name in names.items()}  # fmt: skip
    return {role: Cgroup(cid) for role, cid in ids.items()}


def one_run(topology: EdgeHome, side: str, groups: dict[str, Cgroup]) -> dict[str, Any]:
    host, port = (
        (HOME_TUNNEL, STANDIN_PORT)
        if side == "A"
        else (topology.router_public_address, FORWARDED_PORT)
    )
    args = (host, str(port), str(MEDIA_BYTES), str(KEPT_ALIVE_REQUESTS), str(NEW_CONNECTIONS))
    before = {role: group.cpu_seconds() for role, group in groups.items()}
    result = topology.python(topology.edge, CLIENT, *args, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"measurement on side {side} failed:\n{result.stderr}")
    data: dict[str, Any] = json.loads(result.stdout)
    # CPU seconds of the whole run (stream and requests) per container: what the tunnel
    # costs in work, which a busy shared machine changes less than it changes MB/s.
    data["cpu"] = {role: group.cpu_seconds() - before[role] for role, group in groups.items()}
    return data


def measure(pairs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sgwg-measure-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o700)
        with EdgeHome(workdir) as topology:
            topology.wait_handshake(topology.edge, after=0, timeout=60)
            open_port_forward(topology)
            groups = cgroups(topology)
            load_before = os.getloadavg()
            runs: dict[str, list[dict[str, Any]]] = {"A": [{}] * pairs, "B": [{}] * pairs}
            started = time.monotonic()
            for index, side in abba_order(pairs):
                runs[side][index] = one_run(topology, side, groups)
            elapsed = time.monotonic() - started
            load_after = os.getloadavg()
    tunnel, direct = runs["A"], runs["B"]
    result: dict[str, Any] = {
        "pairs": pairs,
        "seconds": round(elapsed, 1),
        "loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    for metric, pick, kind in (
        ("stream_mb_per_s", lambda r: r["mb_per_s"], "ratio"),
        ("kept_alive_p50_ms", lambda r: summarize(r["kept"]).p50, "added"),
        ("kept_alive_p90_ms", lambda r: summarize(r["kept"]).p90, "added"),
        ("new_connection_p50_ms", lambda r: summarize(r["fresh"]).p50, "added"),
        ("cpu_s_edge", lambda r: r["cpu"]["edge"], "added"),
        ("cpu_s_home", lambda r: r["cpu"]["home"], "added"),
        ("cpu_s_router", lambda r: r["cpu"]["router"], "added"),
        ("cpu_s_standin", lambda r: r["cpu"]["standin"], "added"),
    ):
        a = [pick(r) for r in tunnel]
        b = [pick(r) for r in direct]
        spread = compare_pairs(a, b, kind)  # type: ignore[arg-type]
        result[metric] = {
            "tunnel": [round(v, 3) for v in a],
            "port_forward": [round(v, 3) for v in b],
            "per_pair": spread.to_json() if spread else None,
        }
    return result


def table(result: dict[str, Any]) -> str:
    """Markdown: each side's median over pairs (min-max), and the per-pair comparison."""
    lines = [
        "| metric | over WireGuard: median (min-max) | port forward: median (min-max) "
        "| per pair, tunnel vs forward: median [q1, q3] |",
        "|---|---|---|---|",
    ]
    for metric, data in result.items():
        if not isinstance(data, dict) or data["per_pair"] is None:
            continue
        a, b, pair = data["tunnel"], data["port_forward"], data["per_pair"]
        unit = "x" if pair["kind"] == "ratio" else " s" if metric.startswith("cpu_s") else " ms"
        lines.append(
            f"| {metric} | {spell(a)} | {spell(b)} "
            f"| {pair['median']:.2f}{unit} [{pair['q1']:.2f}, {pair['q3']:.2f}] |"
        )
    return "\n".join(lines)


def spell(values: list[float]) -> str:
    return f"{summarize(values).p50:.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None, help="write the result here too")
    args = parser.parse_args(argv)
    if not 1 <= args.pairs <= 20:
        parser.error("--pairs is 1..20")
    result = measure(args.pairs)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    print(table(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
