"""What the tunnel costs the stacks stackgen renders: `stackgen bench` on the same proxy on
one host (the Compose target) against the edge-home pair over userspace WireGuard.

    STACKGEN_TEST_IMAGE_TAG=... python -m tests.edge.pair_cost [--pairs N] [--duration S]

Two stacks rendered by `stackgen init`, both nginx, internal CA, the gate off in both (the
gate is measured on its own in docs/access.md: here only the tunnel differs), the Jellyfin
stand-in behind each: one Compose stack with Jellyfin beside the proxy on its bridge, and
an edge-home pair whose proxy reaches Jellyfin at home through the tunnel. One `stackgen
bench` run measures both, interleaved A-B-B-A per pair: the edge-home side as "proxied"
(`--url`), the one-host stack as its baseline ("direct", `--direct`), each at its proxy's
own container address (the edge's is its tunnel endpoint's: the proxy shares it), so both
paths are this machine -> a bridge -> nginx and differ only by the tunnel behind nginx.
bench's per-pair ratios (median [q1, q3]) are the tunnel's cost; its `machine` line says
the load before and after. Everything is removed at the end, on failure too.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.edge import test_rendered as rendered

SLOT = int(os.environ.get("STACKGEN_TEST_SLOT", "0"))
ONE, EDGE = "one.cost.stackgen.test", "edge.cost.stackgen.test"
PROJECT = f"sg-cost{SLOT}"
# Three /24s: the one-host stack's, the edge's, home's (the block after the edge's).
ONE_SUBNET = ipaddress.IPv4Network(f"172.31.{120 + 3 * SLOT}.0/24")
EDGE_SUBNET = ipaddress.IPv4Network(f"172.31.{121 + 3 * SLOT}.0/24")
HOME_GATEWAY = str(EDGE_SUBNET.network_address + EDGE_SUBNET.num_addresses + 1)
PORTS = 28300 + 10 * SLOT  # published ports: one-host http/https, edge http/https, wg


def stackgen(*args: str, timeout: float = 600) -> str:
    run = rendered.stackgen(*args, timeout=timeout)
    if run.returncode != 0:
        raise SystemExit(f"stackgen {args[0]} failed ({run.returncode}):\n{run.stderr}")
    return run.stdout


def address(container: str) -> str:
    shown = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    out = subprocess.run(
        ["docker", "inspect", container, "--format", shown],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.split()[0]


def down(site: Path) -> None:
    for folder, project in (
        (site / "one", f"{PROJECT}-one"),
        (site / "pair", f"{PROJECT}-pair-edge"),
        (site / "pair", f"{PROJECT}-pair-home"),
    ):
        side = project.rsplit("-", 1)[1]
        args = ["down", "--dir", str(folder), "--project", project]
        if side in ("edge", "home"):
            args += ["--side", side]
        subprocess.run(
            [sys.executable, "-c", "from stackgen.cli import main; main()", *args],
            capture_output=True,
            check=False,
            timeout=300,
        )


def measure(pairs: int, duration: float, output: Path) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from images.build import build_images  # tests/images/build.py

    images = build_images(["wireguard", "jellyfin-standin", "nginx"])
    common = [
        "--tls", "internal", "--gate", "off",
        "--image", f"nginx={images['nginx']}",
        "--image", f"jellyfin={images['jellyfin-standin']}",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sg-cost-") as tmp:
        site = Path(tmp)
        down(site)
        try:
            stackgen(
                "init", "nginx", "--domain", ONE, *common, "--jellyfin-network", "bridge",
                "--subnet", str(ONE_SUBNET), "--project", f"{PROJECT}-one",
                "--http-port", str(PORTS), "--https-port", str(PORTS + 1),
                "--dir", str(site / "one"),
            )  # fmt: skip
            stackgen(
                "init", "nginx", "--domain", EDGE, *common,
                "--target", "edge-home", "--edge-host", HOME_GATEWAY,
                "--image", f"wireguard={images['wireguard']}",
                "--subnet", str(EDGE_SUBNET), "--project", f"{PROJECT}-pair",
                "--http-port", str(PORTS + 2), "--https-port", str(PORTS + 3),
                "--wg-port", str(PORTS + 4), "--dir", str(site / "pair"),
            )  # fmt: skip
            stackgen("up", "--dir", str(site / "one"))
            for side in ("edge", "home", "edge"):  # the edge's second `up` waits for Jellyfin
                stackgen("up", "--dir", str(site / "pair"), "--side", side)
            trust = site / "both-cas.pem"
            trust.write_text(
                (site / "one/tls/ca.pem").read_text() + (site / "pair/edge/tls/ca.pem").read_text()
            )
            edge_at = address(f"{PROJECT}-pair-edge-wireguard-1")
            one_at = address(f"{PROJECT}-one-nginx-1")
            run = subprocess.run(
                [
                    sys.executable, "-c", "from stackgen.cli import main; main()", "bench",
                    "--url", f"https://{EDGE}/", "--resolve", f"{EDGE}:{edge_at}",
                    "--direct", f"https://{ONE}/", "--resolve", f"{ONE}:{one_at}",
                    "--ca-file", str(trust), "--pairs", str(pairs), "--duration", str(duration),
                    "--streams", "0", "--only", "stream", "--only", "seek", "--only", "api",
                    "--output", str(output),
                ],
                capture_output=True, text=True, check=False, timeout=3600,
            )  # fmt: skip
            sys.stderr.write(run.stderr)
            if run.returncode != 0:
                raise SystemExit(f"bench failed ({run.returncode})")
        finally:
            down(site)
    doc: dict[str, Any] = json.loads(output.read_text())
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--output", type=Path, default=Path("tests/edge/results/pair-cost.json"))
    options = parser.parse_args()
    measure(options.pairs, options.duration, options.output)
    print(f"written: {options.output} (proxied = edge-home over the tunnel, direct = one host)")


if __name__ == "__main__":
    main()
