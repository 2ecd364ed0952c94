"""`stackgen bench --proxies all`: the user's own configuration with each proxy, measured
on this machine, one scratch stack at a time.

Each scratch stack is rendered from the user's stackgen.toml with `proxy` changed, in a
scratch folder; the user's folder and stack are never written to or stopped. So that it can
run beside the user's stack, a scratch stack also gets its own name, free published ports
on 127.0.0.1 (never exposed to the LAN), a free subnet, Jellyfin's port and folders of its
own (a fresh configuration: the user's Jellyfin configuration is never shared with a
second Jellyfin) and the media folders read-only: none of these is on the measured data
path between the client and the proxy. It is brought up with `stackgen up`'s own steps,
measured like `stackgen bench --dir`, then removed with its volumes; the scratch folder
is deleted at the end, on failure and on Ctrl-C (or SIGTERM, which the CLI turns into one).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stackgen import engine, lifecycle
from stackgen.allocate import AllocationError, Allocator
from stackgen.bench import ranking, verdict
from stackgen.bench.measure import BenchSettings, run_bench
from stackgen.bench.schema import COMPARISON_SCHEMA
from stackgen.config_file import build_config
from stackgen.errors import InvalidInputError, StackgenError
from stackgen.models import TlsMode
from stackgen.proxies import available
from stackgen.redaction import redact
from stackgen.stack import Stack, init_stack, own_certificate

# Scratch stacks' subnets: a range stackgen's own tests do not allocate from.
SCRATCH_POOL = ipaddress.IPv4Network("172.28.0.0/16")
PROJECT_PREFIX = "stackgen-bench-"
UP_TIMEOUT_S = 300

Progress = Callable[[str], None]


def _absolute(folder: Path, path: str | None) -> str | None:
    if path is None or Path(path).is_absolute():
        return path
    return str((folder / path).resolve())


def scratch_data(
    user: Stack, proxy: str, *, project: str, subnet: str, ports: tuple[int, int, int]
) -> dict[str, Any]:
    """The user's configuration with `proxy` changed, and what a stack beside the user's
    needs of its own (name, ports: HTTP, HTTPS and Jellyfin's, subnet, Jellyfin's
    folders)."""
    http, https, jellyfin_port = ports
    data = user.config.model_dump(mode="json", exclude_none=True)
    data["proxy"] = proxy
    data["project"] = project
    data["ports"].update({"http": http, "https": https, "listen_address": "127.0.0.1"})
    data["network"]["subnet"] = subnet
    for derived in ("proxy_address", "subnet6"):  # pinned inside the user's subnet
        data["network"].pop(derived, None)
    jellyfin = data["jellyfin"]
    jellyfin["port"] = jellyfin_port
    jellyfin["config_dir"], jellyfin["cache_dir"] = "jellyfin/config", "jellyfin/cache"
    for media in jellyfin.get("media", []):
        media["source"] = _absolute(user.folder, media["source"])
        media["read_only"] = True
    tls = data["tls"]
    for key in ("cert_file", "key_file", "ca_bundle", "trust_bundle"):
        if tls.get(key) is not None:
            tls[key] = _absolute(user.folder, tls[key])
    return data


def _refusals(user: Stack) -> None:
    config = user.config
    if config.tls.mode.is_acme or config.tls.mode not in (TlsMode.INTERNAL, TlsMode.FILES):
        raise InvalidInputError(
            "--proxies all needs tls.mode internal or files: a scratch stack must not ask "
            "an ACME CA for certificates"
        )


@contextlib.contextmanager
def _scratch_stack(user: Stack, proxy: str, root: Path, progress: Progress) -> Iterator[Stack]:
    folder = root / proxy
    project = f"{PROJECT_PREFIX}{proxy}-{os.getpid()}"
    # Claimed, not merely found free: two benches (or a test run) on one engine would
    # otherwise pick the same subnet between looking and Compose creating the network.
    claims = Allocator(pool=SCRATCH_POOL)
    try:
        subnet = claims.subnet(project)
        http, https, jellyfin_port = claims.ports(3, project)
    except AllocationError as exc:
        claims.release(project)
        raise InvalidInputError(f"--proxies all: {exc}") from None
    try:
        data = scratch_data(
            user, proxy, project=project, subnet=str(subnet), ports=(http, https, jellyfin_port)
        )
        config, state = own_certificate(build_config(data, folder), folder)
        stack = Stack(config, folder)
        init_stack(stack, force=False, dry_run=False, state=state)
        stack = Stack.load(folder)
    except BaseException:
        claims.release(project)
        raise
    try:
        progress(f"{proxy}: stackgen up (scratch stack {project})")
        lifecycle.up(stack, timeout=UP_TIMEOUT_S, progress=lambda m: progress(f"{proxy}: {m}"))
        yield stack
    finally:
        progress(f"{proxy}: removing the scratch stack")
        with contextlib.suppress(StackgenError, engine.DockerException):
            lifecycle.down(stack, volumes=True)
        claims.release(project)


def measure_every_proxy(
    user_folder: Path,
    settings: BenchSettings,
    *,
    measure: Callable[[Stack], tuple[Any, Any]],
    progress: Progress,
    proxies: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Each proxy in turn; `measure(stack)` gives (proxied endpoint, its cgroups)."""
    user = Stack.load(user_folder)
    _refusals(user)
    # The pid names the run, as in the scratch projects: leftovers say whose they are.
    root = Path(tempfile.mkdtemp(prefix=f"stackgen-bench-proxies-{os.getpid()}-"))
    standings: list[ranking.Standing] = []
    documents: dict[str, Any] = {}
    try:
        for proxy in proxies or tuple(available()):
            try:
                with _scratch_stack(user, proxy, root, progress) as stack:
                    proxied, cpu = measure(stack)
                    doc = run_bench(proxied, None, settings, progress, cpu)
                doc["capacity"] = verdict.capacity_json(doc)
                doc["verdict"] = verdict.verdict_lines(doc)
                doc["expectations"] = []
                documents[proxy] = doc
                standings.append(ranking.standing(proxy, doc))
            except StackgenError as error:
                message = redact(str(error)).splitlines()[0][:300]
                progress(f"{proxy}: not measured: {message}")
                documents[proxy] = None
                standings.append(ranking.standing(proxy, None, f"not measured: {message}"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "schema": COMPARISON_SCHEMA,
        "proxies": ranking.to_json(standings),
        "recommendation": ranking.recommendation(standings),
        "table": ranking.table(standings),
        "runs": documents,
    }
