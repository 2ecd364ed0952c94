"""The swarm target on a real multi-node swarm: proxy on the edge node, Jellyfin on the media node.

For each proxy: stackgen renders the stack (`[deploy] target = "swarm"`, the internal CA),
the stack is deployed on the Docker-in-Docker cluster, and a client that is not on any
node reaches the edge node's published HTTPS port. The tests prove what a two-node
deployment needs: cross-node routing, WebSocket, Range, the client's real address at Jellyfin with
KnownProxies covering the proxy's real source, and recovery after the media node is
drained and made active again.

Clients whose address is known: this host (its address on the cluster bridge is the
bridge's gateway) and a container of the host's engine on that bridge at a pinned address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stackgen import lifecycle
from stackgen.config_file import build_config, load_config
from stackgen.models import StackConfig
from stackgen.stack import Stack, init_stack
from stackgen.targets.swarm import target as swarm_ops
from tests.swarm.cluster import SwarmCluster

from .client import Endpoint
from .conftest import CLIENT, PROXIES, STANDIN, image_name, record_setup_failure, stacks_dir

DOMAIN = "jellyfin.stackgen.test"
# Inside the nodes: each node has its own network namespace, so the real ports are free.
HTTPS_PORT = 443
HTTP_PORT = 80
# The stack's overlay (only the nodes' engines know it; apart from the cluster bridge).
OVERLAY_SUBNET = "10.231.6.0/24"
MEDIA_BYTES = 64 * 1024 * 1024  # the stand-in's default generated file
READY_SECONDS = 120.0
# After `availability active`: the task is rescheduled, starts and turns healthy (2 s
# checks), and the proxy must find its new address.
RECOVERY_SECONDS = 90.0


@dataclass
class SwarmStack:
    """A deployed stack: its folder, configuration and where its clients go."""

    proxy: str
    dir: Path
    config: StackConfig
    cluster: SwarmCluster

    @property
    def name(self) -> str:
        return self.config.project

    @property
    def stack_file(self) -> Path:
        return self.dir / "docker-compose.yml"

    @property
    def endpoint(self) -> Endpoint:
        trust = self.config.client_trust_file
        assert trust is not None, "the internal CA gives clients a file to trust"
        return Endpoint(DOMAIN, self.cluster.node("edge").address, HTTPS_PORT, self.dir / trust)

    def service(self, name: str) -> str:
        return f"{self.name}_{name}"


def _config_data(proxy: str, network: str, project: str, cluster: SwarmCluster) -> dict[str, Any]:
    # This machine's kernel has no ESP (CONFIG_INET_ESP unset: `ip xfrm state add ... proto
    # esp` answers "Requested AEAD algorithm not found"), so Docker cannot program the
    # encrypted overlay's tunnels between these nodes (docs/security.md).
    deploy: dict[str, Any] = {"target": "swarm", "encrypt_overlay": False}
    if network == "host":
        # Jellyfin on the media node's host network, reached at the node's address; the
        # proxy's connections arrive from the edge node's own address.
        deploy |= {
            "media_address": cluster.node("media").address,
            # The test's own nodes on one machine; a real LAN would want bridge mode.
            "allow_plain_media_link": True,
            "edge_addresses": [cluster.node("edge").address],
        }
    return {
        "proxy": proxy,
        "domain": DOMAIN,
        "project": project,
        "run_as": f"{os.getuid()}:{os.getgid()}",
        "tls": {"mode": "internal"},
        "ports": {"http": HTTP_PORT, "https": HTTPS_PORT, "listen_address": "0.0.0.0"},
        "network": {"subnet": OVERLAY_SUBNET},
        "jellyfin": {"network_mode": network, "port": 8096, "image": STANDIN},
        "images": {proxy: f"stackgen-test/{image_name(proxy)}:local"},
        "deploy": deploy,
    }


@contextlib.contextmanager
def on_manager(cluster: SwarmCluster) -> Iterator[None]:
    """stackgen's engine calls (the docker CLI) go to the cluster's manager meanwhile."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", cluster.manager.docker_host)
        yield


