"""The one boundary to the Docker engine. Every call goes through python-on-whales' typed
API (objects parsed from the engine's JSON, never text scraped from `docker ps`); nothing
else in stackgen imports python-on-whales."""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import Container, DockerClient, docker
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run as run_docker

from stackgen.errors import DockerError
from stackgen.parts import InImageCommand

# A proxy's own config test is short; a hung one must not hang `stackgen check`.
IN_IMAGE_TIMEOUT_S = 120.0


def compose_client(project: str, compose_file: Path, folder: Path) -> DockerClient:
    return DockerClient(
        compose_files=[compose_file],
        compose_project_name=project,
        compose_project_directory=folder,
    )


def project_client(project: str, folder: Path) -> DockerClient:
    """A compose client that knows only the project name: `ps` and `down` find the
    containers by their project label, so they work when the compose file is missing or
    broken."""
    return DockerClient(compose_project_name=project, compose_project_directory=folder)


def require_engine() -> None:
    if shutil.which("docker") is None:
        raise DockerError("docker is not installed (see README: Requirements)")
    try:
        docker.system.info()
    except DockerException:
        raise DockerError("the Docker engine does not answer (is dockerd running?)") from None
    try:
        docker.compose.version()
    except DockerException:
        raise DockerError(
            "the Docker Compose plugin is missing (`docker compose version` fails)"
        ) from None


def compose_config_problems(client: DockerClient) -> str:
    """Compose's own verdict on the file: empty when it accepts it."""
    try:
        client.compose.config(return_json=True)
    except DockerException as error:
        stderr = str(error.stderr or "")
        if "is not a docker command" in stderr:
            raise DockerError("the Docker Compose plugin is missing") from None
        return " ".join(stderr.split()) or f"docker compose config exited {error.return_code}"
    return ""


def image_present(image: str) -> bool:
    return bool(docker.image.exists(image))


def compose_images(client: DockerClient) -> list[str]:
    """The images the compose file's services run, in file order (empty when Compose
    rejects the file: `check` reports that)."""
    try:
        config = client.compose.config(return_json=True)
    except DockerException:
        return []
    services = config.get("services") if isinstance(config, dict) else None
    images = [
        str(service["image"])
        for service in (services or {}).values()
        if isinstance(service, dict) and service.get("image")
    ]
    return list(dict.fromkeys(images))


def pull_image(image: str) -> str:
    """Pull one image: empty on success, else the engine's reason in one line."""
    try:
        docker.image.pull(image, quiet=True)
    except DockerException as error:
        text = " ".join(str(error.stderr or "").split())
        return text or f"docker pull exited {error.return_code}"
    return ""


@dataclass(frozen=True)
class NetworkSubnets:
    """A Docker network's name, its Compose project (empty for other networks) and the
    subnets its IPAM holds, IPv4 and IPv6."""

    name: str
    project: str
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def network_subnets() -> list[NetworkSubnets]:
    """Every network on the engine with its subnets (empty when the engine cannot say)."""
    try:
        networks = docker.network.list()
    except DockerException:
        return []
    found = []
    for network in networks:
        try:
            # Read now, in one inspect: another user's network may vanish meanwhile.
            name, ipam, labels = network.name, network.ipam, network.labels or {}
        except DockerException:
            continue  # removed since it was listed: it holds no subnet any more
        subnets = []
        for entry in (ipam.config if ipam else None) or []:
            with contextlib.suppress(ValueError):
                subnets.append(ipaddress.ip_network(str(entry.get("Subnet", "")), strict=False))
        found.append(
            NetworkSubnets(
                name=str(name),
                # A Compose project's, or a swarm stack's (its overlay network).
                project=labels.get("com.docker.compose.project")
                or labels.get("com.docker.stack.namespace", ""),
                subnets=tuple(subnets),
            )
        )
    return found


def containers_publishing(port: int | str) -> list[str]:
    """Names of the running containers that publish a host port (`51820/udp` for UDP)."""
    return [container.name for container in docker.container.list(filters=[("publish", str(port))])]


