"""The pure parts of the idempotent lifecycle: whose process holds a port, and which
project a broken stack folder belongs to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stackgen.errors import ExitCode, FilesystemError, InvalidInputError, StackInterrupted
from stackgen.stack import project_name
from stackgen.targets.ports import Holder as _Holder
from stackgen.targets.ports import Own as _Own
from stackgen.targets.ports import held_by_us as _held_by_us
from stackgen.targets.ports import runs_in
from stackgen.writer import MANIFEST, manifest_project
from tests.unit.test_cli import BASE, stackgen


def test_a_port_held_by_a_process_of_our_container_is_ours() -> None:
    """Before: `up` on a running stack with host-network Jellyfin refused, taking the
    stack's own Jellyfin (a process, not a published port) for a foreign port holder."""
    parent = subprocess.Popen(  # a "container init" with one child, like tini + jellyfin
        [
            sys.executable,
            "-c",
            "import subprocess, sys; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
            "print(c.pid, flush=True); c.wait()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        ours = _Own(frozenset({"p-jellyfin-1"}), frozenset({parent.pid}))
        assert runs_in(parent.pid, ours.pids)
        assert runs_in(child, ours.pids)
        assert _held_by_us(_Holder("python3 (pid x)", pid=child), ours)
        assert not _held_by_us(
            _Holder("python3 (pid x)", pid=child), _Own(frozenset(), frozenset())
        )
    finally:
        parent.kill()
        parent.wait()


def test_a_port_held_by_another_process_or_container_is_not_ours() -> None:
    ours = _Own(frozenset({"p-traefik-1"}), frozenset({2_000_000}))
    assert not runs_in(1, ours.pids)
    assert not _held_by_us(_Holder("python (pid)", pid=os.getpid()), ours)
    assert not _held_by_us(_Holder("another process"), ours)
    assert _held_by_us(_Holder("container p-traefik-1", container="p-traefik-1"), ours)
    assert not _held_by_us(_Holder("container other-1", container="other-1"), ours)


def test_the_manifest_records_the_project(tmp_path: Path) -> None:
    assert stackgen(*BASE, "--project", "jfprod", "--dir", str(tmp_path)).returncode == 0
    assert manifest_project(tmp_path) == "jfprod"
    assert json.loads((tmp_path / MANIFEST).read_text())["project"] == "jfprod"
    # A later render keeps it.
    assert stackgen("render", "--dir", str(tmp_path)).returncode == 0
    assert manifest_project(tmp_path) == "jfprod"


def test_project_name_from_toml_then_manifest_then_the_option(tmp_path: Path) -> None:
    assert stackgen(*BASE, "--project", "jfprod", "--dir", str(tmp_path)).returncode == 0
    assert project_name(tmp_path, None) == "jfprod"
    assert project_name(tmp_path, "other") == "jfprod"  # the stack's own name first
    (tmp_path / "stackgen.toml").write_text("proxy = ")
    assert project_name(tmp_path, "other") == "jfprod"  # the manifest's
    (tmp_path / MANIFEST).write_text("{garbled")
    assert project_name(tmp_path, "other") == "other"
    with pytest.raises(InvalidInputError, match="--project NAME"):
        project_name(tmp_path, None)
    with pytest.raises(FilesystemError, match="--project NAME"):
        project_name(tmp_path / "nothing-here", None)


PATCHED_UP = """
import sys
from stackgen import cli, lifecycle
from stackgen.errors import StackInterrupted

def interrupted(*args, **kwargs):
    raise StackInterrupted("interrupted: stopped and removed\\nwhat `up` had started")

lifecycle.up = interrupted
sys.argv = ["stackgen", "up", "--dir", sys.argv[1]]
cli.main()
"""


def test_an_interrupted_up_says_what_it_left_in_one_line_exit_130(tmp_path: Path) -> None:
    """Typer turns a KeyboardInterrupt into a silent exit 130; `up`'s says what it left."""
    assert stackgen(*BASE, "--dir", str(tmp_path)).returncode == 0
    result = subprocess.run(
        [sys.executable, "-c", PATCHED_UP, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == ExitCode.INTERRUPTED, result.stderr
    assert result.stderr.strip().splitlines() == [
        "stackgen: error: interrupted: stopped and removed what `up` had started"
    ]
    assert isinstance(StackInterrupted("x"), KeyboardInterrupt)  # pytest still stops on it


def test_up_asks_again_once_a_just_deployed_certificate_is_surely_applied(
    tmp_path: Path,
) -> None:
    """CI saw `up` return while nginx's old workers still served the placeholder: a
    certificate deployed moments ago means the watcher's reload may still be switching."""
    import time

    from stackgen.lifecycle import _reload_pending
    from stackgen.proxies.base import WATCH_LATENCY_SECONDS
    from stackgen.stack import Stack

    nginx, caddy = tmp_path / "nginx", tmp_path / "caddy"
    for proxy, folder in (("nginx", nginx), ("caddy", caddy)):
        args = [proxy, *BASE[2:], "--dir", str(folder)]
        assert stackgen("init", *args).returncode == 0
    stack = Stack.load(nginx)
    assert _reload_pending(stack) == 0.0  # no certificate deployed yet
    marker = nginx / "certs" / "deployed"
    marker.write_text("jellyfin.example.com\n")
    assert 0 < _reload_pending(stack) <= WATCH_LATENCY_SECONDS
    old = time.time() - WATCH_LATENCY_SECONDS - 1
    os.utime(marker, (old, old))
    assert _reload_pending(stack) == 0.0
    # Caddy's own ACME client swaps certificates in place: nothing to wait for.
    (caddy / "certs").mkdir(exist_ok=True)
    (caddy / "certs" / "deployed").write_text("x\n")
    assert _reload_pending(Stack.load(caddy)) == 0.0
