"""The pytest plugin's parts that need no Docker: claims, the resolving session, the stack
folder it renders through stackgen's API, and its command-line options."""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from stackgen import allocate, engine
from stackgen.allocate import AllocationError, Allocator
from stackgen.errors import DockerError
from stackgen.models import ImagesConfig
from stackgen.testing import pebble as pebble_module
from stackgen.testing import plugin
from stackgen.testing import stacks as stacks_module
from stackgen.testing.http import resolving_session
from stackgen.testing.options import image_services, parse_images
from stackgen.testing.pebble import PebbleError, write_listener_pair
from stackgen.testing.stacks import Ports, StackError, StackFactory

# --- claims ----------------------------------------------------------------------------------


def test_ports_are_distinct_claimed_and_released(tmp_path: Path) -> None:
    alloc = Allocator(tmp_path)
    first = alloc.ports(3, "a")
    second = alloc.ports(3, "b")
    assert len(set(first + second)) == 6
    claims = json.loads(alloc.claims_file.read_text())["ports"]
    assert {claims[str(p)]["owner"] for p in first} == {"a"}
    alloc.release("a")
    claims = json.loads(alloc.claims_file.read_text())["ports"]
    assert not any(str(p) in claims for p in first)
    assert all(str(p) in claims for p in second)


def test_kept_stacks_stay_claimed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocate, "docker_subnets", list)
    alloc = Allocator(tmp_path)
    alloc.ports(2, "kept")
    alloc.subnet("kept")
    alloc.subnet("other")
    alloc.keep("kept")
    assert alloc.kept_owners() == {"kept"}


def test_a_claimed_port_is_not_handed_out_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered = iter([40001, 40001, 40002])
    monkeypatch.setattr(allocate, "bind_free_port", lambda: next(offered))
    alloc = Allocator(tmp_path)
    assert alloc.ports(1, "a") == [40001]
    assert alloc.ports(1, "b") == [40002]


def test_subnets_skip_docker_networks_and_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = [ipaddress.IPv4Network("172.29.0.0/23")]
    monkeypatch.setattr(allocate, "docker_subnets", lambda: busy)
    alloc = Allocator(tmp_path)
    assert str(alloc.subnet("a")) == "172.29.2.0/24"
    assert str(alloc.subnet("b")) == "172.29.3.0/24"
    alloc.release("a")
    assert str(alloc.subnet("c")) == "172.29.2.0/24"


def test_subnet_exhaustion_and_expiry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocate, "docker_subnets", list)
    pool = ipaddress.IPv4Network("172.29.0.0/23")
    alloc = Allocator(tmp_path, pool=pool, ttl=3600)
    alloc.subnet("a")
    alloc.subnet("b")
    with pytest.raises(AllocationError, match="every /24"):
        alloc.subnet("c")
    # A killed run never releases: its claims expire.
    killed = Allocator(tmp_path / "killed", pool=pool, ttl=-1)
    killed.subnet("a")
    killed.subnet("b")
    later = Allocator(tmp_path / "killed", pool=pool)
    assert str(later.subnet("c")) == "172.29.0.0/24"


def test_claims_of_a_dead_process_are_dropped_unless_kept(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    alloc = Allocator(tmp_path)
    alloc.claims_file.parent.mkdir(parents=True, exist_ok=True)
    far = time.time() + 3600
    alloc.claims_file.write_text(
        json.dumps(
            {
                "ports": {
                    "40001": {"owner": "gone", "pid": child.pid, "expires": far},
                    "40002": {"owner": "kept", "pid": child.pid, "expires": far, "kept": True},
                },
                "subnets": {},
            }
        )
    )
    alloc.release("nobody")
    assert set(json.loads(alloc.claims_file.read_text())["ports"]) == {"40002"}


def test_concurrent_claims_never_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocate, "docker_subnets", list)
    results: list[str] = []

    def claim(owner: str) -> None:
        results.append(str(Allocator(tmp_path).subnet(owner)))

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 8
    assert len(set(results)) == 8


# --- the resolving session ---------------------------------------------------------------------


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"host": self.headers["Host"], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """HTTPS on loopback with a certificate for `pebble` (and `localhost`), not for the IP."""
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    write_listener_pair(ca, cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], ca
    finally:
        server.shutdown()
        server.server_close()


