"""Real stacks in real containers, through real TLS, with certificates issued by Pebble.

`make_stack` is a thin user of the shipped pytest plugin's machinery (stackgen.testing): one
fixture library, two users. What differs from a plugin user's stack is fixed here: this
slot's ports and subnet, one session Pebble for all stacks, ACME by default.

- Docker tests fail, never skip, when CI=true and the engine is missing.
- Every stack gets a unique Compose project, the test ports below and a test subnet, and is
  torn down after its test, on failure and on Ctrl-C (the plugin's teardown).
- A failing test's report carries the stack's container logs and its generated configs
  (the plugin's report hook).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stackgen.proxies import available
from stackgen.testing.plugin import record_stack
from stackgen.testing.stacks import Ports, StackHandle
from stackgen.testing.stacks import StackFactory as PluginFactory

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

# Test stacks publish here (not 80/443: a developer's demo may be running). Two runs on
# one machine take different slots (STACKGEN_TEST_SLOT=0..9): every port, Pebble's too,
# and the subnet move by the slot, so the runs never collide.
# Under pytest-xdist each worker (gw0, gw1, ...) takes its own slot.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
SLOT = int(os.environ.get("STACKGEN_TEST_SLOT", "0")) + int(_WORKER or 0)
PORT_SHIFT = 100 * SLOT
HTTP_PORT = 18080 + PORT_SHIFT
HTTPS_PORT = 18443 + PORT_SHIFT
JELLYFIN_PORT = 18096 + PORT_SHIFT
# Every fixed port of a slot is 18xxx + PORT_SHIFT. The bases span more than 100, so slots
# stay apart only if no two bases are equal modulo 100 (18053 and 18353 were: slot 3's fake
# DNS took slot 0's bind9 port). Every base in use is listed here and checked.
PORT_BASES = {
    "http": 18080,
    "https": 18443,
    "jellyfin": 18096,
    "pebble.dns": 18053,
    "pebble.challtestsrv-management": 18055,
    "pebble.acme": 18140,
    "pebble.management": 18150,
    "dns-pebble.acme": 18142,
    "dns-pebble.management": 18152,
    "short-pebble.acme": 18144,
    "short-pebble.management": 18154,
    "bind9": 18363,
}
assert len({base % 100 for base in PORT_BASES.values()}) == len(PORT_BASES), PORT_BASES
SUBNET = f"172.30.{99 + SLOT}.0/24"
DOMAIN = "jellyfin.stackgen.test"
# The API key the Jellyfin stand-in accepts unless told otherwise (its DEFAULT_API_KEY).
STANDIN_API_KEY = "stackgen-standin-api-key"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.docker)


def _remove_leftovers() -> None:
    """Stacks of this slot left by a killed run hold the slot's subnet: remove them."""
    listing = subprocess.run(
        ["docker", "ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}'],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    for project in sorted(set(listing.stdout.split())):
        if project.startswith((f"sgtest{SLOT}-", f"sghandmade{SLOT}")):
            subprocess.run(
                ["docker", "compose", "-p", project, "down", "--remove-orphans", "-t", "1"],
                capture_output=True,
                check=False,
                timeout=120,
            )


@pytest.fixture(scope="session")
def engine() -> None:
    if _engine_answers():
        _remove_leftovers()
        return
    message = "no Docker engine answers (run `bash tests/infra/engine.sh`)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def images(engine: None) -> dict[str, str]:
    from images.build import build_images  # tests/images/build.py

    return build_images()


@pytest.fixture(scope="session")
def pebble(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from stackgen.testing.pebble import PebbleCA

    # Own ports throughout, so a running `make demo` (whose Pebble has the defaults) is fine.
    ca = PebbleCA(
        state_dir=tmp_path_factory.mktemp("pebble"),
        http_port=HTTP_PORT,
        tls_port=HTTPS_PORT,
        dns_port=PORT_BASES["pebble.dns"] + PORT_SHIFT,
        challtestsrv_management_port=PORT_BASES["pebble.challtestsrv-management"] + PORT_SHIFT,
        acme_port=PORT_BASES["pebble.acme"] + PORT_SHIFT,
        management_port=PORT_BASES["pebble.management"] + PORT_SHIFT,
    )
    ca.start()
    try:
        yield ca
    finally:
        ca.stop()


def stackgen(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return stackgen_with_pid(*args, check=check)[0]


def stackgen_with_pid(
    *args: str, check: bool = True
) -> tuple[subprocess.CompletedProcess[str], int]:
    """`stackgen ARGS` and its process id, which names what it made (a bench's scratch
    stacks and folders): a test then looks for its own leftovers, never another run's."""
    argv = [sys.executable, "-c", "from stackgen.cli import main; main()", *args]
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    result = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise AssertionError(
            f"stackgen {' '.join(args)} exited {result.returncode}\n{result.stderr}"
        )
    return result, process.pid


class Stack(StackHandle):
    """The plugin's stack handle, under the name these tests use for its folder."""

    @property
    def directory(self) -> Path:
        return self.dir


StackFactory = Callable[..., Stack]


@pytest.fixture(scope="session")
def sslyze() -> Path:
    """The third-party TLS scanner (installed by `make tools`)."""
    path = Path(os.environ.get("STACKGEN_SSLYZE", REPO / ".cache/tools-venv/bin/sslyze"))
    if path.is_file():
        return path
    if IN_CI:
        pytest.fail(f"sslyze not found at {path} (run `make tools`)")
    pytest.skip(f"sslyze not found at {path} (run `make tools`)")


@pytest.fixture
def make_stack(
    request: pytest.FixtureRequest,
    images: dict[str, str],
    pebble: Any,
    tmp_path: Path,
) -> Iterator[StackFactory]:
    """Init + up a stack with local substitute images and Pebble as the ACME CA."""
    factory = PluginFactory(
        base_dir=tmp_path,
        images={
            "jellyfin": images["jellyfin-standin"],
            **{proxy: images[_image_name(proxy)] for proxy in available()},
            "certbot": images["certbot"],
            "fail2ban": images["fail2ban"],
        },
        timeout=180,
        handle_class=Stack,
    )

    made: list[Stack] = []

    def pebble_log(stack: StackHandle) -> None:
        stack.notes.append("pebble:\n" + pebble.log_tail())

    def make(
        proxy: str,
        *,
        subpath: str = "",
        network: str = "host",
        start: bool = True,
        tls: str = "acme",
        config: dict[str, Any] | None = None,
    ) -> Stack:
        stack = factory.create(
            proxy,
            subpath=subpath,
            tls=tls,
            config=config,
            network=network,
            domain=DOMAIN,
            ports=Ports(http=HTTP_PORT, https=HTTPS_PORT, jellyfin=JELLYFIN_PORT),
            subnet=SUBNET,
            pebble=pebble,
            project=f"sgtest{SLOT}-{uuid.uuid4().hex[:8]}",
            name=f"stack-{len(factory.stacks)}",
            start=False,
        )
        assert isinstance(stack, Stack)
        record_stack(request.node, stack)
        made.append(stack)
        if start:
            factory.start(stack, on_failure=pebble_log)
        else:
            stack.started = True  # the test may start it itself: always take it down
        return stack

    try:
        yield make
    finally:
        try:
            factory.close_all()
        finally:
            for stack in made:
                _remove_standin_media(stack)


def _remove_standin_media(stack: Stack) -> None:
    """The stand-in's media file (64 MiB in the stack's Jellyfin cache): pytest keeps the
    last three runs' temporary folders, and a run makes about 140 stacks, so the files
    filled 27 GB of a disk. Nothing in a failure's report reads it (the pattern is known)."""
    for media in (stack.directory / "jellyfin" / "cache").glob("standin-media-*.bin"):
        media.unlink(missing_ok=True)


def add_standin_environment(stack: Stack, variables: dict[str, str]) -> None:
    """Hand-edit the generated compose file: give the Jellyfin stand-in these variables."""
    compose = stack.directory / "docker-compose.yml"
    text = compose.read_text()
    anchor = "    environment:\n      TZ:"
    assert text.count(anchor) == 1, text
    lines = "".join(f'      {name}: "{value}"\n' for name, value in variables.items())
    compose.write_text(text.replace(anchor, "    environment:\n" + lines + "      TZ:"))


def exposure_audit(check_id: str) -> bool:
    """A check of verify's exposure audit: on a default stack some of them warn by design
    (the stand-in serves streams without a token, as Jellyfin does; Caddy and Apache cannot
    limit logins), so the "verify is clean" assertions leave them to test_access.py."""
    return check_id.startswith("exposure.")


def _image_name(proxy: str) -> str:
    return "httpd" if proxy == "apache" else proxy
