"""A multi-node Docker Swarm on one machine, for tests: Docker-in-Docker nodes on a bridge.

Each node is a container of ``stackgen-test/swarm-node:local`` (Debian's Docker engine,
``tests/images/swarm-node/``) on a user-defined bridge network of its own. The first node
is the manager (no role label: it only schedules); the others join as workers and carry
the role label stackgen places services by (``stackgen.role.edge=true`` for the proxy,
``stackgen.role.media=true`` for Jellyfin: one key per role, so one node may carry both).
Local images reach the nodes by
``docker save | docker load``: there is no registry.

The host's ``docker`` client drives a node through a unix socket the node's dockerd also
listens on, in a folder mounted from the host (`Node.docker_host`, ``unix://...``): no TCP
port, so nothing outside this machine's root can reach the engines. `SwarmCluster.env()`
is the environment that makes ``docker stack deploy`` (and stackgen) talk to the manager.

Why the nodes are not ``--privileged``: this kernel's bounding set lacks CAP_SYS_RESOURCE,
so Docker refuses ("unable to apply caps"). `NODE_RUN_OPTIONS` is the set that works
(docs/swarm-multinode.md). The nodes' engines use the vfs storage driver on a tmpfs:
overlayfs does not stack on the outer engine's overlayfs.

Everything a cluster creates carries the label ``org.stackgen.swarm-cluster=<name>``
and a name starting with ``<name>-``; `close()` removes it (also after a failed
`start()`, and from ``with`` on an exception or Ctrl-C), and `remove_leftovers()` removes
clusters whose creating process is gone.

Use::

    with SwarmCluster.create(state_dir, roles=("edge", "media")) as cluster:
        cluster.load_images(["stackgen-test/jellyfin-standin:local"], role="media")
        cluster.manager.docker("stack", "deploy", "-c", "stack.yml", "demo")
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from stackgen.allocate import Allocator

NODE_IMAGE = "stackgen-test/swarm-node:local"
CLUSTER_LABEL = "org.stackgen.swarm-cluster"
PID_LABEL = "org.stackgen.swarm-cluster.pid"
# A node with role R carries the label `stackgen.role.R=true` (what stack files place by).
ROLE_LABEL_PREFIX = "stackgen.role."
NAME_PREFIX = "sgswarm"
# Inside each node: where the node's dockerd puts the socket the host uses.
NODE_SOCKET_DIR = "/run/stackgen-node"
# `--privileged` fails on this kernel; this is the smallest set found to run dockerd.
NODE_RUN_OPTIONS: tuple[str, ...] = (
    "--cap-add=SYS_ADMIN",
    "--cap-add=NET_ADMIN",
    "--cap-add=MKNOD",
    "--cap-add=SYS_PTRACE",
    "--cap-add=NET_RAW",
    "--cap-add=SYS_MODULE",
    "--security-opt=seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "--security-opt=systempaths=unconfined",
    "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs=/var/lib/docker:exec",
)
ENGINE_START_SECONDS = 60.0
COMMAND_TIMEOUT = 300.0
LOG_TAIL_LINES = 120


class ClusterError(Exception):
    """The cluster could not be built or a command on it failed (the message says which)."""


def _run(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
    stdin: int | IO[bytes] | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=env,
            stdin=stdin,
        )
    except subprocess.TimeoutExpired as error:
        raise ClusterError(f"`{' '.join(args)}` did not finish in {timeout:.0f} s") from error
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ClusterError(f"`{' '.join(args)}` exited {result.returncode}: {output[-2000:]}")
    return result


def _host_env() -> dict[str, str]:
    """The environment of a host-engine command: never a DOCKER_HOST left by a caller."""
    return {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}


@dataclass(frozen=True)
class Node:
    """One node container: its name, address on the cluster bridge and engine socket."""

    container: str
    address: str
    socket_dir: Path
    role: str | None
    manager: bool

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_dir / 'docker.sock'}"

    def env(self) -> dict[str, str]:
        """This process's environment with DOCKER_HOST pointing at this node's engine."""
        return {**_host_env(), "DOCKER_HOST": self.docker_host}

    def docker(
        self, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """The host's docker client against this node's engine."""
        return _run(["docker", *args], env=self.env(), timeout=timeout, check=check)

    def exec(
        self, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """A command in the node container itself (its network namespace, its tools)."""
        return _run(
            ["docker", "exec", self.container, *args],
            env=_host_env(),
            timeout=timeout,
            check=check,
        )


@dataclass
class SwarmCluster:
    """A bridge network, a manager and one worker per role; see the module docstring."""

    name: str
    state_dir: Path
    roles: tuple[str, ...]
    subnet: ipaddress.IPv4Network
    allocator: Allocator | None = None
    image: str = NODE_IMAGE
    # Host folders mounted at the same path in every node: a stack file's bind mounts name
    # host paths, and `docker stack deploy` resolves relative ones against the stack folder.
    shared_dirs: tuple[Path, ...] = ()
    nodes: list[Node] = field(default_factory=list)
    # This host's own address on the cluster bridge: where a client on the host comes from.
    gateway: str = ""
    closed: bool = False

    # ----------------------------------------------------------------- building

    @classmethod
    def create(
        cls,
        state_dir: Path,
        *,
        roles: Sequence[str] = ("edge", "media"),
        name: str | None = None,
        subnet: ipaddress.IPv4Network | str | None = None,
        allocator: Allocator | None = None,
        image: str = NODE_IMAGE,
        shared_dirs: Sequence[Path] = (),
    ) -> SwarmCluster:
        """A started cluster (removed again if starting fails).

        `name` defaults to ``sgswarm<pid>-<random>``; the bridge subnet is claimed from
        `allocator` (the test stacks' allocator) unless given.
        """
        name = name or f"{NAME_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
        owned_allocator = None
        if subnet is None:
            owned_allocator = allocator or Allocator()
            subnet = owned_allocator.subnet(name)
        cluster = cls(
            name=name,
            state_dir=state_dir / name,
            roles=tuple(roles),
            subnet=ipaddress.IPv4Network(subnet),
            allocator=owned_allocator,
            image=image,
            shared_dirs=tuple(path.resolve() for path in shared_dirs),
        )
        try:
            cluster.start()
        except BaseException:
            cluster.close()
            raise
        return cluster

    def start(self) -> None:
        """Network, node containers, engines, swarm init, joins, labels."""
        self.gateway = str(next(self.subnet.hosts()))
        _run(
            [
                "docker",
                "network",
                "create",
                "--driver=bridge",
                # No route out: the nodes talk to each other and to this host only.
                "--internal",
                f"--subnet={self.subnet}",
                f"--gateway={self.gateway}",
                f"--label={CLUSTER_LABEL}={self.name}",
                f"{self.name}-net",
            ],
            env=_host_env(),
        )
        names = ["manager", *self.roles]
        for index, node_name in enumerate(names):
            role = None if index == 0 else node_name
            self.nodes.append(self._run_node(f"{self.name}-{node_name}", role, index == 0))
        for node in self.nodes:
            self._wait_for_engine(node)
        manager = self.manager
        manager.docker("swarm", "init", f"--advertise-addr={manager.address}")
        token = manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        for node in self.workers:
            node.docker(
                "swarm",
                "join",
                f"--advertise-addr={node.address}",
                f"--token={token}",
                f"{manager.address}:2377",
            )
        self._wait_for_nodes()
        for node in self.workers:
            assert node.role is not None
            manager.docker(
                "node",
                "update",
                f"--label-add={ROLE_LABEL_PREFIX}{node.role}=true",
                self.node_id(node),
            )

    def _run_node(self, container: str, role: str | None, manager: bool) -> Node:
        socket_dir = self.state_dir / container
        socket_dir.mkdir(parents=True, exist_ok=True)
        _run(
            [
                "docker",
                "run",
                "--detach",
                f"--name={container}",
                f"--hostname={container}",
                f"--network={self.name}-net",
                f"--label={CLUSTER_LABEL}={self.name}",
                f"--label={PID_LABEL}={os.getpid()}",
                *NODE_RUN_OPTIONS,
                f"--volume={socket_dir}:{NODE_SOCKET_DIR}",
                *(f"--volume={path}:{path}" for path in self.shared_dirs),
                self.image,
            ],
            env=_host_env(),
        )
        address = _run(
            [
                "docker",
                "inspect",
                "--format",
                f'{{{{(index .NetworkSettings.Networks "{self.name}-net").IPAddress}}}}',
                container,
            ],
            env=_host_env(),
        ).stdout.strip()
        return Node(container, address, socket_dir, role, manager)

    def _wait_for_engine(self, node: Node) -> None:
        deadline = time.monotonic() + ENGINE_START_SECONDS
        while True:
            result = node.docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the engine of {node.container} did not answer in "
                    f"{ENGINE_START_SECONDS:.0f} s: {result.stderr.strip()}\n"
                    f"{self.engine_log(node)}"
                )
            time.sleep(0.5)

    def _wait_for_nodes(self) -> None:
        deadline = time.monotonic() + ENGINE_START_SECONDS
        while True:
            listing = self.manager.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
            ready = {line.split()[0] for line in listing.stdout.splitlines() if "Ready" in line}
            if {node.container for node in self.nodes} <= ready:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"nodes not Ready after joining:\n{listing.stdout}")
            time.sleep(0.5)

    # ----------------------------------------------------------------- using

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def node(self, role: str) -> Node:
        """The worker labelled `stackgen.role.<role>=true`."""
        for node in self.workers:
            if node.role == role:
                return node
        raise ClusterError(f"no node has the role {role!r} (roles: {', '.join(self.roles)})")

    def node_id(self, node: Node) -> str:
        """The swarm's id of a node (its host name is its container name)."""
        return self.manager.docker(
            "node", "inspect", "--format", "{{.ID}}", node.container
        ).stdout.strip()

    def env(self) -> dict[str, str]:
        """The environment that makes `docker` (and stackgen) drive the manager."""
        return self.manager.env()

    def load_images(self, tags: Iterable[str], *, role: str | None = None) -> None:
        """Copy local images of the host's engine into every worker (or one role's)."""
        targets = [self.node(role)] if role else self.workers
        for tag in tags:
            for node in targets:
                with subprocess.Popen(
                    ["docker", "save", tag], stdout=subprocess.PIPE, env=_host_env()
                ) as saver:
                    try:
                        _run(["docker", "load", "--quiet"], env=node.env(), stdin=saver.stdout)
                    finally:
                        assert saver.stdout is not None
                        saver.stdout.close()
                        saver.wait(timeout=COMMAND_TIMEOUT)
                if saver.returncode != 0:
                    raise ClusterError(f"`docker save {tag}` exited {saver.returncode}")

    def set_availability(self, role: str, availability: str) -> None:
        """`docker node update --availability active|pause|drain` on a role's node."""
        self.manager.docker(
            "node", "update", f"--availability={availability}", self.node_id(self.node(role))
        )

    def running_tasks(self, service: str) -> int:
        """How many tasks of a service run now (the `1` of `docker service ls`'s `1/1`)."""
        listing = self.manager.docker(
            "service", "ls", "--filter", f"name={service}", "--format", "{{.Name}} {{.Replicas}}"
        )
        for line in listing.stdout.splitlines():
            name, _, replicas = line.partition(" ")
            if name == service:
                return int(replicas.partition("/")[0])
        raise ClusterError(f"no service {service!r} on the swarm")

    def wait_for_tasks(self, service: str, *, running: int = 1, timeout: float = 120) -> None:
        """Wait until `running` tasks of the service run (healthy, when it has a check)."""
        deadline = time.monotonic() + timeout
        while self.running_tasks(service) != running:
            if time.monotonic() > deadline:
                tasks = self.manager.docker("service", "ps", "--no-trunc", service, check=False)
                raise ClusterError(
                    f"{service}: not {running} running task(s) after {timeout:.0f} s\n"
                    f"{tasks.stdout}{tasks.stderr}"
                )
            time.sleep(0.5)

    # ----------------------------------------------------------------- explaining

    def engine_log(self, node: Node, tail: int = LOG_TAIL_LINES) -> str:
        """The node's dockerd log (the node container's own output)."""
        result = _run(
            ["docker", "logs", "--tail", str(tail), node.container],
            env=_host_env(),
            check=False,
            timeout=60,
        )
        return (result.stdout + result.stderr).strip()

    def diagnostics(self, *, tail: int = LOG_TAIL_LINES) -> str:
        """Nodes, services, their tasks (with errors) and logs, each node's containers and
        the tail of each engine's log: what a failing test's report carries."""
        if not self.nodes:
            return f"swarm cluster {self.name}: no node was started"
        parts = [f"swarm cluster {self.name}, bridge {self.subnet}"]
        parts += [
            f"  {n.container} {n.address} role={n.role} manager={n.manager}" for n in self.nodes
        ]
        manager = self.manager

        def section(title: str, result: subprocess.CompletedProcess[str]) -> None:
            parts.append(f"=== {title} ===\n{(result.stdout + result.stderr).strip()}")

        with contextlib.suppress(ClusterError):
            section("docker node ls", manager.docker("node", "ls", check=False, timeout=60))
            services = manager.docker(
                "service", "ls", "--format", "{{.Name}}", check=False, timeout=60
            )
            section("docker service ls", manager.docker("service", "ls", check=False, timeout=60))
            for service in services.stdout.split():
                section(
                    f"docker service ps {service}",
                    manager.docker("service", "ps", "--no-trunc", service, check=False, timeout=60),
                )
                section(
                    f"docker service logs {service}",
                    manager.docker(
                        "service",
                        "logs",
                        "--timestamps",
                        "--tail",
                        str(tail),
                        service,
                        check=False,
                        timeout=60,
                    ),
                )
            for node in self.nodes:
                section(
                    f"{node.container}: docker ps -a",
                    node.docker("ps", "-a", check=False, timeout=60),
                )
                parts.append(f"=== {node.container}: dockerd log ===\n{self.engine_log(node)}")
        return "\n".join(parts)

    # ----------------------------------------------------------------- removing

    def close(self) -> None:
        """Remove the node containers (their engines and everything in them), the network
        and the socket folders; free the subnet claim. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            remove_cluster(self.name)
        finally:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            if self.allocator is not None:
                self.allocator.release(self.name)

    def __enter__(self) -> SwarmCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def remove_cluster(name: str) -> None:
    """Remove every container and network labelled as cluster `name`."""
    env = _host_env()
    containers = _run(
        ["docker", "ps", "-aq", "--filter", f"label={CLUSTER_LABEL}={name}"],
        env=env,
        check=False,
        timeout=60,
    ).stdout.split()
    if containers:
        # -v: the tmpfs holding the node's images goes with it; -f: engines stop on SIGKILL.
        _run(["docker", "rm", "-f", "-v", *containers], env=env, check=False, timeout=180)
    networks = _run(
        ["docker", "network", "ls", "-q", "--filter", f"label={CLUSTER_LABEL}={name}"],
        env=env,
        check=False,
        timeout=60,
    ).stdout.split()
    if networks:
        _run(["docker", "network", "rm", *networks], env=env, check=False, timeout=60)


def leftover_clusters(prefix: str = NAME_PREFIX) -> list[str]:
    """Clusters named `prefix...` whose creating process no longer runs (a killed run)."""
    listing = _run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label={CLUSTER_LABEL}",
            "--format",
            "{{json .Labels}}",
        ],
        env=_host_env(),
        check=False,
        timeout=60,
    )
    return dead_clusters(listing.stdout.splitlines(), prefix=prefix)


def _process_runs(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def dead_clusters(
    label_lines: Iterable[str],
    *,
    prefix: str = NAME_PREFIX,
    alive: Callable[[int], bool] = _process_runs,
) -> list[str]:
    """The clusters among containers' labels (`docker ps --format '{{json .Labels}}'`, one
    line each) whose name starts with `prefix` and whose creating process is not `alive`."""
    dead: set[str] = set()
    for line in label_lines:
        labels = dict(
            item.partition("=")[::2] for item in json.loads(line).split(",") if "=" in item
        )
        name, pid = labels.get(CLUSTER_LABEL, ""), labels.get(PID_LABEL, "")
        if name.startswith(prefix) and pid.isdigit() and not alive(int(pid)):
            dead.add(name)
    return sorted(dead)


def remove_leftovers(prefix: str = NAME_PREFIX) -> list[str]:
    """Remove the clusters `leftover_clusters(prefix)` finds; returns their names."""
    names = leftover_clusters(prefix)
    for name in names:
        remove_cluster(name)
    return names
