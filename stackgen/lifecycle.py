"""A stack's life, whatever runs it: up, reload, down, status, logs.

"Up" means a user could connect: after the target reports every service healthy, stackgen
polls Jellyfin's `/health` *through the proxy over HTTPS*, with the certificate verified.
What differs between targets (how a stack is applied, waited for, removed and reported) is
the target's (`stackgen/targets/`); this module never asks which target it drives.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509

from stackgen.engine import network_subnets, require_engine
from stackgen.errors import DockerError, ProblemsFoundError, UnhealthyError
from stackgen.probe import (
    ProbeError,
    Status,
    handshake,
    insecure_context,
    request,
    verifying_context,
)
from stackgen.proxies.base import WATCH_LATENCY_SECONDS
from stackgen.redaction import redact
from stackgen.stack import Stack, render_dir
from stackgen.stack_checks import check_stack
from stackgen.targets.base import ServiceState, Target, expected_services, holding
from stackgen.verify import stack_target

Progress = Callable[[str], None]


# --- preflight ---------------------------------------------------------------------------


def _subnets_free(stack: Stack) -> None:
    """The proxy network's subnets (IPv4, and IPv6 with `ipv6`) must not overlap another
    Docker network's: the engine would refuse to create it ("Pool overlaps") without
    saying which network holds the range. This stack's own network is fine (re-run)."""
    config = stack.config
    wanted: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = [
        ("network.subnet", config.network.subnet)
    ]
    if config.ipv6 and config.network.subnet6 is not None:
        wanted.append(("network.subnet6", config.network.subnet6))
    for network in network_subnets():
        if network.project == config.project:
            continue
        for field, subnet in wanted:
            for other in network.subnets:
                if other.version == subnet.version and other.overlaps(subnet):
                    raise DockerError(
                        f"{field} {subnet} overlaps Docker network {network.name} ({other}): "
                        f"change {field} or remove that network"
                    )


def _refuse_failed_checks(stack: Stack, progress: Progress) -> None:
    findings = check_stack(stack)
    failures = [f for f in findings if f.status is Status.FAIL]
    for finding in failures:
        progress(f"check failed: {finding.check}: {finding.message}")
    if failures:
        raise ProblemsFoundError(
            f"refusing to start: {failures[0].check}: {failures[0].message}"
            + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
        )


# --- up / reload / down ----------------------------------------------------------------


def up(stack: Stack, *, timeout: int, progress: Progress) -> str:
    """Check, apply and wait: the target's own preflight, then what every target shares
    (free subnets, `check`), the images, the target's apply-and-converge, then Jellyfin
    through the proxy. An interrupt leaves what the target says (`Target.interrupted`)."""
    target = stack.target
    require_engine()
    target.preflight(stack, progress)
    _subnets_free(stack)
    _refuse_failed_checks(stack, progress)
    # After `check`: a config it refuses is never worth a pull.
    target.ensure_images(stack, progress)
    was_running = target.is_running(stack)
    started = time.monotonic()
    try:
        target.apply(stack, timeout=timeout, progress=progress)
        remaining = max(10.0, timeout - (time.monotonic() - started))
        try:
            # A stack without the proxy (one side of a split stack) has no URL of its own.
            if stack.config.deploy.runs_proxy and target.awaits_jellyfin(stack, progress):
                wait_reachable(stack, remaining, progress)
        except UnhealthyError:
            target.explain(stack, progress)
            raise
        target.settle(stack)
    except KeyboardInterrupt:
        raise target.interrupted(stack, was_running=was_running) from None
    return stack.config.public_url


def wait_reachable(stack: Stack, seconds: float, progress: Progress) -> None:
    """Poll `{base}/health` through the proxy over verified HTTPS until it says Healthy."""
    config = stack.config
    target = stack_target(stack, timeout=5.0)
    context = verifying_context(target)
    deadline = time.monotonic() + seconds
    last = "no answer yet"
    announced = False
    while time.monotonic() < deadline:
        try:
            response = request(target, config.health_path, context=context)
        except (ProbeError, ssl.SSLError, OSError) as error:
            last = str(error)
        else:
            if response.status == 200 and response.text().strip() == "Healthy":
                pending = _reload_pending(stack)
                if pending <= 0:
                    return
                # New certificate files were deployed moments ago: this answer may have come
                # from the proxy's new workers while its old ones, with the old certificate,
                # still accept connections. Asked again once the watcher's reload is surely
                # done (CI saw the placeholder served right after `up` returned).
                last = "the proxy is applying a new certificate"
                time.sleep(min(pending, max(0.0, deadline - time.monotonic())))
                continue
            last = f"HTTP {response.status} {response.text().strip()[:60]!r}"
        if not announced:
            progress("waiting for Jellyfin through the proxy over HTTPS (certificate issuance)")
            announced = True
        time.sleep(2)
    raise UnhealthyError(
        f"{config.public_url.rstrip('/')}{config.health_path.removeprefix(config.subpath)} "
        f"not reachable over verified HTTPS within {seconds:.0f} s: {last}"
    )