def deploy(stack: SwarmStack) -> None:
    """What `stackgen up` does on a swarm, up to its HTTPS wait: the manager and the node
    labels checked, `docker stack deploy`, every service converged with a healthy task.

    `up` itself then waits at this machine's published ports (it runs on the edge node);
    here the edge node is another machine, so `wait_healthy` asks it instead.
    """
    stack_value = Stack.load(stack.dir)
    progress: list[str] = []
    with on_manager(stack.cluster):
        swarm_ops.require_manager()
        swarm_ops.require_labelled_nodes()
        swarm_ops.deploy(stack_value)
        swarm_ops.wait_converged(stack_value, READY_SECONDS, progress.append)


def remove(stack: SwarmStack) -> None:
    """`stackgen down`'s swarm part: `docker stack rm` and the wait until all is gone."""
    with on_manager(stack.cluster):
        swarm_ops.remove(stack.name)


def wait_healthy(stack: SwarmStack, seconds: float, endpoint: Endpoint | None = None) -> str:
    """Poll /health through the proxy until it says Healthy; the last answer otherwise.
    `endpoint`: reached with another trust than the stack's own CA (an ACME CA's root)."""
    endpoint = endpoint or stack.endpoint
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = endpoint.get("/health")
            last = f"{reply.status} {reply.body[:80]!r}"
            if reply.status == 200 and reply.body.strip() == b"Healthy":
                return "Healthy"
        except OSError as error:
            last = repr(error)
        time.sleep(1)
    return last


# Jellyfin on the overlay for every proxy; on the media node's host network for Traefik.
VARIANTS = [*((proxy, "bridge") for proxy in PROXIES), ("traefik", "host")]


@pytest.fixture(scope="module", params=VARIANTS, ids=[f"{p}-{n}" for p, n in VARIANTS])
def stack(request: pytest.FixtureRequest, cluster: SwarmCluster) -> Iterator[SwarmStack]:
    proxy, network = request.param
    project = f"sgmn{proxy}{network}"
    directory = stacks_dir(cluster) / project
    config = build_config(_config_data(proxy, network, project, cluster), directory)
    init_stack(Stack(config, directory), force=False, dry_run=False)
    made = SwarmStack(proxy, directory, load_config(directory), cluster)
    request.node.stackgen_stack_file = made.stack_file
    proxy_image = f"stackgen-test/{image_name(proxy)}:local"
    cluster.load_images([proxy_image], role="edge")
    try:
        try:
            deploy(made)
            state = wait_healthy(made, READY_SECONDS)
            assert state == "Healthy", f"{proxy}: /health through the proxy: {state}"
        except Exception:
            # The stack is removed before pytest reports the setup error: keep its state.
            record_setup_failure(cluster, made.stack_file)
            raise
        yield made
    finally:
        remove(made)
        # The node keeps its images in memory (vfs on a tmpfs: 1.5-2 GB per proxy image).
        cluster.node("edge").docker("image", "rm", proxy_image, check=False)


@pytest.fixture(autouse=True)
def _stack_file_on_failure(request: pytest.FixtureRequest) -> None:
    """Lets the report hook attach the stack file of a module's stack to its tests."""
    if "stack" in request.fixturenames:
        made = request.getfixturevalue("stack")
        request.node.stackgen_stack_file = made.stack_file


def _task_node(stack: SwarmStack, service: str) -> str:
    listing = stack.cluster.manager.docker(
        "service",
        "ps",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}}",
        stack.service(service),
    )
    return listing.stdout.strip()


def test_proxy_on_edge_reaches_jellyfin_on_media(stack: SwarmStack) -> None:
    assert _task_node(stack, stack.proxy) == stack.cluster.node("edge").container
    assert _task_node(stack, "jellyfin") == stack.cluster.node("media").container
    info = stack.endpoint.get("/System/Info/Public")
    assert info.status == 200, info
    assert info.json()["LocalAddress"] == f"https://{DOMAIN}"


def test_client_address_survives_and_known_proxies_cover_the_proxy(stack: SwarmStack) -> None:
    echo = stack.endpoint.get("/__standin/echo", headers={"X-Forwarded-For": "203.0.113.66"})
    assert echo.status == 200, echo
    seen = echo.json()
    # The proxy's real source (its task's overlay address) is inside KnownProxies ...
    known = {ipaddress.ip_network(entry) for entry in stack.config.known_proxies}
    assert {ipaddress.ip_network(entry) for entry in seen["known_proxies"]} == known, seen
    peer = ipaddress.ip_address(seen["peer_address"])
    assert any(peer in net for net in known), seen
    if stack.config.jellyfin.network_mode == "host":
        # Out of the edge node through its gateway bridge: masqueraded to its address.
        assert str(peer) == stack.cluster.node("edge").address, seen
    else:
        assert peer in ipaddress.ip_network(OVERLAY_SUBNET), seen
    assert seen["forwarded_headers_honoured"] is True, seen
    # ... so Jellyfin takes the client's address from the proxy: this host's, not a spoof.
    assert seen["client_address"] == stack.cluster.gateway, seen
    assert seen["scheme"] == "https", seen


