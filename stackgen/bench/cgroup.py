"""CPU time and anonymous memory of one container, read from its cgroup (v2 or v1).

The engine's own statistics API samples once a second; the cgroup's counters are exact
and cheap to read, so a run can be charged the CPU it cost to the microsecond.
"""

from __future__ import annotations

from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


class CgroupError(Exception):
    pass


class Cgroup:
    """One container's cgroup (by full container id), v2 or v1."""

    def __init__(self, cid: str, root: Path = CGROUP_ROOT) -> None:
        v2 = [root / "system.slice" / f"docker-{cid}.scope", root / "docker" / cid]
        self.v2 = next((p for p in v2 if (p / "cpu.stat").is_file()), None)
        self.cpu_v1 = root / "cpuacct" / "docker" / cid / "cpuacct.usage"
        self.mem_v1 = root / "memory" / "docker" / cid / "memory.stat"
        if self.v2 is None and not self.cpu_v1.is_file():
            raise CgroupError(f"no cgroup found for container {cid[:12]}")

    def cpu_seconds(self) -> float:
        if self.v2 is not None:
            for line in (self.v2 / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
            raise CgroupError("cpu.stat has no usage_usec")
        return int(self.cpu_v1.read_text()) / 1e9

    def anon_bytes(self) -> int:
        path, key = (self.v2 / "memory.stat", "anon") if self.v2 else (self.mem_v1, "total_rss")
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
        raise CgroupError(f"{path} has no {key}")
