"""`stackgen bench` behind the CLI: targets from a stack folder or a URL, then the run.

The proxied side reuses verify's Target (and so its --resolve/--ca-file handling). For a
stack folder it connects where a LAN client's packets arrive, the proxy container's own
address and port 443, never the published port on 127.0.0.1, which the engine relays
through its userland docker-proxy (a hop no LAN client crosses); `--via published`
measures the published port instead, `--via both` the container and, for full GETs, the
published port too (the docker-proxy part of the gap), and the result always says which
path it took. `--ceiling` adds a throwaway bare TLS server beside the proxy (`ceiling.py`)
so the gap splits into TLS, the proxy's relay and docker-proxy (`gap.py`).
The proxy container's cgroup gives its CPU per GB, so the verdict can say what one stream
costs. The direct side is `--direct`, or for a stack stackgen made with a host-network
Jellyfin, Jellyfin's own port on the address the stack publishes on, when it answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackgen.bench import ceiling, every_proxy, gap, h1, verdict
from stackgen.bench.cgroup import Cgroup, CgroupError
from stackgen.bench.endpoint import (
    PATH_CONTAINER,
    Endpoint,
    path_for,
    proxied_endpoint,
    url_endpoint,
)
from stackgen.bench.measure import BenchSettings, media_size, run_bench
from stackgen.bench.report import bench_plot, render_table
from stackgen.errors import InvalidInputError, ProblemsFoundError
from stackgen.models import JellyfinNetwork
from stackgen.probe import Target
from stackgen.redaction import redact
from stackgen.stack import Stack


def _reachable(address: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Targets:
    proxied: Endpoint
    direct: Endpoint | None
    cpu: dict[str, Cgroup] = field(default_factory=dict)  # side -> its server's cgroup
    notes: list[str] = field(default_factory=list)  # how the path was chosen
    # `--via both`: the published port too, as the extra side "published" (gap.py).
    published: Endpoint | None = None
    stack: Stack | None = None  # the stack folder's, when one was given
    # What a request crosses after the proxy, where the target adds hops (edge-home's tunnel).
    route: list[str] = field(default_factory=list)


def _proxy_container(stack: Stack) -> tuple[str | None, list[str]]:
    """The running proxy container's id and its IPv4 addresses (none when the target does
    not run it as one container on this machine)."""
    found = stack.target.proxy_container(stack)
    return found if found is not None else (None, [])


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
    via: str = "container",
) -> Targets:
    from stackgen import verify as verifying

    target: Target
    auto_direct: str | None = None
    container_id: str | None = None
    container_addresses: list[str] = []
    stack: Stack | None = None
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
        config = stack.config
        if not config.deploy.runs_proxy:
            raise InvalidInputError(
                f"bench: {directory} runs no proxy (the home side of an edge-home pair): bench "
                "the edge (--side edge), whose clients reach Jellyfin through the tunnel"
            )
        target = verifying.stack_target(stack, timeout=timeout, observed=True, ca_file=ca_file)
        container_id, container_addresses = _proxy_container(stack)
        if config.jellyfin.network_mode is JellyfinNetwork.HOST:
            address = config.connect_address
            if _reachable(address, config.jellyfin.port):
                base = target.base_url.base
                auto_direct = f"http://{address}:{config.jellyfin.port}{base}"
    notes: list[str] = []
    try:
        proxied = proxied_endpoint(target, http2=http2)
        proxied = dataclasses.replace(proxied, path_kind=path_for(proxied.address))
        published: Endpoint | None = None
        if not url and via in ("container", "both"):
            reachable = [a for a in container_addresses if _reachable(a, 443, timeout)]
            if reachable and via == "both":
                published = dataclasses.replace(proxied, name="published")
            if reachable:
                proxied = dataclasses.replace(
                    proxied, address=reachable[0], connect_port=443, path_kind=PATH_CONTAINER
                )
            else:
                notes.append(
                    "the proxy container's address does not answer from here: measuring "
                    f"the published port at {proxied.address} ({proxied.path_kind})"
                )
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
    cpu: dict[str, Cgroup] = {}
    if container_id:
        try:
            cpu["proxied"] = Cgroup(container_id)
        except (OSError, CgroupError) as error:
            notes.append(f"no CPU figures: {error}")
    route = stack.target.client_route(stack) if stack is not None else []
    return Targets(proxied, direct_ep, cpu, notes, published, stack, route)


def cpu_containers(specs: Sequence[str]) -> dict[str, Cgroup]:
    """`--cpu-container SIDE=CONTAINER_ID` (the harness names each side's server)."""
    found: dict[str, Cgroup] = {}
    for spec in specs:
        side, _, cid = spec.partition("=")
        if side not in ("proxied", "direct") or not cid:
            raise InvalidInputError(f"--cpu-container {spec!r}: expected proxied=ID or direct=ID")
        try:
            found[side] = Cgroup(cid)
        except (OSError, CgroupError) as error:
            raise InvalidInputError(f"--cpu-container {spec!r}: {error}") from None
    return found


def expectations(texts: Sequence[str]) -> list[verdict.Expectation]:
    try:
        return [verdict.parse_expectation(text) for text in texts]
    except ValueError as error:
        raise InvalidInputError(str(error)) from None


def run(
    chosen: Targets,
    settings: BenchSettings,
    *,
    as_json: bool,
    plot: Path | None,
    output: Path | None,
    expect: Sequence[verdict.Expectation] = (),
    ceiling_image: str | None = None,
    with_ceiling: bool = False,
) -> dict[str, Any]:
    def progress(message: str) -> None:
        sys.stderr.write(f"bench: {message}\n")
        sys.stderr.flush()

    for note in chosen.notes:
        progress(note)
    progress(f"proxied side: {chosen.proxied.address}:{chosen.proxied.socket_port} "
             f"({chosen.proxied.path_kind})")  # fmt: skip
    route = [
        f"this machine -> {chosen.proxied.address}:{chosen.proxied.socket_port} "
        f"({chosen.proxied.path_kind})",
        *chosen.route,
    ]
    if chosen.route:
        progress(f"path: {' -> '.join(route)}")
    if chosen.direct is None:
        progress("no direct Jellyfin endpoint: measuring the proxied side only")
    extras: dict[str, Endpoint] = {}
    if chosen.published is not None:
        extras[gap.PUBLISHED] = chosen.published
    with contextlib.ExitStack() as cleanup:
        if with_ceiling:
            extras.update(_start_ceiling(chosen, settings, ceiling_image, cleanup, progress))
        try:
            doc = run_bench(chosen.proxied, chosen.direct, settings, progress, chosen.cpu, extras)
        except h1.HttpError as error:  # e.g. a gated stream without a token: one line
            raise ProblemsFoundError(f"bench: {redact(str(error))}") from None
    doc["path"] = route
    checks = verdict.check(doc, expect)
    doc["capacity"] = verdict.capacity_json(doc)
    doc["verdict"] = verdict.verdict_lines(doc)
    doc["expectations"] = [
        {
            "expect": c.expectation.text,
            "measured": c.measured,
            "passed": c.passed,
            "line": c.line(),
        }
        for c in checks
    ]
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
    failed = [c for c in checks if not c.passed]
    if failed:
        failures.append(f"{len(failed)} of {len(checks)} expectation(s) not met: "
                        + ", ".join(c.expectation.text for c in failed))  # fmt: skip
    if failures:
        raise ProblemsFoundError("bench: " + "; ".join(failures))
    return doc


def _start_ceiling(
    chosen: Targets,
    settings: BenchSettings,
    image: str | None,
    cleanup: contextlib.ExitStack,
    progress: Callable[[str], None],
) -> dict[str, Endpoint]:
    """The bare TLS server and its plain-HTTP twin, removed when `cleanup` closes."""
    if chosen.stack is None:
        raise InvalidInputError("--ceiling needs a stack folder (--dir), not --url")
    try:
        size = media_size(chosen.proxied, settings)
    except (OSError, h1.HttpError, TimeoutError) as error:
        raise ProblemsFoundError(f"bench: --ceiling: {redact(str(error))}") from None
    progress(f"ceiling: copying the {size / (1 << 20):.0f} MiB media file into a bare TLS server")
    server = cleanup.enter_context(
        ceiling.ceiling_server(
            chosen.stack, chosen.proxied, media_path=settings.media_path, size=size,
            image=image, timeout=settings.timeout,
        )
    )  # fmt: skip
    try:
        chosen.cpu[gap.CEILING] = Cgroup(server.container_id)
    except (OSError, CgroupError) as error:
        progress(f"no CPU figures for the ceiling: {error}")
    progress(f"ceiling: {server.tls.address}:{server.tls.socket_port} (plain HTTP on "
             f"{server.plain.socket_port}), the stack's certificate and bytes")  # fmt: skip
    return {gap.CEILING: server.tls, gap.PLAIN: server.plain}


def run_every_proxy(
    directory: Path,
    settings: BenchSettings,
    *,
    http2: bool,
    timeout: float,
    as_json: bool,
    output: Path | None,
) -> dict[str, Any]:
    """`--proxies all`: the user's configuration with each proxy, in scratch stacks."""

    def progress(message: str) -> None:
        sys.stderr.write(f"bench: {message}\n")
        sys.stderr.flush()

    def measure(stack: Stack) -> tuple[Endpoint, dict[str, Cgroup]]:
        chosen = targets(
            directory=stack.folder, url=None, resolve=[], ca_file=None, direct=None,
            http2=http2, timeout=timeout, via="container",
        )  # fmt: skip
        for note in chosen.notes:
            progress(f"{stack.config.proxy}: {note}")
        return chosen.proxied, chosen.cpu

    doc = every_proxy.measure_every_proxy(directory, settings, measure=measure, progress=progress)
    text = json.dumps(doc, indent=2) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
    if as_json:
        sys.stdout.write(text)
    else:
        sys.stderr.write("\n".join([*doc["recommendation"], "", *doc["table"]]) + "\n")
    if not any(item["error"] is None for item in doc["proxies"]):
        raise ProblemsFoundError("bench: no proxy could be measured")
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
