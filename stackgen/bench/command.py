"""`stackgen bench` behind the CLI: targets from a stack folder or a URL, then the run.

The proxied side reuses verify's Target (and so its --resolve/--ca-file handling); the
direct side is `--direct`, or for a stack stackgen made with a host-network Jellyfin,
Jellyfin's own port on the address the stack publishes on, when it answers.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stackgen.bench.endpoint import Endpoint, proxied_endpoint, url_endpoint
from stackgen.bench.measure import BenchSettings, run_bench
from stackgen.bench.report import bench_plot, render_table
from stackgen.errors import InvalidInputError, ProblemsFoundError
from stackgen.models import JellyfinNetwork
from stackgen.probe import Target
from stackgen.stack import Stack


def _reachable(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def targets(
    *,
    directory: Path,
    url: str | None,
    resolve: Sequence[str],
    ca_file: Path | None,
    direct: str | None,
    http2: bool,
    timeout: float,
    direct_http2: bool = False,
) -> tuple[Endpoint, Endpoint | None]:
    from stackgen import verify as verifying

    target: Target
    auto_direct: str | None = None
    if url:
        target = verifying.target_for_url(
            url,
            resolve=resolve,
            ca_file=ca_file,
            http_port=80,
            media_path=None,
            known_proxies=[],
            proxy_address=[],
            frames_allowed=False,
            timeout=timeout,
        )
    else:
        stack = Stack.load(directory)
        target = verifying.stack_target(stack, timeout=timeout, observed=True, ca_file=ca_file)
        config = stack.config
        if config.jellyfin.network_mode is JellyfinNetwork.HOST:
            address = config.connect_address
            if _reachable(address, config.jellyfin.port):
                base = target.base_url.base
                auto_direct = f"http://{address}:{config.jellyfin.port}{base}"
    try:
        proxied = proxied_endpoint(target, http2=http2)
        direct_ep = None
        chosen = direct or auto_direct
        if chosen:
            direct_ep = url_endpoint(
                "direct",
                chosen,
                resolve=verifying.parse_resolve(resolve),
                ca_file=ca_file,
                # Jellyfin itself speaks HTTP/1.1; h2 only for an https baseline.
                http2=direct_http2,
            )
    except ValueError as error:
        raise InvalidInputError(str(error)) from None
    return proxied, direct_ep


def run(
    proxied: Endpoint,
    direct: Endpoint | None,
    settings: BenchSettings,
    *,
    as_json: bool,
    plot: Path | None,
    output: Path | None,
) -> dict[str, Any]:
    def progress(message: str) -> None:
        sys.stderr.write(f"bench: {message}\n")
        sys.stderr.flush()

    if direct is None:
        progress("no direct Jellyfin endpoint: measuring the proxied side only")
    doc = run_bench(proxied, direct, settings, progress)
    text = json.dumps(doc, indent=2) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    if plot is not None:
        plot.write_text(bench_plot(doc), encoding="utf-8")
    if as_json:
        sys.stdout.write(text)
    else:
        sys.stderr.write(render_table(doc) + "\n")
    failures = _failures(doc)
    if failures:
        raise ProblemsFoundError("bench: " + "; ".join(failures))
    return doc


def _failures(doc: dict[str, Any]) -> list[str]:
    """Broken measurements (not slow ones: performance goals are `make bench`'s job)."""
    problems = []
    if not doc["metrics"] and doc["settings"]["phases"] != ["streams"]:
        problems.append("no phase produced a measurement")
    if doc["errors"]:
        problems.append(f"{len(doc['errors'])} error(s), first: {doc['errors'][0]}")
    return problems


def settings_from_options(**options: Any) -> BenchSettings:
    try:
        return BenchSettings(**options)
    except ValueError as error:
        raise InvalidInputError(str(error)) from None
