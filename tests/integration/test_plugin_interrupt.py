"""A test run stopped mid-test — Ctrl-C at a terminal, SIGTERM from a cancelled CI job —
still removes the plugin's stacks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SLEEPING_TEST = """
import time
from pathlib import Path


def test_sleeps(stackgen_stack):
    stack = stackgen_stack("haproxy")
    Path("project.txt").write_text(stack.compose_project)
    time.sleep(300)
"""

# pytest as a terminal starts it: SIGINT raises KeyboardInterrupt (a child of a
# non-interactive shell would inherit SIGINT ignored).
RUN_PYTEST = (
    "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.exit(pytest.main(sys.argv[1:]))"
)


def _containers_and_networks(project: str) -> list[str]:
    label = f"label=com.docker.compose.project={project}"
    found: list[str] = []
    for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
        found += subprocess.run(
            ["docker", *kind, "-q", "--filter", label],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_removes_its_stack(
    engine: None, images: dict[str, str], tmp_path: Path, signum: signal.Signals
) -> None:
    (tmp_path / "test_sleeping.py").write_text(SLEEPING_TEST)
    marker = tmp_path / "project.txt"
    argv = [sys.executable, "-c", RUN_PYTEST, "-p", "no:cacheprovider", "-q"]
    options = [
        f"--basetemp={tmp_path / 'tmp'}",
        f"--stackgen-image=jellyfin={images['jellyfin-standin']}",
        f"--stackgen-image=haproxy={images['haproxy']}",
        f"--stackgen-image=fail2ban={images['fail2ban']}",
    ]
    child = subprocess.Popen(
        [*argv, *options, "test_sleeping.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (marker.is_file() and marker.read_text()) and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()[0][-4000:]
            time.sleep(0.5)
        project = marker.read_text()
        assert _containers_and_networks(project), "the stack was not running"
        child.send_signal(signum)
        output, _ = child.communicate(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=60)
    assert "KeyboardInterrupt" in output, output[-4000:]
    assert _containers_and_networks(project) == [], output[-4000:]
