"""What carries traffic between Docker-in-Docker swarm nodes here, with plain services.

The Jellyfin stand-in runs on the media node, a client container on the edge node. These
tests are the evidence behind docs/swarm-multinode.md ("Networking findings"): overlay
traffic with `endpoint_mode: dnsrr` crosses nodes; ports published with `mode: host` keep
the client's address; a Jellyfin on the media node's host network is reached at the node's
address and sees the edge node's address. Two tests document what does NOT work on a
kernel without IPVS (virtual IPs, the ingress routing mesh): if one of them fails, the
kernel has changed and the docs (and the stack's `dnsrr`) should be revisited.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.swarm.cluster import SwarmCluster

from .conftest import CLIENT, STANDIN

OVERLAY = "sgnet"
OVERLAY_SUBNET = "10.231.5.0/24"
STANDIN_PORT = 8096
HOST_NETWORK_PORT = 18596
PUBLISHED_PORT = 18097
INGRESS_PORT = 18098
MEDIA_BYTES = 8 * 1024 * 1024  # many full-size VXLAN frames: an MTU problem would show

# Runs in a client container: GET each URL, print one JSON line per URL.
CLIENT_SCRIPT = """
import json, sys, urllib.request
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = answer.read()
        result = {"url": url, "status": answer.status, "length": len(body)}
        if url.endswith("/echo"):
            result["echo"] = json.loads(body)
    except Exception as error:
        result = {"url": url, "error": repr(error)}
    print(json.dumps(result), flush=True)
"""


@dataclass(frozen=True)
class Services:
    dnsrr: str = "jf-dnsrr"
    vip: str = "jf-vip"
    host_network: str = "jf-hostnet"
    ingress: str = "jf-ingress"


def _standin(cluster: SwarmCluster, name: str, *options: str, port: int = STANDIN_PORT) -> None:
    cluster.manager.docker(
        "service",
        "create",
        "--detach",
        "--quiet",
        # The images were loaded into the nodes; asking a registry for a digest would be a
        # DNS lookup for a name outside this machine (and hangs on the internal bridge).
        "--no-resolve-image",
        f"--name={name}",
        "--constraint=node.labels.stackgen.role.media==true",
        "--env=STANDIN_MEDIA_FILE=memory",
        f"--env=STANDIN_MEDIA_BYTES={MEDIA_BYTES}",
        f"--env=STANDIN_PORT={port}",
        f"--env=HEALTHCHECK_URL=http://localhost:{port}/health",
        "--health-interval=2s",
        "--health-start-period=1s",
        *options,
        STANDIN,
    )


@pytest.fixture(scope="module")
def services(cluster: SwarmCluster) -> Iterator[Services]:
    names = Services()
    manager = cluster.manager
    manager.docker(
        "network",
        "create",
        "--driver=overlay",
        "--attachable",
        f"--subnet={OVERLAY_SUBNET}",
        OVERLAY,
    )
    _standin(
        cluster,
        names.dnsrr,
        f"--network={OVERLAY}",
        "--endpoint-mode=dnsrr",
        f"--publish=mode=host,target={STANDIN_PORT},published={PUBLISHED_PORT}",
    )
    _standin(cluster, names.vip, f"--network={OVERLAY}")
    _standin(cluster, names.host_network, "--network=host", port=HOST_NETWORK_PORT)
    _standin(cluster, names.ingress, f"--publish=target={STANDIN_PORT},published={INGRESS_PORT}")
    try:
        for name in (names.dnsrr, names.vip, names.host_network, names.ingress):
            cluster.wait_for_tasks(name)
        yield names
    finally:
        manager.docker(
            "service",
            "rm",
            names.dnsrr,
            names.vip,
            names.host_network,
            names.ingress,
            check=False,
        )
        for _ in range(60):  # the network goes once its tasks' endpoints are gone
            if manager.docker("network", "rm", OVERLAY, check=False).returncode == 0:
                break
            subprocess.run(["sleep", "0.5"], check=False)


def from_edge(cluster: SwarmCluster, *urls: str) -> list[dict[str, Any]]:
    """GET each URL from a client container on the edge node, attached to the overlay."""
    result = cluster.node("edge").docker(
        "run", "--rm", f"--network={OVERLAY}", CLIENT, "python3", "-c", CLIENT_SCRIPT, *urls
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


# Straight to the nodes: no proxy from the environment.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def task_node(cluster: SwarmCluster, service: str) -> str:
    listing = cluster.manager.docker(
        "service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}}", service
    )
    return listing.stdout.strip()


def test_overlay_with_dnsrr_crosses_nodes(cluster: SwarmCluster, services: Services) -> None:
    assert task_node(cluster, services.dnsrr) == cluster.node("media").container
    echo, media = from_edge(
        cluster,
        f"http://{services.dnsrr}:{STANDIN_PORT}/__standin/echo",
        f"http://{services.dnsrr}:{STANDIN_PORT}/Videos/x/stream",
    )
    assert "error" not in echo, echo
    # The stand-in saw the client container's overlay address: no NAT on the overlay.
    peer = ipaddress.ip_address(echo["echo"]["peer_address"])
    assert peer in ipaddress.ip_network(OVERLAY_SUBNET), echo
    assert media.get("length") == MEDIA_BYTES, media


def test_host_published_port_keeps_the_client_address(
    cluster: SwarmCluster, services: Services
) -> None:
    """A client on this host (its address on the cluster bridge is the gateway) reaches the
    media node's `mode: host` port and is seen as itself."""
    media = cluster.node("media")
    url = f"http://{media.address}:{PUBLISHED_PORT}/__standin/echo"
    with DIRECT.open(url, timeout=5) as answer:
        echo = json.loads(answer.read())
    assert echo["peer_address"] == cluster.gateway, echo


def test_host_network_jellyfin_is_reached_at_the_node_address(
    cluster: SwarmCluster, services: Services
) -> None:
    """The fallback for a Jellyfin on the media node's host network: the edge node's
    containers reach it at the media node's address and arrive from the edge node's address
    (masqueraded on the way out of the edge node), which is what KnownProxies must hold."""
    media, edge = cluster.node("media"), cluster.node("edge")
    (echo,) = from_edge(cluster, f"http://{media.address}:{HOST_NETWORK_PORT}/__standin/echo")
    assert "error" not in echo, echo
    assert echo["echo"]["peer_address"] == edge.address, echo


def test_virtual_ip_carries_nothing_without_ipvs(cluster: SwarmCluster, services: Services) -> None:
    """Documents the failure: the VIP resolves, but nothing answers behind it (no IPVS)."""
    (vip,) = from_edge(cluster, f"http://{services.vip}:{STANDIN_PORT}/System/Ping")
    assert "No route to host" in vip.get("error", ""), (
        f"a virtual IP carried traffic ({vip}); this kernel may have IPVS now: "
        "revisit docs/swarm-multinode.md and endpoint_mode dnsrr"
    )


def test_ingress_mesh_publishes_nothing_without_ipvs(
    cluster: SwarmCluster, services: Services
) -> None:
    """Documents the failure: a port published through the routing mesh is refused on
    every node, the one running the task included."""
    for node in cluster.workers:
        url = f"http://{node.address}:{INGRESS_PORT}/System/Ping"
        with pytest.raises(urllib.error.URLError, match="Connection refused"):
            DIRECT.open(url, timeout=5)