def run_in_image(image: str, command: InImageCommand, folder: Path) -> tuple[bool, str]:
    """Run a proxy's own test in its own image, with no network: (accepted, output)."""
    if not image_present(image):
        raise DockerError(f"image {image} is not present (run `stackgen up` to pull it)")
    volumes = [
        ((Path(source) if Path(source).is_absolute() else folder / source).resolve(), target, "ro")
        for source, target in command.mounts
    ]
    try:
        container = docker.container.create(
            image,
            list(command.argv),
            networks=["none"],
            volumes=volumes,
            entrypoint=command.entrypoint,
            user=command.user,
        )
    except DockerException as error:
        raise DockerError(f"cannot create a container of {image}: {error.stderr}") from None
    return _run_to_end(container, image, " ".join(command.argv))


def _run_to_end(container: Container, image: str, what: str) -> tuple[bool, str]:
    """Start a created container, wait for it within IN_IMAGE_TIMEOUT_S, remove it:
    (exited 0, its output)."""
    try:
        docker.container.start(container)
        deadline = time.monotonic() + IN_IMAGE_TIMEOUT_S
        while (state := docker.container.inspect(container).state).running:
            if time.monotonic() > deadline:
                raise DockerError(
                    f"`{what}` in {image} did not finish within {IN_IMAGE_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.1)
        return state.exit_code == 0, str(docker.container.logs(container))
    except DockerException as error:
        raise DockerError(f"running a container of {image} failed: {error.stderr}") from None
    finally:
        docker.container.remove(container, force=True)


def run_tunnel_trial(image: str, script: str) -> tuple[bool, str]:
    """Run a bash script in a tunnel endpoint's image given exactly what its service gets
    (NET_ADMIN and /dev/net/tun, nothing else; no network): (exited 0, its output)."""
    try:
        container = docker.container.create(
            image,
            ["-c", script],
            entrypoint="bash",
            networks=["none"],
            cap_drop=["ALL"],
            cap_add=["NET_ADMIN"],
            devices=["/dev/net/tun:/dev/net/tun"],
            security_options=["no-new-privileges:true"],
            read_only=True,
            tmpfs=["/run"],
        )
    except DockerException as error:
        text = " ".join(str(error.stderr or "").split())
        raise DockerError(f"cannot create a container of {image}: {text}") from None
    return _run_to_end(container, image, "a tunnel trial")


# --- Docker Compose (the compose deploy target) -------------------------------------------


@dataclass(frozen=True)
class ComposeContainer:
    """One container of a Compose project, as the engine reports it."""

    name: str
    id: str  # the engine's id (its cgroup is named after it)
    service: str  # its Compose service (the container's name when it has no label)
    state: str  # "running", "exited", ...
    health: str  # "healthy", "unhealthy", "starting", or "none" without a healthcheck
    pid: int  # its main process on this machine (0 when it does not run)
    ports: tuple[str, ...]  # "HOST_IP:HOST_PORT->PORT/PROTO" of each published port
    addresses: tuple[str, ...]  # on every network: IPv4, and IPv6 where it has one


def compose_containers(
    client: DockerClient, services: list[str] | None = None
) -> list[ComposeContainer]:
    """The project's containers (all, or those of `services`), stopped ones included."""
    found = []
    for container in client.compose.ps(services or [], all=True):
        labels = container.config.labels or {}
        health = container.state.health.status if container.state.health else "none"
        ports = [
            f"{binding.get('HostIp', '')}:{binding.get('HostPort', '')}->{inner}"
            for inner, bindings in (container.network_settings.ports or {}).items()
            for binding in (bindings or [])
        ]
        addresses = [
            str(address)
            for network in (container.network_settings.networks or {}).values()
            for address in (network.ip_address, network.global_ipv6_address)
            if address
        ]
        found.append(
            ComposeContainer(
                name=str(container.name),
                id=str(container.id),
                service=labels.get("com.docker.compose.service", str(container.name)),
                state=str(container.state.status),
                health=str(health),
                pid=int(container.state.pid or 0),
                ports=tuple(ports),
                addresses=tuple(addresses),
            )
        )
    return found


def compose_up(client: DockerClient, *, timeout: int) -> None:
    """`docker compose up --wait`: until every service is healthy or `timeout` passed. An
    interrupt kills `docker compose up` (subprocess.run does on any exception), so no orphan
    keeps starting the stack after stackgen is gone."""
    client.compose.up(detach=True, wait=True, wait_timeout=timeout, remove_orphans=True)


def compose_down(client: DockerClient, *, volumes: bool = False, timeout: int = 20) -> None:
    client.compose.down(remove_orphans=True, volumes=volumes, timeout=timeout)


def compose_restart(client: DockerClient, services: list[str]) -> None:
    client.compose.restart(services)


def compose_exec(client: DockerClient, service: str, argv: list[str]) -> None:
    client.compose.execute(service, argv, tty=False)


def compose_exec_output(client: DockerClient, service: str, argv: list[str]) -> str:
    """A command's standard output in a running service (a DockerException when it fails)."""
    return str(client.compose.execute(service, argv, tty=False) or "")


def compose_logs(client: DockerClient, services: list[str], *, follow: bool) -> Iterator[str]:
    """The services' logs (all with an empty list), prefixed by service, as they come."""
    for _source, line in client.compose.logs(services, follow=follow, stream=True):
        yield line.decode("utf-8", "replace")


def compose_recent_logs(client: DockerClient, services: list[str], *, lines: int) -> str:
    """The last lines of each service's log (all with an empty list; prefixed by service
    unless there is one)."""
    one = len(services) == 1
    return str(client.compose.logs(services, tail=str(lines), no_log_prefix=one))


# --- Docker Swarm (the swarm deploy target) ----------------------------------------------

STACK_LABEL = "com.docker.stack.namespace"


@dataclass(frozen=True)
class SwarmMembership:
    state: str  # "inactive", "pending", "active", "error", "locked"
    manager: bool  # this node can deploy (control_available)
    node_id: str


@dataclass(frozen=True)
class SwarmNode:
    id: str
    hostname: str
    ready: bool
    active: bool  # availability "active" (not paused or drained)
    labels: dict[str, str]
    address: str = ""  # the address the node is reached at (its advertise address)


@dataclass(frozen=True)
class SwarmTask:
    id: str
    service: str  # the stack's service name (without the stack prefix)
    slot: int
    node: str  # hostname, or "" while unassigned
    desired: str
    state: str
    error: str
    container_id: str


@dataclass(frozen=True)
class SwarmService:
    name: str  # without the stack prefix
    version: int  # the spec's version: it moves on every update of the service
    update_state: str  # "", "updating", "completed", "rollback_completed", ...
    update_message: str


def swarm_membership() -> SwarmMembership:
    info = docker.system.info().swarm
    if info is None:
        return SwarmMembership("inactive", manager=False, node_id="")
    return SwarmMembership(
        str(info.local_node_state or "inactive"),
        manager=bool(info.control_available),
        node_id=str(info.node_id or ""),
    )


def swarm_nodes() -> list[SwarmNode]:
    nodes = []
    for node in docker.node.list():
        spec, status = node.spec, node.status
        nodes.append(
            SwarmNode(
                id=str(node.id),
                hostname=str((node.description.hostname if node.description else "") or node.id),
                ready=bool(status and status.state == "ready"),
                active=bool(spec and spec.availability == "active"),
                labels=dict((spec.labels if spec else None) or {}),
                address=str((status.addr if status else "") or ""),
            )
        )
    return nodes


def stack_deploy(project: str, stack_file: Path) -> None:
    """`docker stack deploy`, detached (stackgen waits itself), never asking a registry for
    an image digest. Its progress lines are captured, not printed on our stdout."""
    command = [
        *docker.client_config.docker_cmd,
        "stack",
        "deploy",
        "--compose-file",
        str(stack_file),
        "--resolve-image",
        "never",
        "--prune",
        "--detach=true",
        project,
    ]
    try:
        run_docker(command, capture_stdout=True, capture_stderr=True)
    except DockerException as error:
        detail = " ".join(str(error.stderr or "").split())
        raise DockerError(f"docker stack deploy failed: {detail or error.return_code}") from None


def stack_remove(project: str) -> None:
    try:
        docker.stack.remove(project)
    except DockerException as error:
        detail = " ".join(str(error.stderr or error).split())
        raise DockerError(f"docker stack rm failed: {detail}") from None


def stack_services(project: str) -> list[SwarmService]:
    services = []
    for service in docker.service.list(filters=[("label", f"{STACK_LABEL}={project}")]):
        name = str(service.spec.name if service.spec else service.id)
        status = service.update_status
        services.append(
            SwarmService(
                name=name.removeprefix(f"{project}_"),
                version=int((service.version.index if service.version else 0) or 0),
                update_state=str((status.state if status else "") or ""),
                update_message=str((status.message if status else "") or ""),
            )
        )
    return sorted(services, key=lambda s: s.name)


def stack_tasks(project: str) -> list[SwarmTask]:
    """Every task of the stack's services, the current ones and the history swarm keeps."""
    services = {
        str(s.id): str(s.spec.name if s.spec else s.id).removeprefix(f"{project}_")
        for s in docker.service.list(filters=[("label", f"{STACK_LABEL}={project}")])
    }
    if not services:
        return []
    hostnames = {n.id: n.hostname for n in swarm_nodes()}
    tasks = []
    # This stack's services only: every task of a shared swarm is one inspect each.
    for task in docker.service.ps(list(services)):
        if task.service_id not in services:
            continue
        status = task.status
        container = status.container_status if status else None
        tasks.append(
            SwarmTask(
                id=str(task.id),
                service=services[str(task.service_id)],
                slot=int(task.slot or 0),
                node=hostnames.get(str(task.node_id or ""), ""),
                desired=str(task.desired_state or ""),
                state=str((status.state if status else "") or ""),
                error=str((status.err if status else "") or ""),
                container_id=str((container.container_id if container else "") or ""),
            )
        )
    return tasks


def stack_leftovers(project: str) -> list[str]:
    """What `docker stack rm` is still removing (it returns before the engine is done)."""
    label = f"{STACK_LABEL}={project}"
    try:
        containers = docker.container.list(all=True, filters=[("label", label)])
        left = [f"container {c.name}" for c in containers]
        left += [f"network {n.name}" for n in docker.network.list(filters=[("label", label)])]
    except DockerException:
        # Listed, then gone before it could be inspected: still being removed.
        return ["objects being removed"]
    return left


def remove_stack_volumes(project: str) -> None:
    """The stack's named volumes (its owned tmpfs volumes) on this node."""
    for volume in docker.volume.list(filters=[("label", f"{STACK_LABEL}={project}")]):
        # Still in use by a container being removed: nothing is kept in it anyway.
        with contextlib.suppress(DockerException):
            docker.volume.remove(volume)


def prune_stack_objects(project: str) -> None:
    """Remove the stack's configs and secrets no service uses any more (a changed file left
    its old, immutable one behind); the engine refuses to remove one in use."""
    label = f"{STACK_LABEL}={project}"
    for config in docker.config.list(filters={"label": label}):
        with contextlib.suppress(DockerException):
            docker.config.remove(config)
    for secret in docker.secret.list(filters=[("label", label)]):
        with contextlib.suppress(DockerException):
            docker.secret.remove(secret)


def service_logs(project: str, service: str, *, tail: int | None, follow: bool) -> Iterator[str]:
    for _source, line in docker.service.logs(
        f"{project}_{service}", tail=tail, follow=follow, stream=True, task_ids=False
    ):
        yield line.decode("utf-8", "replace")


def container_addresses(container_id: str, network: str) -> list[str]:
    """A local container's address on one network (empty when it is not on this node)."""
    try:
        container = docker.container.inspect(container_id)
    except DockerException:
        return []
    settings = (container.network_settings.networks or {}).get(network)
    return [str(settings.ip_address)] if settings and settings.ip_address else []


@dataclass(frozen=True)
class ContainerMount:
    source: str  # a host path (bind) or a volume's name
    destination: str


@dataclass(frozen=True)
class ContainerLayout:
    """What a helper container needs to stand beside a running one: its user, its IPv4
    address on each network, and its mounts."""

    user: str
    networks: dict[str, str]  # network name -> IPv4 address
    mounts: tuple[ContainerMount, ...]


def container_layout(container_id: str) -> ContainerLayout:
    try:
        container = docker.container.inspect(container_id)
    except DockerException as error:
        raise DockerError(f"cannot inspect container {container_id[:12]}: {error.stderr}") from None
    networks = {
        name: str(settings.ip_address)
        for name, settings in (container.network_settings.networks or {}).items()
        if settings.ip_address
    }
    mounts = tuple(
        ContainerMount(str(m.name if m.type == "volume" else m.source), str(m.destination))
        for m in container.mounts or []
        if m.destination and (m.name if m.type == "volume" else m.source)
    )
    return ContainerLayout(str(container.config.user or ""), networks, mounts)


def start_helper(
    name: str,
    image: str,
    *,
    argv: list[str],
    network: str,
    user: str,
    mounts: list[tuple[str, str]],
    label: str,
) -> tuple[str, str]:
    """Start a short-lived, locked-down helper container on a stack's network (read-only
    root, no capability, no new privileges, a small tmpfs /tmp, the given user and
    read-only mounts (source, destination)): (its id, its IPv4 address there)."""
    if not image_present(image):
        pull_image(image)
    uid, _, gid = user.partition(":")
    try:
        container = docker.container.run(
            image,
            argv,
            name=name,
            detach=True,
            entrypoint="",
            user=user,
            networks=[network],
            read_only=True,
            cap_drop=["ALL"],
            security_options=["no-new-privileges:true"],
            tmpfs=[f"/tmp:uid={uid},gid={gid or uid},mode=0700,size=16m"],
            memory="256m",
            pids_limit=64,
            volumes=[(source, destination, "ro") for source, destination in mounts],
            labels={label: "1"},
        )
    except DockerException as error:
        raise DockerError(f"cannot start {name} from {image}: {error.stderr}") from None
    address = container_addresses(container.id, network)
    if not address:
        remove_container(container.id)
        raise DockerError(f"{name} has no address on {network}")
    return container.id, address[0]


def remove_container(container_id: str) -> None:
    """Remove a container this process started (gone already is fine)."""
    with contextlib.suppress(DockerException):
        docker.container.remove(container_id, force=True)


def container_logs(container_id: str, *, lines: int = 20) -> str:
    try:
        return str(docker.container.logs(container_id, tail=lines))
    except DockerException as error:
        return f"(no logs: {error.stderr})"


def gateway_bridge_subnet() -> str | None:
    """docker_gwbridge's IPv4 subnet on this node (None before the first swarm task made it)."""
    try:
        bridge = docker.network.inspect("docker_gwbridge")
    except DockerException:
        return None
    for config in bridge.ipam.config or []:
        subnet = config.get("Subnet") if isinstance(config, dict) else None
        if subnet and ":" not in str(subnet):
            return str(subnet)
    return None


def gateway_bridge_addresses(container_id: str) -> list[str]:
    """A local swarm task's address on docker_gwbridge: where it reaches its own node from."""
    try:
        bridge = docker.network.inspect("docker_gwbridge")
    except DockerException:
        return []
    addresses = []
    for endpoint_id, endpoint in (bridge.containers or {}).items():
        if endpoint_id.startswith(container_id) and endpoint.ipv4_address:
            addresses.append(str(endpoint.ipv4_address).split("/")[0])
    return addresses


__all__ = [
    "ComposeContainer",
    "ContainerLayout",
    "ContainerMount",
    "DockerClient",
    "DockerException",
    "SwarmMembership",
    "SwarmNode",
    "SwarmService",
    "SwarmTask",
    "compose_client",
    "compose_config_problems",
    "compose_containers",
    "compose_down",
    "compose_exec",
    "compose_images",
    "compose_logs",
    "compose_recent_logs",
    "compose_restart",
    "compose_up",
    "container_addresses",
    "container_layout",
    "container_logs",
    "containers_publishing",
    "gateway_bridge_addresses",
    "gateway_bridge_subnet",
    "image_present",
    "project_client",
    "prune_stack_objects",
    "pull_image",
    "remove_container",
    "remove_stack_volumes",
    "require_engine",
    "run_in_image",
    "run_tunnel_trial",
    "service_logs",
    "stack_deploy",
    "stack_leftovers",
    "stack_remove",
    "stack_services",
    "stack_tasks",
    "start_helper",
    "swarm_membership",
    "swarm_nodes",
]
