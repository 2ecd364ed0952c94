"""A real multi-node swarm on this machine: Docker-in-Docker nodes (tests/swarm/cluster.py).

Run by `make test-swarm` (too slow for `make test`). One cluster per session: a manager and
two workers labelled `stackgen.role.edge=true` and `stackgen.role.media=true`, on an internal bridge
network of their own. It is removed after the session, on a failure, on Ctrl-C and on
SIGTERM; a cluster left by a killed run is removed when the next session starts.

- Docker tests fail, never skip, when CI=true and the engine is missing.
- A failing test's report carries the swarm's nodes, services, tasks (with their errors),
  service logs, each node's containers and dockerd log (section "swarm cluster"), and a
  test that deployed a stack adds the stack file (section "stack file").
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.swarm.cluster import NAME_PREFIX, SwarmCluster, remove_leftovers

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

SLOT = int(os.environ.get("STACKGEN_TEST_SLOT", "0"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
STANDIN = "stackgen-test/jellyfin-standin:local"
# The proxies the multi-node test deploys (`make test-swarm SWARM_PROXIES=nginx,caddy`).
PROXIES = tuple(
    name.strip()
    for name in os.environ.get("STACKGEN_SWARM_PROXIES", "traefik,nginx,caddy").split(",")
    if name.strip()
)
CLIENT = "stackgen-test/debian-base:local"

_CLUSTER: list[SwarmCluster] = []
# Diagnostics taken when a module's stack failed to come up (its fixture removes the stack
# before pytest reports the error), attached to the next failed setup's report.
_SETUP_FAILURES: list[str] = []


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    result = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env=env,
    )
    return result.returncode == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "swarm" in item.path.parts:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def swarm_images() -> dict[str, str]:
    if not _engine_answers():
        message = "no Docker engine answers (run `bash tests/infra/engine.sh`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from images.build import build_images  # tests/images/build.py

    return build_images(
        [
            "swarm-node",
            "jellyfin-standin",
            "debian-base",
            # DNS-01 (test_dns01.py): bind9 on this host, Traefik and nginx with certbot.
            "bind9",
            "certbot-dns",
            *{image_name(p) for p in (*PROXIES, "traefik", "nginx")},
        ]
    )


def _terminate(signum: int, frame: FrameType | None) -> None:
    # pytest runs no teardown on SIGTERM; as KeyboardInterrupt, the cluster is removed.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster(
    swarm_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SwarmCluster]:
    """Manager + edge + media nodes; the stand-in on media, a client image on edge.

    `stacks_dir(cluster)` is a folder every node sees at the same path (for stack folders).
    """
    # This slot's clusters only: another run's are not ours to remove, even when dead.
    prefix = f"{NAME_PREFIX}s{SLOT}-"
    remove_leftovers(prefix)
    for old in Path("/tmp").glob(f"sgswarm-slot{SLOT}-*"):  # a killed run's folders
        pid = old.name.rpartition("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    previous = signal.signal(signal.SIGTERM, _terminate)
    # Short: unix socket paths are limited to 108 bytes, and pytest's tmp paths are long.
    state = Path(f"/tmp/sgswarm-slot{SLOT}-{os.getpid()}")
    stacks = state / "stacks"
    stacks.mkdir(parents=True, exist_ok=True)
    try:
        with SwarmCluster.create(
            state,
            roles=("edge", "media"),
            shared_dirs=[stacks],
            name=f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:6]}",
        ) as made:
            _CLUSTER.append(made)
            made.load_images([STANDIN], role="media")
            made.load_images([CLIENT], role="edge")
            yield made
    finally:
        _CLUSTER.clear()
        shutil.rmtree(state, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when == "setup" and _SETUP_FAILURES:
        report.sections.append(("swarm cluster when the stack failed", _SETUP_FAILURES.pop()))
        return
    if report.failed and _CLUSTER:
        report.sections.append(("swarm cluster", _CLUSTER[0].diagnostics()))
        stack_file = getattr(item, "stackgen_stack_file", None)
        if isinstance(stack_file, Path) and stack_file.is_file():
            report.sections.append((f"stack file {stack_file}", stack_file.read_text()))


def stacks_dir(cluster: SwarmCluster) -> Path:
    """The folder every node of the cluster sees at the same path as this host."""
    return cluster.shared_dirs[0]


def image_name(proxy: str) -> str:
    """The local substitute image of a proxy (Apache's official image is httpd)."""
    return "httpd" if proxy == "apache" else proxy


def record_setup_failure(cluster: SwarmCluster, stack_file: Path) -> None:
    """Take the cluster's diagnostics and the stack file now, for the setup error's report."""
    text = stack_file.read_text() if stack_file.is_file() else "(not written)"
    _SETUP_FAILURES.append(f"{cluster.diagnostics()}\n=== stack file {stack_file} ===\n{text}")
