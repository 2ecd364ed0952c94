"""An edge and a home host joined by userspace WireGuard, the home behind an outbound-only
NAT (tests/edge/topology.py, docs/edge-home.md).

Run by `make test-edge`. One topology for the module; it is removed after the session, on a
failure, on Ctrl-C and on SIGTERM, and one left by a killed run is removed when the next
session starts. Docker tests fail, never skip, when CI=true and the engine is missing. A
failing test's report carries every container's log and both ends' `wg show`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.edge.topology import EdgeHome, remove_leftovers

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_TOPOLOGY: list[EdgeHome] = []
# The stacks `stackgen init --target edge-home` rendered (test_rendered.py): their site
# folder, whose logs and generated files a failing test's report carries.
RENDERED: list[Path] = []
# Measured recovery times and the like, printed at the end of the session.
TIMINGS: dict[str, str] = {}


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return result.returncode == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "edge" in item.path.parts:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def edge_images() -> dict[str, str]:
    if not _engine_answers():
        message = "no Docker engine answers (run `bash tests/infra/engine.sh`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from images.build import build_images  # tests/images/build.py

    return build_images(["wireguard", "jellyfin-standin", "nginx", "debian-base", "fail2ban"])


def _terminate(signum: int, frame: FrameType | None) -> None:
    # pytest runs no teardown on SIGTERM; as KeyboardInterrupt, the topology is removed.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="module")
def topology(
    edge_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeHome]:
    remove_leftovers()
    previous = signal.signal(signal.SIGTERM, _terminate)
    workdir = tmp_path_factory.mktemp("edge-home")
    workdir.chmod(0o700)
    try:
        with EdgeHome(workdir) as made:
            _TOPOLOGY.append(made)
            made.wait_handshake(made.edge, after=0, timeout=60)
            yield made
    finally:
        _TOPOLOGY.clear()
        shutil.rmtree(workdir, ignore_errors=True)  # the keys go with it
        signal.signal(signal.SIGTERM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _TOPOLOGY:
        report.sections.append(("edge/home topology", _TOPOLOGY[0].logs()))
    if report.failed and RENDERED:
        report.sections.append(("rendered edge-home stacks", rendered_report(RENDERED[0])))


def rendered_report(site: Path) -> str:
    """Each side's containers' logs and its generated files (never wg0.conf: it holds the
    side's private key)."""
    parts = []
    for side in ("edge", "home"):
        folder = site / side
        logs = subprocess.run(
            ["docker", "compose", "logs", "--no-color", "--tail", "60"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        parts.append(f"--- {side}: docker compose logs\n{logs.stdout}{logs.stderr}")
        for path in sorted(folder.rglob("*")):
            shown = path.suffix in (".yml", ".toml", ".conf", ".xml") and path.name != "wg0.conf"
            if path.is_file() and shown and ".stackgen" not in path.parts:
                parts.append(f"--- {side}/{path.relative_to(folder)}\n{path.read_text()}")
    return "\n".join(parts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("edge/home tunnel: measured")
        for name, value in TIMINGS.items():
            terminalreporter.write_line(f"{name}: {value}")
