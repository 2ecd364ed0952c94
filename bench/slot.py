"""Which names, addresses and ports one `make bench` (or `bench.tune`) run owns.

Everything a run makes is machine-wide: the client namespace and its veth pair, the
published ports, the stacks' subnets, the Compose projects and containers. Two runs on one
engine must therefore take different slots (`BENCH_SLOT=0..9`), and a run holds its slot's
lock for as long as it lives, so a second run in the same slot stops at once instead of
tearing down the first one's stacks in its start-up cleanup.

Slot 0 keeps the names and numbers the harness always had. The integration tests' slots
take ports 18000-19999 and the subnets 172.30.99-108.0/24; a bench slot takes ports
28000 + 1000 x slot upwards (28xxx-37xxx) and 172.31.200 + 2 x slot (and the next /24), so
the two never meet.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

SLOTS = 10
PORT_STRIDE = 1000


class SlotError(Exception):
    """The slot is not a number in range, or another run holds it."""


class Layout(TypedDict):
    http: int
    https: int
    jellyfin: int
    subnet: str


@dataclass(frozen=True)
class Slot:
    number: int

    def __post_init__(self) -> None:
        if not 0 <= self.number < SLOTS:
            raise SlotError(f"BENCH_SLOT={self.number}: expected 0..{SLOTS - 1}")

    @property
    def _suffix(self) -> str:
        return "" if self.number == 0 else str(self.number)

    def _port(self, base: int) -> int:
        return base + PORT_STRIDE * self.number

    @property
    def netns(self) -> str:
        return f"sgbench{self._suffix}"

    @property
    def host_if(self) -> str:  # interface names are 15 characters at most
        return f"sgb{self._suffix}-host"

    @property
    def ns_if(self) -> str:
        return f"sgb{self._suffix}-ns"

    @property
    def host_ip(self) -> str:
        return f"10.203.{self.number}.1"

    @property
    def ns_ip(self) -> str:
        return f"10.203.{self.number}.2"

    @property
    def project_prefix(self) -> str:
        return f"sgbench{self._suffix}-"

    @property
    def baseline(self) -> str:
        return f"{self.project_prefix}baseline"

    @property
    def pin(self) -> str:
        return f"{self.project_prefix}pin"

    @property
    def pinned_standin(self) -> str:
        return f"stackgen-bench/jellyfin-standin:run{self._suffix}"

    @property
    def layout(self) -> dict[str, Layout]:
        """stackgen's config and the docs config: their published ports and subnets."""
        third = 200 + 2 * self.number
        return {
            "stackgen": {"http": self._port(28080), "https": self._port(28443),
                         "jellyfin": self._port(28096), "subnet": f"172.31.{third}.0/24"},
            "docs": {"http": self._port(28180), "https": self._port(28543),
                     "jellyfin": self._port(28196), "subnet": f"172.31.{third + 1}.0/24"},
        }  # fmt: skip

    @property
    def ceiling_port(self) -> int:
        return self._port(28444)

    @property
    def plain_port(self) -> int:
        return self._port(28081)

    def ports(self) -> list[int]:
        published = [
            port
            for lay in self.layout.values()
            for port in (lay["http"], lay["https"], lay["jellyfin"])
        ]
        return [self.ceiling_port, self.plain_port, *published]


def from_environment() -> Slot:
    text = os.environ.get("BENCH_SLOT", "0").strip() or "0"
    if not text.isdigit():
        raise SlotError(f"BENCH_SLOT={text!r}: expected 0..{SLOTS - 1}")
    return Slot(int(text))


def lock_path(slot: Slot) -> Path:
    # Machine-wide (not per checkout): the names a slot owns are machine-wide too.
    return Path(tempfile.gettempdir()) / f"stackgen-bench-slot{slot.number}.lock"


@contextlib.contextmanager
def holding(slot: Slot) -> Iterator[None]:
    """The slot's lock for the block; SlotError at once when another run holds it."""
    path = lock_path(slot)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another run"
            raise SlotError(
                f"bench slot {slot.number} is in use (pid {holder}): wait for it, or run "
                f"with another BENCH_SLOT (0..{SLOTS - 1})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
