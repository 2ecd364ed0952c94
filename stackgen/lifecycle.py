"""A stack's life on this machine: up, down, status, logs.

"Up" means a user could connect: after Compose reports every service healthy, stackgen
polls Jellyfin's `/health` *through the proxy over HTTPS*, with the certificate verified.
"""

from __future__ import annotations

import datetime as dt
import errno
import ipaddress
import re
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509

from stackgen import swarm_ops
from stackgen.engine import (
    DockerClient,
    DockerException,
    compose_images,
    containers_publishing,
    image_present,
    network_subnets,
    project_client,
    pull_image,
    require_engine,
)
from stackgen.engine import prune_stack_objects as engine_prune
from stackgen.errors import DockerError, ProblemsFoundError, StackInterrupted, UnhealthyError
from stackgen.integrity import compose_services
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
from stackgen.redaction import redact
from stackgen.reloading import ProxyAction, plan_reload
from stackgen.render import COMPOSE_FILE
from stackgen.stack import Stack, render_dir
from stackgen.stack_checks import check_stack
from stackgen.verify import stack_target

Progress = Callable[[str], None]
LOG_LINES_ON_FAILURE = 25


# --- preflight ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Holder:
    description: str  # "container NAME", "PROGRAM (pid N)" or "another process"
    container: str | None = None
    pid: int | None = None


def _port_holder(port: int) -> _Holder:
    """Best effort: which container or process publishes/listens on a TCP port."""
    try:
        names = containers_publishing(port)
    except DockerException:
        names = []
    if names:
        return _Holder(f"container {names[0]}", container=names[0])
    ss = run(["ss", "-Hltnp", f"sport = :{port}"], check=False, timeout=10)
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', ss.stdout)
    if match is None:
        return _Holder("another process")
    return _Holder(f"{match.group(1)} (pid {match.group(2)})", pid=int(match.group(2)))


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


@dataclass(frozen=True)
class _Own:
    names: frozenset[str]
    pids: frozenset[int]  # the main process of each running container


def _own_containers(stack: Stack) -> _Own:
    try:
        containers = stack.compose.compose.ps(all=True)
    except DockerException:
        return _Own(frozenset(), frozenset())
    return _Own(
        frozenset(c.name for c in containers),
        frozenset(int(c.state.pid) for c in containers if c.state.pid),
    )


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name may hold spaces or parentheses: the fields follow the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else None


def runs_in(pid: int, roots: frozenset[int]) -> bool:
    """Whether a process is one of `roots` or descends from one: a host-network container
    publishes nothing, so its listening process is told apart by its ancestry."""
    current: int | None = pid
    for _ in range(64):  # a process tree is never this deep; a pid cycle cannot loop us
        if current is None or current <= 1:
            return False
        if current in roots:
            return True
        current = _parent(current)
    return False


def _held_by_us(holder: _Holder, own: _Own) -> bool:
    if holder.container is not None:
        return holder.container in own.names
    return holder.pid is not None and runs_in(holder.pid, own.pids)


def _ensure_images(stack: Stack, progress: Progress) -> None:
    """Name a missing image before anything starts, instead of a half-started stack that
    never becomes healthy."""
    images = compose_images(stack.compose) or [stack.proxy.image(stack.config)]
    for image in images:
        if image_present(image):
            continue
        progress(f"image {image} is not present locally: pulling it")
        problem = pull_image(image)
        if problem:
            raise DockerError(
                f"image {image} is not present locally and cannot be pulled: {problem}"
            )


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


def preflight(stack: Stack, progress: Progress) -> None:
    require_engine()
    _require_free_ports(stack, _own_containers(stack))
    _subnets_free(stack)
    _refuse_failed_checks(stack, progress)
    # After `check`: a config it refuses is never worth a pull.
    _ensure_images(stack, progress)


