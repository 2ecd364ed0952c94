"""Whether the ports a stack publishes are free on this machine, or held by the stack
itself (`up` is re-runnable), for every target that publishes on this machine."""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from stackgen.engine import DockerException, containers_publishing
from stackgen.errors import DockerError
from stackgen.models import JellyfinNetwork, StackConfig
from stackgen.process import run


@dataclass(frozen=True)
class Holder:
    description: str  # "container NAME", "PROGRAM (pid N)" or "another process"
    container: str | None = None
    pid: int | None = None


@dataclass(frozen=True)
class Own:
    """What the stack itself runs on this machine."""

    names: frozenset[str] = frozenset()
    pids: frozenset[int] = frozenset()  # the main process of each running container


def port_holder(port: int, protocol: str = "tcp") -> Holder:
    """Best effort: which container or process publishes/listens on a TCP (or UDP) port."""
    try:
        names = containers_publishing(port if protocol == "tcp" else f"{port}/{protocol}")
    except DockerException:
        names = []
    if names:
        return Holder(f"container {names[0]}", container=names[0])
    ss = run(["ss", f"-Hl{protocol[0]}np", f"sport = :{port}"], check=False, timeout=10)
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', ss.stdout)
    if match is None:
        return Holder("another process")
    return Holder(f"{match.group(1)} (pid {match.group(2)})", pid=int(match.group(2)))


def port_free(address: str, port: int, kind: socket.SocketKind = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


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


def held_by_us(holder: Holder, own: Own) -> bool:
    if holder.container is not None:
        return holder.container in own.names
    return holder.pid is not None and runs_in(holder.pid, own.pids)


def require_free_ports(config: StackConfig, own: Own) -> None:
    ports = [("ports.https", config.ports.https)]
    if config.publishes_http:
        ports.insert(0, ("ports.http", config.ports.http))
    if config.jellyfin.network_mode is JellyfinNetwork.HOST:
        ports.append(("jellyfin.port", config.jellyfin.port))
    address = str(config.ports.listen_address)
    for field, port in ports:
        if port_free(address, port):
            continue
        holder = port_holder(port)
        if held_by_us(holder, own):
            continue  # our own stack, already running: `up` is re-runnable
        raise DockerError(
            f"port {port} ({field}) is in use by {holder.description}: free it or change {field}"
        )
