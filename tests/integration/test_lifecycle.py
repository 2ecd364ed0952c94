"""The lifecycle on a real engine where it is easy to get wrong: `up` re-run on a running
stack (Jellyfin on the host network: its port is held by the stack's own process), `status`
and `down` with the stack's files gone, `status`'s exit code on a degraded stack, a missing
image, SIGTERM during `up`, and `verify` of a healthy stack that uses no HTTP-01."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from integration.conftest import Stack, StackFactory, stackgen

from stackgen.errors import ExitCode


def _container_ids(stack: Stack) -> list[str]:
    return sorted(stack.compose("ps", "-a", "-q").stdout.split())


def _project_containers(project: str) -> list[str]:
    listing = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return listing.stdout.split()


def test_up_again_is_a_no_op_and_status_and_down_work_without_the_files(
    make_stack: StackFactory,
) -> None:
    stack = make_stack("traefik", network="host")  # the default network mode
    before = _container_ids(stack)

    again = stackgen("up", "--dir", str(stack.directory), "--timeout", "120", check=False)
    assert again.returncode == 0, again.stderr  # before: "port 18496 ... in use by python3"
    assert _container_ids(stack) == before  # nothing recreated

    healthy = stackgen("status", "--dir", str(stack.directory), check=False)
    assert healthy.returncode == 0, healthy.stderr

    # Jellyfin down: status says so by its exit code, and still shows the certificate.
    assert stack.compose("stop", "jellyfin").returncode == 0
    degraded = stackgen("status", "--dir", str(stack.directory), "--json", check=False)
    assert degraded.returncode == ExitCode.DEGRADED, degraded.stderr
    report = json.loads(degraded.stdout)
    assert report["healthy"] is False
    assert any(p.startswith("jellyfin (exited") for p in report["problems"]), report["problems"]
    assert report["certificate"] is not None and report["certificate"]["verified"]
    assert degraded.stderr.strip().splitlines()[-1].startswith("stackgen: error: ")
    assert "jellyfin" in degraded.stderr.strip().splitlines()[-1]

    # verify names the one root cause; nothing passes on the proxy's error page.
    dead = stackgen("verify", "--dir", str(stack.directory), "--json", check=False)
    assert dead.returncode == ExitCode.PROBLEMS_FOUND, dead.stderr
    verdict = json.loads(dead.stdout)
    failed = [c["id"] for c in verdict["checks"] if c["status"] == "fail"]
    assert failed == ["reach.upstream"], dead.stdout
    not_run = {entry["id"]: entry["reason"] for entry in verdict["not_run"]}
    assert not_run["upload.20mb"] == "not run: reach.upstream failed"
    assert "jellyfin.forwarded" in not_run

    # The proxy stopped too: one failure, that nothing answers, and its fix.
    assert stack.compose("stop", "traefik").returncode == 0
    gone = stackgen("verify", "--dir", str(stack.directory), "--json", check=False)
    verdict = json.loads(gone.stdout)
    failed = [c for c in verdict["checks"] if c["status"] == "fail"]
    assert [c["id"] for c in failed] == ["reach.proxy"], gone.stdout
    assert "stackgen up" in failed[0]["hint"]
    assert {entry["reason"] for entry in verdict["not_run"]} == {"not run: reach.proxy failed"}

    # The files gone or broken: status and down still find the containers by the project.
    (stack.directory / "docker-compose.yml").unlink()
    (stack.directory / "stackgen.toml").write_text("proxy = [broken")
    listed = stackgen("status", "--dir", str(stack.directory), "--json", check=False)
    assert listed.returncode == ExitCode.DEGRADED, listed.stderr
    assert {s["service"] for s in json.loads(listed.stdout)["services"]} == {
        "traefik",
        "jellyfin",
        "fail2ban",
    }
    down = stackgen("down", "--dir", str(stack.directory), check=False)
    assert down.returncode == 0, down.stderr
    assert _project_containers(stack.compose_project) == []


def test_a_missing_image_is_named_before_anything_starts(make_stack: StackFactory) -> None:
    """Before: Compose started what it could and `up` ended "did not become healthy:
    unknown", exit 7. The registry here is a closed loopback port: no traffic leaves."""
    absent = "127.0.0.1:9/stackgen-test/absent:none"
    stack = make_stack(
        "caddy", network="bridge", start=False, config={"jellyfin": {"image": absent}}
    )
    result = stackgen("up", "--dir", str(stack.directory), "--timeout", "60", check=False)
    assert result.returncode == ExitCode.DOCKER, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"image {absent} is not present locally and cannot be pulled" in last
    assert _project_containers(stack.compose_project) == []


def _compose_up_processes(project: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"compose" in argv and b"up" in argv and project.encode() in b" ".join(argv):
            found.append(int(entry.name))
    return found


def test_sigterm_during_up_stops_what_it_started(make_stack: StackFactory) -> None:
    """Before: SIGTERM killed stackgen and left `docker compose up` running (orphaned)
    until its timeout, and the half-started stack behind."""
    stack = make_stack("nginx", network="bridge", start=False)
    up = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from stackgen.cli import main; main()",
            "up",
            "--dir",
            str(stack.directory),
            "--timeout",
            "180",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    deadline = time.monotonic() + 120
    while not _project_containers(stack.compose_project):  # compose is creating them
        assert up.poll() is None and time.monotonic() < deadline, "up ended before starting"
        time.sleep(0.2)
    up.send_signal(signal.SIGTERM)
    _, stderr = up.communicate(timeout=120)
    assert up.returncode == ExitCode.INTERRUPTED, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"stackgen: error: interrupted: stopped and removed what `up` had started of "
        f"{stack.compose_project}"
    ), stderr
    assert _compose_up_processes(stack.compose_project) == []
    assert _project_containers(stack.compose_project) == []


def test_verify_passes_a_fresh_stack_that_uses_no_http01(make_stack: StackFactory) -> None:
    """Before: redirect.acme-path failed a freshly generated, healthy stack in TLS mode
    internal (Traefik, nginx, HAProxy and Apache rightly redirect the path there)."""
    stack = make_stack("traefik", network="bridge", tls="internal")
    result = stackgen("verify", "--dir", str(stack.directory), "--json", check=False)
    report = json.loads(result.stdout)
    problems = [f"{c['id']}: {c['reason']}" for c in report["checks"] if c["status"] == "fail"]
    assert result.returncode == 0, "\n".join(problems) or result.stderr
    assert "redirect.acme-path" in {s["id"] for s in report["skipped"]}