def test_client_container_at_a_pinned_address_is_seen_as_itself(stack: SwarmStack) -> None:
    """A second client, at an address the test picks, so the check is not about the gateway."""
    bridge = stack.cluster.subnet
    address = str(bridge.network_address + 200)
    trust = stack.endpoint.ca_file
    script = (
        "import json, socket, ssl, sys\n"
        "ctx = ssl.create_default_context(cafile='/ca.pem')\n"
        f"raw = socket.create_connection(('{stack.endpoint.address}', {HTTPS_PORT}), timeout=10)\n"
        f"tls = ctx.wrap_socket(raw, server_hostname='{DOMAIN}')\n"
        f"tls.sendall(b'GET /__standin/echo HTTP/1.1\\r\\nHost: {DOMAIN}\\r\\n"
        "Connection: close\\r\\n\\r\\n')\n"
        "data = b''\n"
        "while chunk := tls.recv(65536):\n"
        "    data += chunk\n"
        "print(json.loads(data.split(b'\\r\\n\\r\\n', 1)[1])['client_address'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    result = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            f"--network={stack.cluster.name}-net",
            f"--ip={address}",
            f"--volume={trust}:/ca.pem:ro",
            CLIENT,
            "python3",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == address


def test_websocket_crosses_nodes(stack: SwarmStack) -> None:
    frames = stack.endpoint.websocket_keepalive(
        "/socket?api_key=stackgen-standin-api-key&deviceId=pytest"
    )
    assert frames[-1]["MessageType"] == "KeepAlive"


def test_range_crosses_nodes(stack: SwarmStack) -> None:
    start, end = 10_000_000, 10_000_999
    ranged = stack.endpoint.get(
        "/Videos/standin/stream?static=true", headers={"Range": f"bytes={start}-{end}"}
    )
    assert ranged.status == 206, ranged
    assert ranged.headers["Content-Range"] == f"bytes {start}-{end}/{MEDIA_BYTES}"
    # The stand-in's media file: byte i is i % 251.
    assert ranged.body == bytes(i % 251 for i in range(start, end + 1))


def test_draining_the_media_node_and_activating_it_recovers(stack: SwarmStack) -> None:
    cluster = stack.cluster
    jellyfin = stack.service("jellyfin")
    cluster.set_availability("media", "drain")
    try:
        cluster.wait_for_tasks(jellyfin, running=0, timeout=60)
        # Served from nowhere: an error status, or no answer (a proxy still waiting on the
        # old task's address).
        try:
            down = stack.endpoint.get("/health", timeout=10)
            assert down.status >= 500, f"Jellyfin drained, yet the proxy answered {down}"
        except TimeoutError:
            pass
    finally:
        cluster.set_availability("media", "active")
    cluster.wait_for_tasks(jellyfin, running=1, timeout=RECOVERY_SECONDS)
    assert _task_node(stack, "jellyfin") == cluster.node("media").container
    state = wait_healthy(stack, RECOVERY_SECONDS)
    assert state == "Healthy", (
        f"{stack.proxy}: Jellyfin runs again on the media node, but through the proxy "
        f"/health gives {state} after {RECOVERY_SECONDS:.0f} s"
    )


def test_status_names_each_task_and_its_node(stack: SwarmStack) -> None:
    """`stackgen status` on the manager: every service running, on the node of its role."""
    with on_manager(stack.cluster):
        report = lifecycle.status(Stack.load(stack.dir))
    services = report["services"]
    assert isinstance(services, list), report
    nodes = {task["service"]: task["node"] for task in services}
    assert nodes[stack.proxy] == stack.cluster.node("edge").container, report
    assert nodes["jellyfin"] == stack.cluster.node("media").container, report
    assert report["running"] is True, report
    assert report["problems"] == [], report