def _reload_pending(stack: Stack) -> float:
    """Seconds until the proxy's file watcher has surely applied the certificate files
    deployed last (0: none deployed recently, or the proxy swaps certificates itself)."""
    marker = stack.proxy.certificates(stack.config).deployed_marker()
    if marker is None:
        return 0.0
    try:
        deployed = (stack.folder / marker).stat().st_mtime
    except OSError:
        return 0.0
    return max(0.0, deployed + WATCH_LATENCY_SECONDS - time.time())


def reload(stack: Stack, *, force: bool, progress: Progress) -> None:
    """Re-render, then apply what changed with the least disruption the target allows."""
    target = stack.target
    require_engine()
    target.require_deployed(stack)
    outcome = render_dir(stack, force=force, dry_run=False)
    changed = {v.file.path for v in outcome.plan.verdicts if v.writes}
    for verdict in outcome.plan.conflicts:
        progress(f"kept your edit of {verdict.file.path} (--force replaces it)")
    failures = [f for f in check_stack(stack) if f.status is Status.FAIL]
    if failures:
        raise ProblemsFoundError(
            f"not reloading a rejected config: {failures[0].check}: {failures[0].message}"
        )
    target.reload(stack, changed, progress)
    # A side without the proxy (edge-home's home) has nothing to reach; an edge whose home
    # has not dialled in says so instead of waiting.
    if stack.config.deploy.runs_proxy and target.awaits_jellyfin(stack, progress):
        wait_reachable(stack, 120, progress)


def down(stack: Stack, *, volumes: bool) -> None:
    require_engine()
    project, folder = stack.config.project, stack.folder
    if stack.target.holds(project, folder):
        stack.target.remove(project, folder, volumes=volumes)
        return
    # Deployed before deploy.target changed: wherever it runs.
    down_project(project, folder, volumes=volumes)


def down_project(project: str, folder: Path, *, volumes: bool) -> None:
    """By the stack's name alone, so it needs neither the stack file nor stackgen.toml
    (either may be missing or broken): on the target that holds it."""
    require_engine()
    holding(project, folder).remove(project, folder, volumes=volumes)


def logs(stack: Stack, service: str | None, follow: bool) -> Iterator[str]:
    require_engine()
    for line in stack.target.logs(stack, service, follow):
        yield redact(line)  # a proxy's or Jellyfin's log may quote a token


# --- status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    not_after: str
    days_left: int
    verified: bool
    verify_error: str


def served_certificate(stack: Stack) -> CertificateInfo | None:
    target = stack_target(stack, timeout=5.0)
    try:
        info = handshake(target, insecure_context())
    except (ProbeError, ssl.SSLError, OSError):
        return None
    if info.peer_der is None:
        return None
    cert = x509.load_der_x509_certificate(info.peer_der)
    expires = cert.not_valid_after_utc
    verify_error = ""
    try:
        handshake(target, verifying_context(target))
    except (ssl.SSLError, ProbeError, OSError) as error:
        verify_error = str(error)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=expires.isoformat(),
        days_left=(expires - dt.datetime.now(dt.UTC)).days,
        verified=not verify_error,
        verify_error=verify_error,
    )


def _problems(target: Target, states: list[ServiceState], expected: set[str]) -> list[str]:
    seen = {s.service for s in states}
    problems = [f"{name} (no {target.unit})" for name in sorted(expected - seen)]
    problems += [s.problem() for s in states if not s.well]
    if not states and not expected:
        problems.append(f"no {target.unit}s")
    return problems


def status(stack: Stack) -> dict[str, object]:
    config, stack_dir, target = stack.config, stack.folder, stack.target
    require_engine()
    states = target.states(stack)
    problems = _problems(target, states, expected_services(stack_dir))
    proxy_up = any(s.service == stack.proxy.service and s.state == "running" for s in states)
    # While the proxy serves, its certificate is worth showing, whatever Jellyfin's state.
    certificate = served_certificate(stack) if proxy_up else None
    trust = config.client_trust_file
    extra = target.report(stack)
    reported = extra.pop("problems", [])
    if isinstance(reported, list):
        problems += [str(p) for p in reported]
    return {
        "project": config.project,
        "stack_dir": str(stack_dir),
        "proxy": config.proxy,
        "target": config.deploy.target,
        "url": config.public_url,
        "running": bool(states) and all(s.state == "running" for s in states),
        "healthy": not problems,
        "problems": problems,
        "services": [asdict(s) for s in states],
        "certificate": asdict(certificate) if certificate else None,
        "trust_file": (
            str((stack_dir / trust).resolve()) if trust and config.deploy.runs_proxy else None
        ),
        "target_state": extra,
    }


def status_project(project: str, folder: Path, why: str) -> dict[str, object]:
    """Status from the project name alone, when stackgen.toml cannot be read (`why`): the
    services and their health; the URL and certificate are unknown."""
    require_engine()
    target = holding(project, folder)
    states = target.project_states(project, folder)
    problems = _problems(target, states, expected_services(folder))
    return {
        "project": project,
        "stack_dir": str(folder),
        "proxy": None,
        "url": None,
        "running": bool(states) and all(s.state == "running" for s in states),
        "healthy": not problems,
        "problems": problems,
        "services": [asdict(s) for s in states],
        "certificate": None,
        "trust_file": None,
        "config_error": why,
    }
