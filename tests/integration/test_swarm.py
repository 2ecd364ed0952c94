"""The swarm target on a real single-node swarm on this machine: `up` through
`docker stack deploy`, certificates from Pebble for real, `verify` with 0 failed and 0
warned, `status` with the tasks' node, and `reload` replacing only the service whose
configuration changed.

The node is this machine's engine. The `swarm_node` fixture makes it a swarm manager when
it is not one yet (`docker swarm init` on the address of the default route's interface,
under a file lock so that parallel workers don't race) and labels it edge and media; the
swarm is left in place for the next run. A stack file publishes in mode host on every
address of the node, so these stacks use this slot's ports on all addresses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from integration.conftest import SLOT, Stack, StackFactory, exposure_audit, stackgen
from integration.netns import client_namespace, client_range

from stackgen.targets.swarm import target as swarm_ops
from stackgen.targets.swarm.config import EDGE_LABEL, MEDIA_LABEL

LOCK = Path(tempfile.gettempdir()) / "stackgen-test-swarm-init.lock"


def _docker(*args: str) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def _default_route_address() -> str:
    """The IPv4 address of the interface of the default route (eth0 here)."""
    routes = json.loads(_docker_free("ip", "-j", "-4", "route", "show", "default"))
    device = routes[0]["dev"]
    addresses = json.loads(_docker_free("ip", "-j", "-4", "addr", "show", "dev", device))
    return str(addresses[0]["addr_info"][0]["local"])


def _docker_free(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout


def _remove_leftover_stacks() -> None:
    """Stacks of this slot left by a killed run hold its ports and subnet."""
    for name in _docker("stack", "ls", "--format", "{{.Name}}").split():
        if name.startswith(f"sgtest{SLOT}-"):
            swarm_ops.remove(name)


@dataclass(frozen=True)
class SwarmNode:
    address: str
    gateway_subnet: str  # docker_gwbridge's: where a task reaches its own node from


def _gateway_subnet() -> str:
    """docker_gwbridge's subnet, creating the bridge as the engine would when no swarm task
    made it yet (which subnet it gets depends on the networks that exist before it)."""
    inspect = [
        "network",
        "inspect",
        "docker_gwbridge",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}}",
    ]
    try:
        return _docker(*inspect)
    except AssertionError:
        _docker(
            "network",
            "create",
            "--opt",
            "com.docker.network.bridge.name=docker_gwbridge",
            "--opt",
            "com.docker.network.bridge.enable_icc=false",
            "--opt",
            "com.docker.network.bridge.enable_ip_masquerade=true",
            "docker_gwbridge",
        )
        return _docker(*inspect)


@pytest.fixture(scope="session")
def swarm_node(engine: None) -> Iterator[SwarmNode]:
    """This engine as a single-node swarm manager, labelled edge and media."""
    with FileLock(str(LOCK), timeout=300):
        state = _docker("info", "--format", "{{.Swarm.LocalNodeState}}")
        if state != "active":
            _docker("swarm", "init", "--advertise-addr", _default_route_address())
        node = _docker("info", "--format", "{{.Swarm.NodeID}}")
        _docker(
            "node",
            "update",
            "--label-add",
            f"{EDGE_LABEL}=true",
            "--label-add",
            f"{MEDIA_LABEL}=true",
            node,
        )
        address = _docker("node", "inspect", node, "--format", "{{.Status.Addr}}")
        gateway = _gateway_subnet()
    _remove_leftover_stacks()
    yield SwarmNode(address, gateway)


def _swarm_config(network: str, node: SwarmNode) -> dict[str, Any]:
    deploy: dict[str, Any] = {"target": "swarm"}
    if network == "host":
        deploy["media_address"] = node.address
        deploy["allow_plain_media_link"] = True  # one node: the link never leaves it
        deploy["gateway_subnet"] = node.gateway_subnet
    # Mode host has no host IP: the ports are published on every address of the node.
    return {"deploy": deploy, "ports": {"listen_address": "0.0.0.0"}}


def _running_tasks(project: str) -> dict[str, str]:
    """service -> id of its running task."""
    listing = _docker(
        "stack", "ps", project, "--filter", "desired-state=running", "--format", "{{json .}}"
    )
    tasks = [json.loads(line) for line in listing.splitlines() if line.strip()]
    return {
        t["Name"].removeprefix(f"{project}_").split(".")[0]: t["ID"]
        for t in tasks
        if t["CurrentState"].startswith("Running")
    }


def _verify_clean(stack: Stack) -> None:
    result = stackgen("verify", "--dir", str(stack.directory), "--json", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    problems = [
        f"{c['id']}: {c['status']}: {c['reason']}"
        for c in report["checks"]
        if c["status"] != "pass" and not exposure_audit(c["id"])
    ]
    assert problems == [], "\n".join(problems)


# Traefik and Caddy with Jellyfin on the overlay, nginx (certbot beside it) with Jellyfin
# on the node's host network: both ways the proxy reaches Jellyfin, and their KnownProxies.
CASES = [("traefik", "bridge"), ("nginx", "host"), ("caddy", "bridge")]


@pytest.mark.parametrize(("proxy", "network"), CASES, ids=[f"{p}-{n}" for p, n in CASES])
def test_swarm_end_to_end(
    proxy: str, network: str, swarm_node: SwarmNode, make_stack: StackFactory
) -> None:
    stack = make_stack(proxy, network=network, config=_swarm_config(network, swarm_node))
    project = stack.config.project
    assert sorted(_running_tasks(project)) == sorted(
        [proxy, "jellyfin", *(["certbot"] if proxy == "nginx" else [])]
    )
    _verify_clean(stack)

    status = stackgen("status", "--dir", str(stack.directory), "--json", check=False)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["target"] == "swarm" and report["healthy"], report
    assert report["certificate"]["verified"], report["certificate"]
    assert {s["node"] for s in report["services"]} == {_docker("info", "--format", "{{.Name}}")}

    logs = stackgen("logs", proxy, "--dir", str(stack.directory), check=False)
    assert logs.returncode == 0 and logs.stdout.strip(), logs.stderr


@pytest.mark.parametrize("proxy", ["nginx", "haproxy", "apache"])
def test_swarm_proxy_follows_a_replaced_jellyfin(
    proxy: str, swarm_node: SwarmNode, make_stack: StackFactory
) -> None:
    """nginx and HAProxy resolve Jellyfin's name again: a replaced task has a new address.
    With tls.mode internal, the key reaches the proxy as a Swarm secret."""
    stack = make_stack(
        proxy, network="bridge", tls="internal", config=_swarm_config("bridge", swarm_node)
    )
    project = stack.config.project
    secrets = _docker("secret", "ls", "--filter", f"label=com.docker.stack.namespace={project}")
    assert "tls-privkey.pem" in secrets, secrets
    before = _running_tasks(project)

    _docker("service", "update", "--force", "--detach=true", f"{project}_jellyfin")
    session = stack.session()
    deadline = time.monotonic() + 90
    answer = "no answer"
    while time.monotonic() < deadline:
        tasks = _running_tasks(project)
        if tasks.get("jellyfin") not in (None, before["jellyfin"]):
            try:
                response = session.get(f"{stack.url}/health", timeout=5)
                answer = f"{response.status_code} {response.text.strip()[:40]}"
                if response.status_code == 200 and response.text.strip() == "Healthy":
                    break
            except OSError as error:
                answer = str(error)
        time.sleep(1)
    else:
        raise AssertionError(f"{proxy} never reached the replaced Jellyfin task: {answer}")
    assert _running_tasks(project)[proxy] == before[proxy]  # the proxy was not replaced
    # Every nginx worker (and HAProxy's resolver) drops the old answer within seconds.
    time.sleep(6)
    _verify_clean(stack)


def test_swarm_reload_replaces_only_what_changed(
    swarm_node: SwarmNode, make_stack: StackFactory
) -> None:
    # The ban list off: only Traefik's routes are a config that changes here (with it on
    # they are a config too, copied by its composer; not run that way here).
    config = {**_swarm_config("bridge", swarm_node), "access": {"ban": {"enabled": False}}}
    stack = make_stack("traefik", network="bridge", config=config)
    project = stack.config.project
    before = _running_tasks(project)

    # A header of the proxy's: a new dynamic.toml, so a new config for Traefik alone.
    toml = stack.directory / "stackgen.toml"
    text = toml.read_text()
    assert 'referrer_policy = "strict-origin-when-cross-origin"' in text
    toml.write_text(text.replace("strict-origin-when-cross-origin", "no-referrer"))
    result = stackgen("reload", "--dir", str(stack.directory), check=False)
    assert result.returncode == 0, result.stderr
    assert "replaced: traefik" in result.stdout + result.stderr
    after = _running_tasks(project)
    assert after["jellyfin"] == before["jellyfin"]
    assert after["traefik"] != before["traefik"]
    # The old, immutable config is gone; the new one is in use.
    configs = _docker("config", "ls", "--filter", f"label=com.docker.stack.namespace={project}")
    assert configs.count("traefik-dynamic.toml") == 1, configs

    # Nothing changed: nothing replaced.
    again = stackgen("reload", "--dir", str(stack.directory), check=False)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout + again.stderr
    assert _running_tasks(project) == after
    _verify_clean(stack)

    down = stackgen("down", "--dir", str(stack.directory), check=False)
    assert down.returncode == 0, down.stderr
    assert project not in _docker("stack", "ls", "--format", "{{.Name}}").split()


# A client of its own (a range per slot), arriving from outside the node.
BANNED = client_range(SLOT, "swarm-banned")
_GET = """
import http.client, socket, ssl, sys
address, port, name, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection((address, port), timeout=30)
conn = http.client.HTTPSConnection(name, port, context=ctx)
conn.sock = ctx.wrap_socket(raw, server_hostname=name)
conn.request("GET", "/System/Info/Public")
print(conn.getresponse().status)
"""


def test_swarm_traefik_applies_its_ban_folder_itself(
    swarm_node: SwarmNode, make_stack: StackFactory
) -> None:
    """With the ban list on, Traefik's container composes the folder it watches from its
    routes (a Swarm config: a re-render of them comes with a new task, as for every proxy's
    files, docs/swarm.md) and the node's `ban/` folder (a bind mount): `stackgen ban` applies
    without a new task."""
    stack = make_stack("traefik", network="bridge", config=_swarm_config("bridge", swarm_node))
    project = stack.config.project
    folder = str(stack.directory)
    assert stack.ca_file is not None

    with client_namespace(f"sg{SLOT}swb", BANNED) as client:

        def status() -> int:
            run = client.run(
                sys.executable, "-c", _GET, client.host_address, str(stack.https_port),
                stack.domain, str(stack.ca_file),
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
            return int(run.stdout)

        def until(wanted: int) -> list[int]:
            seen = [status()]
            deadline = time.monotonic() + 10
            while seen[-1] != wanted and time.monotonic() < deadline:
                time.sleep(0.25)
                seen.append(status())
            return seen

        assert status() == 200
        toml = stack.directory / "stackgen.toml"
        toml.write_text(toml.read_text().replace("strict-origin-when-cross-origin", "no-referrer"))
        reload = stackgen("reload", "--dir", folder, check=False)
        assert reload.returncode == 0, reload.stderr
        assert "replaced: traefik" in reload.stdout + reload.stderr
        deadline = time.monotonic() + 10
        policy = ""
        while policy != "no-referrer" and time.monotonic() < deadline:
            time.sleep(0.25)
            policy = (
                stack.session()
                .get(f"{stack.url}/System/Info/Public", timeout=10)
                .headers["Referrer-Policy"]
            )
        assert policy == "no-referrer"

        before = _running_tasks(project)
        stackgen("ban", "add", client.client_address, "--dir", folder)
        refused = until(403)
        assert refused[-1] == 403, refused
        stackgen("ban", "remove", client.client_address, "--dir", folder)
        back = until(200)
        assert back[-1] == 200, back
    assert _running_tasks(project) == before  # no task replaced
    _verify_clean(stack)