def test_session_resolves_the_name_and_verifies_it(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    session = resolving_session({"pebble": "127.0.0.1"}, ca)
    answer = session.get(f"https://pebble:{port}/System/Info/Public?x=1", timeout=10).json()
    assert answer == {"host": f"pebble:{port}", "path": "/System/Info/Public?x=1"}


def test_session_still_checks_the_certificate(tls_server: tuple[int, Path], tmp_path: Path) -> None:
    port, _ca = tls_server
    other = tmp_path / "other"
    other.mkdir()
    write_listener_pair(other / "ca.pem", other / "cert.pem", other / "key.pem")
    session = resolving_session({"pebble": "127.0.0.1"}, other / "ca.pem")
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        session.get(f"https://pebble:{port}/", timeout=10)
    # A name the certificate does not carry fails too, even when it resolves.
    session = resolving_session({"jellyfin.stackgen.test": "127.0.0.1"}, _ca)
    with pytest.raises(requests.exceptions.SSLError, match=r"CERTIFICATE_VERIFY_FAILED|match"):
        session.get(f"https://jellyfin.stackgen.test:{port}/", timeout=10)


# --- stack folders -----------------------------------------------------------------------------


def _factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackFactory:
    monkeypatch.setattr(allocate, "docker_subnets", list)
    return StackFactory(
        base_dir=tmp_path / "stacks",
        images={"jellyfin": "example/standin:1", "nginx": "example/nginx:1"},
        allocator=Allocator(tmp_path / "claims"),
    )


def test_factory_renders_a_stack_through_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = _factory(tmp_path, monkeypatch)
    stack = factory.create("nginx", subpath="/jellyfin", start=False)
    assert stack.compose_project.startswith("sgt")
    assert stack.config.ports.listen_address == ipaddress.IPv4Address("127.0.0.1")
    assert stack.url == f"https://jellyfin.stackgen.test:{stack.https_port}/jellyfin"
    assert stack.resolve == "jellyfin.stackgen.test:127.0.0.1"
    assert stack.ca_file == (stack.dir / "tls/ca.pem").resolve()
    assert stack.ca_file.is_file()
    assert str(stack.config.network.subnet).startswith("172.29.")
    assert stack.config.jellyfin.image == "example/standin:1"
    assert stack.config.images.nginx == "example/nginx:1"
    assert "docker-compose.yml" in stack.config_files()
    assert not any("key" in name for name in stack.config_files())
    other = factory.create("traefik", start=False, config={"headers": {"frame_options": "DENY"}})
    assert other.config.headers.frame_options == "DENY"
    assert len({stack.https_port, other.https_port, stack.http_port, other.http_port}) == 4
    assert stack.config.network.subnet != other.config.network.subnet
    claims = json.loads((tmp_path / "claims/claims.json").read_text())
    assert {c["owner"] for c in claims["subnets"].values()} == {
        stack.compose_project,
        other.compose_project,
    }
    factory.close_all()  # never started: nothing to remove in Docker, claims released
    claims = json.loads((tmp_path / "claims/claims.json").read_text())
    assert claims["subnets"] == {} and claims["ports"] == {}


def test_factory_names_bad_input_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = _factory(tmp_path, monkeypatch)
    with pytest.raises(StackError, match="unknown proxy 'lighttpd'"):
        factory.create("lighttpd", start=False)
    with pytest.raises(StackError, match="subpath"):
        factory.create("nginx", subpath="no-slash", start=False, ports=Ports(1080, 1443, 1096))
    claims = json.loads((tmp_path / "claims/claims.json").read_text())
    assert claims["subnets"] == {}


def test_acme_without_pebble_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pebble_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(pebble_module, "PACKAGE_BIN_DIR", tmp_path / "nowhere")
    factory = _factory(tmp_path, monkeypatch)
    with pytest.raises(PebbleError) as raised:
        factory.create("traefik", tls="acme", start=False)
    assert str(raised.value) == (
        "pebble-challtestsrv not found: install Debian's `pebble` package (apt-get install pebble)"
    )
    claims = json.loads((tmp_path / "claims/claims.json").read_text())
    assert claims["ports"] == {} and claims["subnets"] == {}


def test_image_services_are_the_config_images() -> None:
    assert image_services() == ("jellyfin", *ImagesConfig().model_dump())


def test_image_options_are_checked() -> None:
    assert parse_images(["jellyfin=a/b:1", "apache=httpd:x"]) == {
        "jellyfin": "a/b:1",
        "apache": "httpd:x",
    }
    with pytest.raises(ValueError, match="SERVICE=IMAGE"):
        parse_images(["jellyfin"])
    with pytest.raises(ValueError, match="unknown service 'httpd'"):
        parse_images(["httpd=x"])


# --- the plugin as pytest loads it (through the pytest11 entry point) -----------------------


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_options_are_registered_and_validated(tmp_path: Path) -> None:
    shown = _pytest(tmp_path, "--help")
    for option in ("--stackgen-image", "--stackgen-keep", "--stackgen-timeout"):
        assert option in shown.stdout
    (tmp_path / "test_x.py").write_text("def test_x(stackgen_stack):\n    pass\n")
    bad = _pytest(tmp_path, "--stackgen-image", "httpd=x", "test_x.py")
    assert bad.returncode == 4, bad.stdout + bad.stderr
    assert "unknown service 'httpd'" in bad.stderr
    started = time.monotonic()
    good = _pytest(tmp_path, "--stackgen-image", "jellyfin=x", "test_x.py")
    assert good.returncode == 0, good.stdout + good.stderr  # fixture requested, no stack made
    assert time.monotonic() - started < 60


# --- the engine, through stackgen.engine only -------------------------------------------------


def _networks(*entries: tuple[str, str, tuple[str, ...]]) -> list[engine.NetworkSubnets]:
    return [
        engine.NetworkSubnets(name, project, tuple(ipaddress.ip_network(s) for s in subnets))
        for name, project, subnets in entries
    ]


def test_docker_subnets_are_the_engines_ipv4_subnets(monkeypatch: pytest.MonkeyPatch) -> None:
    found = _networks(
        ("bridge", "", ("172.17.0.0/16",)),
        ("sgt1_proxy", "sgt1", ("172.29.3.0/24", "fd00:1::/64")),
        ("none", "", ()),
    )
    monkeypatch.setattr(allocate.shutil, "which", lambda name: "/usr/bin/docker")
    monkeypatch.setattr(engine, "network_subnets", lambda: found)
    assert allocate.docker_subnets() == [
        ipaddress.IPv4Network("172.17.0.0/16"),
        ipaddress.IPv4Network("172.29.3.0/24"),
    ]
    monkeypatch.setattr(allocate.shutil, "which", lambda name: None)
    assert allocate.docker_subnets() == []


def test_leftover_projects_are_dead_runs_from_the_engines_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead_pid = 2**22 + 12345  # above pid_max's default: no such process
    alive = os.getpid()
    found = _networks(
        (f"sgt{dead_pid}-a_proxy", f"sgt{dead_pid}-a", ("172.29.1.0/24",)),
        (f"sgt{dead_pid}-b_proxy", f"sgt{dead_pid}-b", ("172.29.2.0/24",)),
        (f"sgt{alive}-c_proxy", f"sgt{alive}-c", ("172.29.3.0/24",)),
        ("someone_default", "someone", ("172.18.0.0/16",)),
        ("bridge", "", ("172.17.0.0/16",)),
    )
    monkeypatch.setattr(engine, "network_subnets", lambda: found)
    assert stacks_module.leftover_projects(kept={f"sgt{dead_pid}-b"}) == [f"sgt{dead_pid}-a"]


def test_the_plugin_asks_the_engine_boundary_whether_stacks_can_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse() -> None:
        raise DockerError("the Docker engine does not answer (is dockerd running?)")

    monkeypatch.setattr(engine, "require_engine", refuse)
    assert plugin._engine_problem() == "the Docker engine does not answer (is dockerd running?)"
    monkeypatch.setattr(engine, "require_engine", lambda: None)
    assert plugin._engine_problem() == ""


def test_the_shipped_harness_runs_no_docker_command_of_its_own() -> None:
    """stackgen.testing reaches the engine through stackgen.engine; the one `docker` command
    line left is StackHandle.compose, the pass-through a test author calls."""
    package = Path(stacks_module.__file__).parent
    commands = {
        (path.name, line.strip())
        for path in package.glob("*.py")
        for line in path.read_text().splitlines()
        if '["docker"' in line
    }
    assert commands == {("stacks.py", '["docker", "compose", *project, *args],')}


def test_failure_reports_leave_out_a_swarms_secret_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A swarm keeps each DNS-01 credential in `secrets/NAME`, a file without a suffix like
    a Caddyfile: a failing test's report (CI artefacts) must not carry it."""
    stack = _factory(tmp_path, monkeypatch).create("nginx", start=False)
    secret = stack.dir / "secrets" / "CF_DNS_API_TOKEN"
    secret.parent.mkdir()
    secret.write_text("cf-token-for-no-report\n")
    files = stack.config_files()
    assert "docker-compose.yml" in files
    assert not any("cf-token-for-no-report" in text for text in files.values()), list(files)
