"""The swarm target's operations on the engine: the swarm's own preflight (membership,
node labels), deploy and wait until the stack converged, remove, state and logs; `Swarm`
puts them behind the `Target` contract.

A task reaches the state `running` only once its healthcheck passed (the engine's executor
waits for it), so "every service has one running task and no update in progress" is the
swarm's "healthy".
"""

from __future__ import annotations

import ipaddress
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stackgen import engine
from stackgen.engine import DockerException, SwarmTask
from stackgen.errors import (
    DockerError,
    InvalidInputError,
    ProblemsFoundError,
    StackInterrupted,
    UnhealthyError,
)
from stackgen.models import JellyfinNetwork
from stackgen.redaction import redact
from stackgen.render import COMPOSE_FILE
from stackgen.stack import Stack
from stackgen.targets.base import (
    LOG_LINES_ON_FAILURE,
    Progress,
    ServiceState,
    Target,
    expected_services,
)
from stackgen.targets.ports import Own, require_free_ports
from stackgen.targets.swarm.config import EDGE_LABEL, MEDIA_LABEL, SwarmDeploy

POLL_S = 1.0
# After `docker stack deploy` returns, the orchestrator starts updates asynchronously: the
# state must hold for this long before it counts as converged.
SETTLE_S = 3.0
REMOVE_TIMEOUT_S = 90.0
FAILED_UPDATES = ("paused", "rollback_started", "rollback_paused", "rollback_completed")
# A service whose new tasks failed this often will not get better by waiting (a bind source
# missing on its node, an image absent there, a crash at start): `up` says why at once. The
# engine keeps 5 tasks per slot by default, so the count must stay below that.
GIVE_UP_AFTER_FAILURES = 4


def _one_line(error: DockerException) -> str:
    return " ".join(str(error.stderr or error).split())[-300:]


def require_manager() -> None:
    """This engine must be a manager of an active swarm: only a manager deploys."""
    try:
        membership = engine.swarm_membership()
    except DockerException as error:
        raise DockerError(f"cannot ask the engine about its swarm: {_one_line(error)}") from None
    if membership.state != "active":
        raise DockerError(
            f"this Docker engine is not in a swarm (state {membership.state}): run "
            "`docker swarm init --advertise-addr ADDRESS`, or deploy from a manager node"
        )
    if not membership.manager:
        raise DockerError(
            "this node is a swarm worker: run stackgen on a manager node (`docker node ls` "
            "there lists the nodes)"
        )


def require_labelled_nodes() -> None:
    """A ready, active node for each role (one node may carry both labels)."""
    nodes = engine.swarm_nodes()
    for role, label in (("edge", EDGE_LABEL), ("media", MEDIA_LABEL)):
        labelled = [n for n in nodes if n.labels.get(label) == "true"]
        if not labelled:
            raise DockerError(
                f"no swarm node carries the label {label}=true (the {role} node): "
                f"docker node update --label-add {label}=true NODE"
            )
        if not any(n.ready and n.active for n in labelled):
            names = ", ".join(n.hostname for n in labelled)
            raise DockerError(
                f"the {role} node ({names}, label {label}=true) is drained, paused or down: "
                "`docker node update --availability active NODE`, or label another node"
            )


def require_known_gateway(stack: Stack) -> None:
    """A host-network Jellyfin on this node sees the proxy of this node come from
    docker_gwbridge: KnownProxies must name that bridge's real subnet."""
    if stack.config.jellyfin.network_mode is not JellyfinNetwork.HOST:
        return
    subnet = engine.gateway_bridge_subnet()
    if subnet is None:
        return
    known = [ipaddress.IPv4Network(k, strict=False) for k in stack.config.known_proxies]
    network = ipaddress.IPv4Network(subnet, strict=False)
    if not any(network.subnet_of(k) for k in known):
        raise InvalidInputError(
            f"docker_gwbridge is {subnet} on this node, which KnownProxies does not name: "
            f'set deploy.gateway_subnet = "{subnet}" in stackgen.toml and run `stackgen render`'
        )


def local_node_is_edge() -> bool:
    """Whether this node can run the proxy (then its published ports are on this machine)."""
    me = engine.swarm_membership().node_id
    return any(n.id == me and n.labels.get(EDGE_LABEL) == "true" for n in engine.swarm_nodes())


