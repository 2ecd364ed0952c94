"""Free ports and private subnets for stacks that run side by side on one machine.

Several pytest processes (xdist workers, a colleague's run, another project's CI job) may
start stacks at the same moment. A port found free by binding port 0 stays free only until
someone else binds it, and a subnet is invisible to `docker network ls` until Compose
creates the network, so both are *claimed* in a small JSON file guarded by an exclusive
lock. A claim lasts until the stack releases it, its process is gone (a killed run cannot
release), or it expires; a stack kept on purpose (`--stackgen-keep`) keeps its claims.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

DEFAULT_POOL = ipaddress.IPv4Network("172.29.0.0/16")
DEFAULT_PREFIX = 24
# Longer than any sane test session; short enough that a killed run's claims come back.
CLAIM_TTL_SECONDS = 6 * 3600
PORT_ATTEMPTS = 200


class AllocationError(Exception):
    """No free port or subnet could be found."""


def default_state_dir() -> Path:
    """Shared by every user of the plugin on this machine, so their claims see each other."""
    return Path(os.environ.get("STACKGEN_TESTING_STATE", Path(tempfile.gettempdir()) / "stackgen"))


def docker_subnets() -> list[ipaddress.IPv4Network]:
    """IPv4 subnets of every Docker network on this engine (empty when Docker is absent)."""
    if shutil.which("docker") is None:
        return []
    # Imported on use: the engine boundary loads python-on-whales, which a run that asks for
    # no stack never needs.
    from stackgen.engine import network_subnets

    return [
        subnet
        for network in network_subnets()
        for subnet in network.subnets
        if isinstance(subnet, ipaddress.IPv4Network)
    ]


def bind_free_port() -> int:
    """A port the kernel says is free on every address (what published ports need)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - a probe: closed at once, never listens
        port: int = sock.getsockname()[1]
        return port


class Allocator:
    """Claims ports and /24s (by default) under one lock file; release by owner name."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        pool: ipaddress.IPv4Network = DEFAULT_POOL,
        prefix: int = DEFAULT_PREFIX,
        ttl: float = CLAIM_TTL_SECONDS,
    ) -> None:
        self.state_dir = state_dir or default_state_dir()
        self.pool = pool
        self.prefix = prefix
        self.ttl = ttl

    @property
    def claims_file(self) -> Path:
        return self.state_dir / "claims.json"

    @contextlib.contextmanager
    def _claims(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.state_dir / "claims.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                claims = self._read()
                now = time.time()
                for kind in ("ports", "subnets"):
                    table = claims.setdefault(kind, {})
                    for key in [k for k, v in table.items() if _stale(v, now)]:
                        del table[key]
                yield claims
                tmp = self.claims_file.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(claims, indent=1, sort_keys=True))
                os.replace(tmp, self.claims_file)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.claims_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _claim(self, owner: str) -> dict[str, Any]:
        return {"owner": owner, "pid": os.getpid(), "expires": time.time() + self.ttl}

    def ports(self, count: int, owner: str) -> list[int]:
        """`count` distinct ports, free now and claimed by nobody else."""
        with self._claims() as claims:
            taken = claims["ports"]
            found: list[int] = []
            for _ in range(PORT_ATTEMPTS):
                port = bind_free_port()
                if str(port) not in taken and port not in found:
                    found.append(port)
                if len(found) == count:
                    break
            else:
                raise AllocationError(f"no {count} free ports after {PORT_ATTEMPTS} attempts")
            for port in found:
                taken[str(port)] = self._claim(owner)
            return found

    def subnet(self, owner: str) -> ipaddress.IPv4Network:
        """A subnet of the pool that no Docker network overlaps and nobody has claimed."""
        in_use = docker_subnets()
        with self._claims() as claims:
            taken = claims["subnets"]
            for candidate in self.pool.subnets(new_prefix=self.prefix):
                if str(candidate) in taken or _overlaps(candidate, in_use):
                    continue
                taken[str(candidate)] = self._claim(owner)
                return candidate
        raise AllocationError(
            f"every /{self.prefix} of {self.pool} is used by a Docker network or claimed "
            f"(claims: {self.claims_file})"
        )

    def keep(self, owner: str) -> None:
        """Mark an owner's claims as a stack left running on purpose (`--stackgen-keep`)."""
        with self._claims() as claims:
            for table in claims.values():
                for value in table.values():
                    if value.get("owner") == owner:
                        value["kept"] = True

    def kept_owners(self) -> set[str]:
        with self._claims() as claims:
            return {
                str(v.get("owner"))
                for table in claims.values()
                for v in table.values()
                if v.get("kept")
            }

    def release(self, owner: str) -> None:
        with self._claims() as claims:
            for table in claims.values():
                for key in [k for k, v in table.items() if v.get("owner") == owner]:
                    del table[key]


def _stale(claim: dict[str, Any], now: float) -> bool:
    """Expired, or made by a process that is gone and did not keep its stack on purpose."""
    if claim.get("expires", 0) < now:
        return True
    pid = claim.get("pid")
    return not claim.get("kept") and isinstance(pid, int) and not Path(f"/proc/{pid}").exists()


def _overlaps(candidate: ipaddress.IPv4Network, others: Iterable[ipaddress.IPv4Network]) -> bool:
    return any(candidate.overlaps(other) for other in others)