def _require_free_ports(stack: Stack, own: _Own) -> None:
    config = stack.config
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
        if _held_by_us(holder, own):
            continue  # our own stack, already running: `up` is re-runnable
        raise DockerError(
            f"port {port} ({field}) is in use by {holder.description}: free it or change {field}"
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


# --- up / down -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceState:
    service: str
    container: str
    state: str
    health: str
    ports: list[str]


def services(stack: Stack, client: DockerClient | None = None) -> list[ServiceState]:
    """The project's containers as the engine reports them (`client`: the project-only
    client when the compose file cannot be read)."""
    return _states(client or stack.compose)


def _states(client: DockerClient) -> list[ServiceState]:
    states = []
    for container in client.compose.ps(all=True):
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


def _is_well(state: ServiceState) -> bool:
    return state.state == "running" and state.health in ("healthy", "none")


def recent_logs(stack: Stack, service: str, lines: int) -> str:
    try:
        text = str(stack.compose.compose.logs([service], tail=str(lines), no_log_prefix=True))
    except DockerException as error:
        return f"(no logs: {redact(str(error))})"
    return redact(text)  # a proxy's or Jellyfin's log may quote a token


def _explain_failure(stack: Stack, progress: Progress) -> str:
    try:
        states = services(stack)
    except DockerException:
        states = []
    bad = [s for s in states if not _is_well(s)]
    for state in bad or states:
        progress(f"--- {state.service}: {state.state}, health {state.health}; last log lines:")
        progress(recent_logs(stack, state.service, LOG_LINES_ON_FAILURE))
    return ", ".join(f"{s.service} ({s.state}, {s.health})" for s in bad)


def up(stack: Stack, *, timeout: int, progress: Progress) -> str:
    config = stack.config
    if config.deploy.swarm:
        _up_swarm(stack, timeout=timeout, progress=progress)
        return config.public_url
    preflight(stack, progress)
    try:
        was_running = any(s.state == "running" for s in services(stack))
    except DockerException:
        was_running = False
    try:
        _start(stack, timeout=timeout, progress=progress)
    except KeyboardInterrupt:
        raise _stop_after_interrupt(stack, was_running=was_running) from None
    return config.public_url


def _start(stack: Stack, *, timeout: int, progress: Progress) -> None:
    client = stack.compose
    progress(f"starting {stack.config.project} (waiting up to {timeout} s for healthchecks)")
    started = time.monotonic()
    try:
        # An interrupt here kills `docker compose up` (subprocess.run does on any
        # exception), so no orphan keeps starting the stack after stackgen is gone.
        client.compose.up(detach=True, wait=True, wait_timeout=timeout, remove_orphans=True)
    except DockerException as error:
        names = _explain_failure(stack, progress)
        detail = " ".join(str(error.stderr or "").split())[-200:]
        if not names:
            # Nothing is unhealthy: Compose itself failed (a container it could not create).
            raise DockerError(
                f"docker compose up failed: {detail or f'exit {error.return_code}'}"
            ) from None
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


def _up_swarm(stack: Stack, *, timeout: int, progress: Progress) -> None:
    """`docker stack deploy`, then the same wait as Compose's: healthy tasks, then Jellyfin
    through the proxy over verified HTTPS."""
    project = stack.config.project
    require_engine()
    swarm_ops.require_manager()
    swarm_ops.require_labelled_nodes()
    was_running = swarm_ops.is_deployed(project)
    if swarm_ops.local_node_is_edge():
        swarm_ops.require_known_gateway(stack)
        if not was_running:
            # The proxy may land here: its mode-host ports must be free on this machine.
            _require_free_ports(stack, _Own(frozenset(), frozenset()))
    _subnets_free(stack)
    _refuse_failed_checks(stack, progress)
    # The nodes that run the services need the images, not this manager: a missing one is
    # only named here, and a node that cannot get it fails its task with the reason.
    for image in compose_images(stack.compose):
        if not image_present(image):
            progress(f"image {image} is not on this node: the nodes that run it need it")
    progress(f"deploying {project} to the swarm (waiting up to {timeout} s for healthchecks)")
    started = time.monotonic()
    earlier = swarm_ops.task_ids(project)
    try:
        swarm_ops.deploy(stack)
        swarm_ops.wait_converged(stack, timeout, progress, earlier)
        if swarm_ops.local_node_is_edge():
            # The first task on this node may have just made docker_gwbridge.
            swarm_ops.require_known_gateway(stack)
        remaining = max(10.0, timeout - (time.monotonic() - started))
        try:
            wait_reachable(stack, remaining, progress)
        except UnhealthyError:
            progress(f"--- {stack.proxy.service}: last log lines:")
            progress(
                redact(swarm_ops.recent_logs(project, stack.proxy.service, LOG_LINES_ON_FAILURE))
            )
            raise
        engine_prune(project)
    except KeyboardInterrupt:
        if was_running:
            raise StackInterrupted(
                f"interrupted: {project} was already deployed and is left running; "
                "re-run `stackgen up` to finish the update"
            ) from None
        swarm_ops.remove(project)
        raise StackInterrupted(
            f"interrupted: removed what `up` had deployed of {project}"
        ) from None


def _stop_after_interrupt(stack: Stack, *, was_running: bool) -> StackInterrupted:
    """What an interrupted `up` leaves: the stack as it was when it was already running
    (an update cut short is finished by the next `up`), nothing when `up` started it."""
    project = stack.config.project
    if was_running:
        return StackInterrupted(
            f"interrupted: {project} was already running and is left running; "
            "re-run `stackgen up` to finish the update"
        )
    # A second Ctrl-C or SIGTERM must not cut the clean-up short.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
    try:
        stack.compose.compose.down(remove_orphans=True, timeout=5)
    except DockerException as error:
        detail = " ".join(str(error.stderr or error).split())[-200:]
        return StackInterrupted(
            f"interrupted: stopping what `up` had started failed ({detail}); "
            f"run `stackgen down --dir {stack.folder}`"
        )
    finally:
        if in_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return StackInterrupted(f"interrupted: stopped and removed what `up` had started of {project}")


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
    if stack.config.deploy.swarm:
        _reload_swarm(stack, force=force, progress=progress)
        return
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


def _reload_swarm(stack: Stack, *, force: bool, progress: Progress) -> None:
    """Re-render and deploy again: a changed file has a new config name, so the swarm
    replaces exactly the services that mount it (and Jellyfin when network.xml changed)."""
    project = stack.config.project
    require_engine()
    swarm_ops.require_manager()
    if not swarm_ops.is_deployed(project):
        raise ProblemsFoundError(f"{project} is not deployed: use `stackgen up`")
    outcome = render_dir(stack, force=force, dry_run=False)
    for verdict in outcome.plan.conflicts:
        progress(f"kept your edit of {verdict.file.path} (--force replaces it)")
    failures = [f for f in check_stack(stack) if f.status is Status.FAIL]
    if failures:
        raise ProblemsFoundError(
            f"not reloading a rejected config: {failures[0].check}: {failures[0].message}"
        )
    before = swarm_ops.running_tasks(project)
    progress("deploying the re-rendered stack: the swarm replaces what changed")
    earlier = swarm_ops.task_ids(project)
    swarm_ops.deploy(stack)
    swarm_ops.wait_converged(stack, 180, progress, earlier)
    after = swarm_ops.running_tasks(project)
    rolled = sorted(name for name, task in after.items() if before.get(name) != task)
    progress(f"replaced: {', '.join(rolled)}" if rolled else "nothing changed: no task replaced")
    engine_prune(project)
    wait_reachable(stack, 120, progress)


def down(stack: Stack, *, volumes: bool) -> None:
    require_engine()
    down_project(stack.config.project, stack.folder, volumes=volumes)


def down_project(project: str, folder: Path, *, volumes: bool) -> None:
    """`docker compose -p PROJECT down`: by the project's labels, so it needs neither the
    compose file nor stackgen.toml (either may be missing or broken)."""
    require_engine()
    if swarm_ops.is_deployed(project):
        swarm_ops.remove(project)
        return
    try:
        project_client(project, folder).compose.down(
            remove_orphans=True, volumes=volumes, timeout=20
        )
    except DockerException as error:
        raise DockerError(f"docker compose down failed: {error.stderr or error}") from None


def logs(stack: Stack, service: str | None, follow: bool) -> Iterator[str]:
    require_engine()
    if stack.config.deploy.swarm:
        chosen_services = (
            [service] if service else sorted(swarm_ops.expected_services(stack.folder))
        )
        try:
            for line in swarm_ops.logs(stack.config.project, chosen_services, follow):
                yield redact(line)
        except DockerException as error:
            raise DockerError(f"docker service logs failed: {error.stderr or error}") from None
        return
    client = stack.compose
    chosen = [service] if service else []
    try:
        for _source, line in client.compose.logs(chosen, follow=follow, stream=True):
            yield redact(line.decode("utf-8", "replace"))
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


def _expected_services(folder: Path) -> set[str]:
    """The services the compose file on disk declares (empty when it is missing)."""
    try:
        return compose_services((folder / COMPOSE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return set()


def _problems(states: list[ServiceState], expected: set[str]) -> list[str]:
    seen = {s.service for s in states}
    problems = [f"{name} (no container)" for name in sorted(expected - seen)]
    problems += [f"{s.service} ({s.state}, health {s.health})" for s in states if not _is_well(s)]
    if not states and not expected:
        problems.append("no containers")
    return problems


def status(stack: Stack) -> dict[str, object]:
    config, stack_dir = stack.config, stack.folder
    require_engine()
    if config.deploy.swarm:
        return _status_swarm(stack)
    try:
        states = services(stack)
    except DockerException:
        # A missing or broken compose file: the containers are still found by the project.
        states = services_of_project(config.project, stack_dir)
    problems = _problems(states, _expected_services(stack_dir))
    proxy_up = any(s.service == stack.proxy.service and s.state == "running" for s in states)
    # While the proxy serves, its certificate is worth showing, whatever Jellyfin's state.
    certificate = served_certificate(stack) if proxy_up else None
    trust = config.client_trust_file
    return {
        "project": config.project,
        "stack_dir": str(stack_dir),
        "proxy": config.proxy,
        "url": config.public_url,
        "running": bool(states) and all(s.state == "running" for s in states),
        "healthy": not problems,
        "problems": problems,
        "services": [asdict(s) for s in states],
        "certificate": asdict(certificate) if certificate else None,
        "trust_file": str((stack_dir / trust).resolve()) if trust else None,
    }


def _status_swarm(stack: Stack) -> dict[str, object]:
    config = stack.config
    try:
        tasks = swarm_ops.states(stack)
    except DockerException as error:
        raise DockerError(f"cannot read the swarm's tasks: {error.stderr or error}") from None
    expected = swarm_ops.expected_services(stack.folder)
    seen = {t.service for t in tasks}
    problems = [f"{name} (no service)" for name in sorted(expected - seen)]
    problems += [
        f"{t.service} ({t.state}{': ' + t.error if t.error else ''})"
        for t in tasks
        if t.state != "running"
    ]
    if not tasks and not expected:
        problems.append("no services")
    proxy_up = any(t.service == stack.proxy.service and t.state == "running" for t in tasks)
    certificate = served_certificate(stack) if proxy_up else None
    trust = config.client_trust_file
    return {
        "project": config.project,
        "stack_dir": str(stack.folder),
        "proxy": config.proxy,
        "target": config.deploy.target.value,
        "url": config.public_url,
        "running": bool(tasks) and all(t.state == "running" for t in tasks),
        "healthy": not problems,
        "problems": problems,
        "services": [asdict(t) for t in tasks],
        "certificate": asdict(certificate) if certificate else None,
        "trust_file": str((stack.folder / trust).resolve()) if trust else None,
    }


def status_project(project: str, folder: Path, why: str) -> dict[str, object]:
    """Status from the project name alone, when stackgen.toml cannot be read (`why`): the
    containers and their health; the URL and certificate are unknown."""
    require_engine()
    if swarm_ops.is_deployed(project):
        tasks = swarm_ops.project_states(project)
        states = [ServiceState(t.service, t.container, t.state, t.health, t.ports) for t in tasks]
    else:
        states = services_of_project(project, folder)
    problems = _problems(states, _expected_services(folder))
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


def services_of_project(project: str, folder: Path) -> list[ServiceState]:
    return _states(project_client(project, folder))