def is_deployed(project: str) -> bool:
    try:
        return bool(engine.stack_services(project))
    except DockerException:
        return False


def running_tasks(project: str) -> dict[str, str]:
    """service -> id of its running task (one replica each)."""
    return {
        t.service: t.id
        for t in engine.stack_tasks(project)
        if t.desired == "running" and t.state == "running"
    }


def _current(tasks: list[SwarmTask]) -> dict[str, SwarmTask]:
    """The task each service is working on: the one meant to run, else the latest."""
    current: dict[str, SwarmTask] = {}
    for task in tasks:
        if task.desired == "running" or task.service not in current:
            current[task.service] = task
    return current


def task_ids(project: str) -> frozenset[str]:
    """The stack's tasks now: the ones a deploy's failures are told apart from."""
    try:
        return frozenset(t.id for t in engine.stack_tasks(project))
    except DockerException:
        return frozenset()


def _keeps_failing(tasks: list[SwarmTask], earlier: frozenset[str]) -> None:
    failed: dict[str, list[SwarmTask]] = {}
    for task in tasks:
        if task.id not in earlier and task.state in ("failed", "rejected"):
            failed.setdefault(task.service, []).append(task)
    for name, failures in sorted(failed.items()):
        if len(failures) >= GIVE_UP_AFTER_FAILURES:
            reason = next((t.error for t in failures if t.error), failures[0].state)
            node = next((t.node for t in failures if t.node), "")
            raise UnhealthyError(
                f"{name} failed {len(failures)} times on the swarm"
                + (f" (node {node})" if node else "")
                + f": {reason}"
            )


def _not_converged(project: str, expected: set[str], earlier: frozenset[str]) -> list[str]:
    services = {s.name: s for s in engine.stack_services(project)}
    tasks = engine.stack_tasks(project)
    _keeps_failing(tasks, earlier)
    current = _current(tasks)
    problems = [f"{name} (no service)" for name in sorted(expected - services.keys())]
    for name, service in services.items():
        if service.update_state in FAILED_UPDATES:
            raise UnhealthyError(
                f"the swarm could not update {name} ({service.update_state}): "
                f"{service.update_message or 'see `stackgen logs`'}"
            )
        if service.update_state == "updating":
            problems.append(f"{name} (updating)")
            continue
        pending = [t for t in tasks if t.service == name and t.desired == "running"]
        if len(pending) != 1 or pending[0].state != "running":
            task = current.get(name)
            state = task.state if task else "no task"
            error = f": {task.error}" if task and task.error else ""
            problems.append(f"{name} ({state}{error})")
    return problems


def deploy(stack: Stack) -> None:
    engine.stack_deploy(stack.config.project, stack.folder / COMPOSE_FILE)


def wait_converged(
    stack: Stack, seconds: float, progress: Progress, earlier: frozenset[str] = frozenset()
) -> None:
    """Until every service runs one healthy task and no update is in progress (`earlier`:
    the tasks from before the deploy, whose failures are history)."""
    project = stack.config.project
    expected = expected_services(stack.folder)
    started = time.monotonic()
    deadline = started + seconds
    steady_since: float | None = None
    problems = ["no answer yet"]
    while time.monotonic() < deadline:
        try:
            problems = _not_converged(project, expected, earlier)
        except UnhealthyError:
            for name in sorted(expected):
                progress(f"--- {name}: last log lines:")
                progress(recent_logs(project, name, 25))
            raise
        now = time.monotonic()
        if problems:
            steady_since = None
        else:
            steady_since = steady_since or now
            if now - steady_since >= POLL_S and now - started >= SETTLE_S:
                return
        time.sleep(POLL_S)
    for name in sorted({p.split(" ")[0] for p in problems}):
        progress(f"--- {name}: last log lines:")
        progress(recent_logs(project, name, 25))
    raise UnhealthyError(
        f"the stack did not converge on the swarm within {seconds:.0f} s: {', '.join(problems)}"
    )


