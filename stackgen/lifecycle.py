"""A stack's life on this machine: up, down, status, logs.

"Up" means a user could connect: after Compose reports every service healthy, stackgen
polls Jellyfin's `/health` *through the proxy over HTTPS*, with the certificate verified.
"""

from __future__ import annotations

import datetime as dt
import errno
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from cryptography import x509

from stackgen.engine import DockerException, containers_publishing, image_present, require_engine
from stackgen.errors import DockerError, ProblemsFoundError, UnhealthyError
from stackgen.models import JellyfinNetwork
from stackgen.probe import (
    ProbeError,
    Status,
    handshake,
    insecure_context,
    request,
    verifying_context,
)
from stackgen.process import run
from stackgen.reloading import ProxyAction, plan_reload
from stackgen.stack import Stack, render_dir
from stackgen.stack_checks import check_stack
from stackgen.verify import stack_target

Progress = Callable[[str], None]
LOG_LINES_ON_FAILURE = 25


# --- preflight ---------------------------------------------------------------------------


def _port_holder(port: int) -> str:
    """Best effort: which container or process publishes/listens on a TCP port."""
    try:
        names = containers_publishing(port)
    except DockerException:
        names = []
    if names:
        return f"container {names[0]}"
    ss = run(["ss", "-Hltnp", f"sport = :{port}"], check=False, timeout=10)
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', ss.stdout)
    return f"{match.group(1)} (pid {match.group(2)})" if match else "another process"


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _own_containers(stack: Stack) -> list[str]:
    try:
        return [c.name for c in stack.compose.compose.ps(all=True)]
    except DockerException:
        return []


def preflight(stack: Stack, progress: Progress) -> None:
    config = stack.config
    require_engine()
    own = _own_containers(stack)
    ports = [("ports.https", config.ports.https)]
    if config.publishes_http:
        ports.insert(0, ("ports.http", config.ports.http))
    if config.jellyfin.network_mode is JellyfinNetwork.HOST:
        ports.append(("jellyfin.port", config.jellyfin.port))
    address = str(config.ports.listen_address)
    for field, port in ports:
        if _port_free(address, port):
            continue
        holder = _port_holder(port)
        if any(holder == f"container {name}" for name in own):
            continue  # our own stack, already running: `up` is re-runnable
        raise DockerError(f"port {port} ({field}) is in use by {holder}: free it or change {field}")
    for image in (stack.proxy.image(config), config.jellyfin.image):
        if not image_present(image):
            progress(f"image {image} is not present locally: Compose will pull it")
    findings = check_stack(stack)
    failures = [f for f in findings if f.status is Status.FAIL]
    for finding in failures:
        progress(f"check failed: {finding.check}: {finding.message}")
    if failures:
        raise ProblemsFoundError(
            f"refusing to start: {failures[0].check}: {failures[0].message}"
            + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
        )


# --- up / down -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceState:
    service: str
    container: str
    state: str
    health: str
    ports: list[str]


def services(stack: Stack) -> list[ServiceState]:
    states = []
    for container in stack.compose.compose.ps(all=True):
        labels = container.config.labels or {}
        health = container.state.health.status if container.state.health else "none"
        ports = [
            f"{binding.get('HostIp', '')}:{binding.get('HostPort', '')}->{inner}"
            for inner, bindings in (container.network_settings.ports or {}).items()
            for binding in (bindings or [])
        ]
        states.append(
            ServiceState(
                service=labels.get("com.docker.compose.service", container.name),
                container=container.name,
                state=str(container.state.status),
                health=str(health),
                ports=ports,
            )
        )
    return sorted(states, key=lambda s: s.service)


def recent_logs(stack: Stack, service: str, lines: int) -> str:
    try:
        return str(stack.compose.compose.logs([service], tail=str(lines), no_log_prefix=True))
    except DockerException as error:
        return f"(no logs: {error})"


def _explain_failure(stack: Stack, progress: Progress) -> str:
    try:
        states = services(stack)
    except DockerException:
        states = []
    bad = [s for s in states if s.state != "running" or s.health not in ("healthy", "none")]
    for state in bad or states:
        progress(f"--- {state.service}: {state.state}, health {state.health}; last log lines:")
        progress(recent_logs(stack, state.service, LOG_LINES_ON_FAILURE))
    return ", ".join(f"{s.service} ({s.state}, {s.health})" for s in bad) or "unknown"


