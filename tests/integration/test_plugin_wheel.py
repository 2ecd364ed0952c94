"""The pytest plugin as a user gets it: only the built wheel (plus pytest and pytest-xdist) in
a fresh virtual environment, a test file in a folder outside this repository, two stacks
in parallel (one with a subpath, one with a certificate from Pebble over HTTP-01), and
nothing left behind. A deliberately failing test shows the stack's compose logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from integration.conftest import REPO

from stackgen.allocate import default_state_dir

USER_TESTS = """
import os
from pathlib import Path


def _record(stack):
    with Path(os.environ["STACKS_FILE"]).open("a") as out:
        out.write(stack.compose_project + "\\n")


def test_nginx_under_a_subpath(stackgen_stack):
    stack = stackgen_stack("nginx", subpath="/jellyfin", tls="internal")
    _record(stack)
    report = stack.verify()
    assert report.ok, report.render_table()
    assert "redirect.acme-path" in report.skipped  # tls internal: nothing answers HTTP-01
    assert stack.url.endswith("/jellyfin")
    info = stack.session().get(stack.url + "/System/Info/Public", timeout=10).json()
    assert info["ProductName"] == "Jellyfin Server"


def test_traefik_with_a_certificate_from_pebble(stackgen_stack):
    stack = stackgen_stack("traefik", tls="acme")
    _record(stack)
    report = stack.verify()
    assert report.failed == 0, report.render_table()
    health = stack.session().get(stack.url + "/health", timeout=10)
    assert (health.status_code, health.text) == (200, "Healthy")
"""

FAILING_TEST = """
import os
from pathlib import Path


def test_a_wrong_expectation(stackgen_stack):
    stack = stackgen_stack("caddy")
    with Path(os.environ["STACKS_FILE"]).open("a") as out:
        out.write(stack.compose_project + "\\n")
    assert stack.session().get(stack.url + "/health", timeout=10).text == "Sick"
"""


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=900
    )


def _leftovers(projects: list[str]) -> list[str]:
    found = []
    for project in projects:
        label = f"label=com.docker.compose.project={project}"
        for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
            listing = subprocess.run(
                ["docker", *kind, "-q", "--filter", label],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            found += [f"{project}: {' '.join(kind)}: {x}" for x in listing.stdout.split()]
    return found


def test_plugin_from_the_wheel_runs_parallel_stacks_and_cleans_up(
    engine: None, images: dict[str, str], tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("stackgen-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin/python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(
        [*pip, str(wheel), "pytest", "pytest-xdist"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    user = tmp_path / "user-project"  # no pyproject, no conftest: nothing of this repository
    user.mkdir()
    (user / "test_behind_proxies.py").write_text(USER_TESTS)
    (user / "failing").mkdir()
    (user / "failing/test_failing.py").write_text(FAILING_TEST)
    stacks_file = tmp_path / "stacks.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    env |= {"STACKS_FILE": str(stacks_file), "NO_COLOR": "1"}
    options = [
        f"--stackgen-image=jellyfin={images['jellyfin-standin']}",
        f"--stackgen-image=nginx={images['nginx']}",
        f"--stackgen-image=traefik={images['traefik']}",
        f"--stackgen-image=caddy={images['caddy']}",
        f"--stackgen-image=fail2ban={images['fail2ban']}",
        "--stackgen-timeout=180",
    ]
    pytest_argv = [str(env_dir / "bin/python"), "-m", "pytest", "-p", "no:cacheprovider"]

    passing = _run(
        [
            *pytest_argv,
            "-n",
            "2",
            f"--basetemp={tmp_path / 'tmp-pass'}",
            *options,
            "test_behind_proxies.py",
        ],
        user,
        env,
    )
    assert passing.returncode == 0, passing.stdout[-6000:] + passing.stderr[-2000:]
    assert "2 passed" in passing.stdout
    assert "created: 2/2 workers" in passing.stdout  # really in parallel, on two workers

    failing = _run(
        [*pytest_argv, f"--basetemp={tmp_path / 'tmp-fail'}", *options, "failing"], user, env
    )
    assert failing.returncode == 1, failing.stdout[-6000:] + failing.stderr[-2000:]
    out = failing.stdout
    assert "1 failed" in out
    assert "stackgen stack sgt" in out, out[-6000:]
    assert "=== docker compose logs ===" in out
    assert "caddy-1" in out and "jellyfin-1" in out  # the containers' own lines
    assert "=== docker-compose.yml ===" in out and "=== caddy/etc/Caddyfile ===" in out

    projects = stacks_file.read_text().split()
    assert len(projects) == 3, projects
    assert _leftovers(projects) == []
    claims_file = default_state_dir() / "claims.json"
    claims = json.loads(claims_file.read_text())
    owners = {c["owner"] for table in claims.values() for c in table.values()}
    assert not any(o.startswith(tuple(projects)) for o in owners), "claims were not released"