def remove(project: str) -> None:
    """`docker stack rm`, then wait until the engine really removed the containers and the
    network (a deploy right after would find the old network half-removed)."""
    engine.stack_remove(project)
    deadline = time.monotonic() + REMOVE_TIMEOUT_S
    while left := engine.stack_leftovers(project):
        if time.monotonic() > deadline:
            raise DockerError(f"docker stack rm {project}: still removing {', '.join(left)}")
        time.sleep(POLL_S)
    engine.remove_stack_volumes(project)


def recent_logs(project: str, service: str, lines: int) -> str:
    try:
        text = "".join(engine.service_logs(project, service, tail=lines, follow=False))
    except DockerException as error:
        return f"(no logs: {redact(_one_line(error))})"
    return redact(text)  # a proxy's or Jellyfin's log may quote a token


def logs(project: str, services: list[str], follow: bool) -> Iterator[str]:
    """The services' logs; with `follow`, interleaved as they come."""
    if not follow or len(services) == 1:
        for service in services:
            yield from engine.service_logs(project, service, tail=None, follow=follow)
        return
    lines: queue.Queue[str | None] = queue.Queue()

    def pump(service: str) -> None:
        try:
            for line in engine.service_logs(project, service, tail=None, follow=True):
                lines.put(line)
        except DockerException:
            pass
        finally:
            lines.put(None)

    for service in services:
        threading.Thread(target=pump, args=(service,), daemon=True).start()
    open_streams = len(services)
    while open_streams:
        line = lines.get()
        if line is None:
            open_streams -= 1
        else:
            yield line


@dataclass(frozen=True)
class TaskState(ServiceState):
    """A service's current task (`container`: the task's name, as `docker service ps`
    spells it): healthy once running, since a task runs only once its healthcheck passed."""

    node: str
    error: str

    @property
    def well(self) -> bool:
        return self.state == "running"

    def problem(self) -> str:
        return f"{self.service} ({self.state}{': ' + self.error if self.error else ''})"


def _deploy(stack: Stack) -> SwarmDeploy:
    deploy = stack.config.deploy
    assert isinstance(deploy, SwarmDeploy)
    return deploy


def states(stack: Stack) -> list[TaskState]:
    """The current task of each service, with its node: healthy once running."""
    ports = [
        f"*:{out}->{inner}/{proto}" for out, inner, proto in _deploy(stack).ports(stack.config)
    ]
    return project_states(stack.config.project, {stack.proxy.service: ports})


def project_states(project: str, ports: dict[str, list[str]] | None = None) -> list[TaskState]:
    """The same from the stack's name alone (its stackgen.toml unreadable: no ports)."""
    current = _current(engine.stack_tasks(project))
    return [
        TaskState(
            service=name,
            container=f"{project}_{name}.{task.slot}",
            state=task.state,
            health="healthy" if task.state == "running" else task.state,
            ports=(ports or {}).get(name, []),
            node=task.node,
            error=task.error,
        )
        for name, task in sorted(current.items())
    ]


def proxy_node_address(stack: Stack) -> str | None:
    """The address of the node the proxy's task runs on: where its mode-host ports are."""
    try:
        tasks = engine.stack_tasks(stack.config.project)
        nodes = {n.hostname: n.address for n in engine.swarm_nodes()}
    except DockerException:
        return None
    for task in tasks:
        if task.service == stack.proxy.service and task.desired == "running" and task.node:
            return nodes.get(task.node) or None
    return None


def proxy_addresses(stack: Stack) -> list[str]:
    """Where the proxy's connections to Jellyfin come from, when its task runs on this node:
    its overlay address, or for a host-network Jellyfin its gateway bridge address."""
    try:
        tasks = engine.stack_tasks(stack.config.project)
    except DockerException:
        return []
    containers = [
        t.container_id
        for t in tasks
        if t.service == stack.proxy.service and t.state == "running" and t.container_id
    ]
    addresses: list[str] = []
    for container in containers:
        if stack.config.jellyfin.network_mode is JellyfinNetwork.HOST:
            addresses += engine.gateway_bridge_addresses(container)
        else:
            addresses += engine.container_addresses(container, f"{stack.config.project}_proxy")
    return addresses