def up(stack: Stack, *, timeout: int, progress: Progress) -> str:
    config = stack.config
    preflight(stack, progress)
    client = stack.compose
    progress(f"starting {config.project} (waiting up to {timeout} s for healthchecks)")
    started = time.monotonic()
    try:
        client.compose.up(detach=True, wait=True, wait_timeout=timeout, remove_orphans=True)
    except DockerException as error:
        names = _explain_failure(stack, progress)
        detail = " ".join(str(error.stderr or "").split())[-200:]
        raise UnhealthyError(
            f"the stack did not become healthy: {names}; re-run `stackgen up` after fixing"
            + (f" ({detail})" if detail else "")
        ) from None
    remaining = max(10.0, timeout - (time.monotonic() - started))
    try:
        wait_reachable(stack, remaining, progress)
    except UnhealthyError:
        _explain_failure(stack, progress)
        raise
    return config.public_url


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
                return
            last = f"HTTP {response.status} {response.text().strip()[:60]!r}"
        if not announced:
            progress("waiting for Jellyfin through the proxy over HTTPS (certificate issuance)")
            announced = True
        time.sleep(2)
    raise UnhealthyError(
        f"{config.public_url.rstrip('/')}{config.health_path.removeprefix(config.subpath)} "
        f"not reachable over verified HTTPS within {seconds:.0f} s: {last}"
    )


def reload(stack: Stack, *, force: bool, progress: Progress) -> None:
    """Re-render, then apply what changed with the least disruption (see reloading.py)."""
    require_engine()
    if not any(s.state == "running" for s in services(stack)):
        raise ProblemsFoundError(f"{stack.config.project} is not running: use `stackgen up`")
    outcome = render_dir(stack, force=force, dry_run=False)
    changed = {v.file.path for v in outcome.plan.verdicts if v.writes}
    for verdict in outcome.plan.conflicts:
        progress(f"kept your edit of {verdict.file.path} (--force replaces it)")
    failures = [f for f in check_stack(stack) if f.status is Status.FAIL]
    if failures:
        raise ProblemsFoundError(
            f"not reloading a rejected config: {failures[0].check}: {failures[0].message}"
        )
    plan = plan_reload(stack.proxy, stack.config, changed)
    client = stack.compose
    service = stack.proxy.service
    try:
        if plan.recreate:
            progress("docker-compose.yml changed: recreating the services it changes")
            client.compose.up(detach=True, wait=True, wait_timeout=180, remove_orphans=True)
        if plan.restart_jellyfin:
            progress("network.xml changed: restarting Jellyfin (it reads it at start only)")
            client.compose.restart(["jellyfin"])
        if plan.proxy is ProxyAction.RESTART:
            progress(f"{service}: restarting (this change needs a restart)")
            client.compose.restart([service])
        elif plan.proxy is ProxyAction.RELOAD and plan.reload_command is not None:
            progress(f"{service}: graceful reload ({' '.join(plan.reload_command)})")
            client.compose.execute(service, list(plan.reload_command), tty=False)
        else:
            progress(f"{service}: picks up its changed files by itself")
    except DockerException as error:
        raise DockerError(
            f"reload failed: {' '.join(str(error.stderr or error).split())}"
        ) from None
    wait_reachable(stack, 120, progress)


def down(stack: Stack, *, volumes: bool) -> None:
    require_engine()
    try:
        stack.compose.compose.down(remove_orphans=True, volumes=volumes, timeout=20)
    except DockerException as error:
        raise DockerError(f"docker compose down failed: {error.stderr or error}") from None


def logs(stack: Stack, service: str | None, follow: bool) -> Iterator[str]:
    require_engine()
    client = stack.compose
    chosen = [service] if service else []
    try:
        for _source, line in client.compose.logs(chosen, follow=follow, stream=True):
            yield line.decode("utf-8", "replace")
    except DockerException as error:
        raise DockerError(f"docker compose logs failed: {error.stderr or error}") from None


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


def status(stack: Stack) -> dict[str, object]:
    config, stack_dir = stack.config, stack.folder
    require_engine()
    states = services(stack)
    running = bool(states) and all(s.state == "running" for s in states)
    certificate = served_certificate(stack) if running else None
    trust = config.client_trust_file
    return {
        "project": config.project,
        "stack_dir": str(stack_dir),
        "proxy": config.proxy,
        "url": config.public_url,
        "running": running,
        "healthy": running and all(s.health in ("healthy", "none") for s in states),
        "services": [asdict(s) for s in states],
        "certificate": asdict(certificate) if certificate else None,
        "trust_file": str((stack_dir / trust).resolve()) if trust else None,
    }