class Swarm(Target):
    """`docker stack deploy` from a manager node; the same wait as Compose's: healthy tasks,
    then Jellyfin through the proxy over verified HTTPS (lifecycle's)."""

    name = "swarm"
    unit = "service"
    logs_source = "docker service"

    def preflight(self, stack: Stack, progress: Progress) -> None:
        require_manager()
        require_labelled_nodes()
        if local_node_is_edge():
            require_known_gateway(stack)
            if not is_deployed(stack.config.project):
                # The proxy may land here: its mode-host ports must be free on this machine.
                require_free_ports(stack.config, Own())

    def ensure_images(self, stack: Stack, progress: Progress) -> None:
        # The nodes that run the services need the images, not this manager: a missing one
        # is only named here, and a node that cannot get it fails its task with the reason.
        for image in engine.compose_images(stack.compose):
            if not engine.image_present(image):
                progress(f"image {image} is not on this node: the nodes that run it need it")

    def is_running(self, stack: Stack) -> bool:
        return is_deployed(stack.config.project)

    def apply(self, stack: Stack, *, timeout: int, progress: Progress) -> None:
        project = stack.config.project
        progress(f"deploying {project} to the swarm (waiting up to {timeout} s for healthchecks)")
        earlier = task_ids(project)
        deploy(stack)
        wait_converged(stack, timeout, progress, earlier)
        if local_node_is_edge():
            # The first task on this node may have just made docker_gwbridge.
            require_known_gateway(stack)

    def explain(self, stack: Stack, progress: Progress) -> None:
        progress(f"--- {stack.proxy.service}: last log lines:")
        progress(self.recent_logs(stack, stack.proxy.service, LOG_LINES_ON_FAILURE))

    def settle(self, stack: Stack) -> None:
        engine.prune_stack_objects(stack.config.project)

    def interrupted(self, stack: Stack, *, was_running: bool) -> StackInterrupted:
        project = stack.config.project
        if was_running:
            return StackInterrupted(
                f"interrupted: {project} was already deployed and is left running; "
                "re-run `stackgen up` to finish the update"
            )
        remove(project)
        return StackInterrupted(f"interrupted: removed what `up` had deployed of {project}")

    def require_deployed(self, stack: Stack) -> None:
        require_manager()
        if not is_deployed(stack.config.project):
            raise ProblemsFoundError(f"{stack.config.project} is not deployed: use `stackgen up`")

    def reload(self, stack: Stack, changed: set[str], progress: Progress) -> None:
        """Deploy again: a changed file has a new config name, so the swarm replaces exactly
        the services that mount it (and Jellyfin when network.xml changed)."""
        project = stack.config.project
        before = running_tasks(project)
        progress("deploying the re-rendered stack: the swarm replaces what changed")
        earlier = task_ids(project)
        deploy(stack)
        wait_converged(stack, 180, progress, earlier)
        after = running_tasks(project)
        rolled = sorted(name for name, task in after.items() if before.get(name) != task)
        progress(
            f"replaced: {', '.join(rolled)}" if rolled else "nothing changed: no task replaced"
        )
        self.settle(stack)

    def holds(self, project: str, folder: Path) -> bool:
        return is_deployed(project)

    def remove(self, project: str, folder: Path, *, volumes: bool) -> None:
        remove(project)

    def states(self, stack: Stack) -> list[ServiceState]:
        try:
            return list(states(stack))
        except DockerException as error:
            raise DockerError(f"cannot read the swarm's tasks: {error.stderr or error}") from None

    def project_states(self, project: str, folder: Path) -> list[ServiceState]:
        return list(project_states(project))

    def logs(self, stack: Stack, service: str | None, follow: bool) -> Iterator[str]:
        chosen = [service] if service else sorted(expected_services(stack.folder))
        try:
            yield from logs(stack.config.project, chosen, follow)
        except DockerException as error:
            raise DockerError(f"docker service logs failed: {error.stderr or error}") from None

    def recent_logs(self, stack: Stack, service: str | None, lines: int) -> str:
        chosen = [service] if service else sorted(expected_services(stack.folder))
        return "\n".join(recent_logs(stack.config.project, name, lines) for name in chosen)

    def proxy_addresses(self, stack: Stack) -> list[str]:
        return proxy_addresses(stack)

    def connect_address(self, stack: Stack) -> str:
        # The proxy publishes on its own node's ports (mode host), wherever that node is.
        return proxy_node_address(stack) or stack.config.connect_address
