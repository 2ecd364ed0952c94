"""DNS-01 on the multi-node swarm, the provider's credentials only as Swarm secrets.

On the edge node, Traefik (lego) or the certbot service beside nginx obtains the
certificate from Pebble over DNS-01: it publishes the `_acme-challenge` TXT record in bind9
with a TSIG-signed RFC 2136 update, and Pebble validates it by asking bind9. The TSIG
secret reaches the client only as a Swarm secret (lego: `RFC2136_TSIG_SECRET_FILE=
/run/secrets/...`; certbot's run.sh reads the file and writes the plugin's INI in its
tmpfs): it is in no service spec, no task's container environment and no stack file, as
`docker service inspect` and `docker inspect` on the nodes show.

Pebble and bind9 run on this machine; the nodes reach them at the cluster bridge's gateway
(this host's address there): bind9 listens there too, and Pebble's listener certificate
names that address, since a name such as `host.docker.internal` would resolve inside a
node to the node itself.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from stackgen.config_file import build_config, load_config
from stackgen.stack import Stack, init_stack, render_dir
from stackgen.stack_checks import check_stack
from stackgen.testing import pebble as pebble_module
from stackgen.testing.pebble import PebbleCA
from tests.bind9 import Bind9
from tests.swarm.cluster import SwarmCluster

from .client import Endpoint
from .conftest import SLOT, STANDIN, image_name, record_setup_failure, stacks_dir
from .test_multinode import (
    HTTP_PORT,
    HTTPS_PORT,
    OVERLAY_SUBNET,
    READY_SECONDS,
    SwarmStack,
    deploy,
    remove,
    wait_healthy,
)

ZONE = "stackgen.test"
DOMAIN = f"jellyfin.{ZONE}"
# Ports on this host, apart from the integration tests' 18xxx range (which other runs may
# hold at the same time).
PORT_SHIFT = 10 * SLOT
BIND_PORT = 29353 + PORT_SHIFT
PEBBLE_ACME_PORT = 29140 + PORT_SHIFT
PEBBLE_MANAGEMENT_PORT = 29150 + PORT_SHIFT


@pytest.fixture(scope="module")
def bind9(swarm_images: dict[str, str], cluster: SwarmCluster) -> Iterator[Bind9]:
    server = Bind9(
        cluster.state_dir / "bind9",
        port=BIND_PORT,
        zones=(ZONE,),
        image=swarm_images["bind9"],
        name=f"sgswarm{SLOT}-bind9",
    )
    # The nodes reach this host at the cluster bridge's gateway only (an internal bridge).
    server.gateway = cluster.gateway
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pebble(bind9: Bind9, cluster: SwarmCluster) -> Iterator[PebbleCA]:
    ca = PebbleCA(
        cluster.state_dir / "pebble",
        acme_port=PEBBLE_ACME_PORT,
        management_port=PEBBLE_MANAGEMENT_PORT,
        dns_server=bind9.host_address,
    )
    with pytest.MonkeyPatch.context() as patch:
        # lego connects to https://GATEWAY:PORT/dir: the listener certificate names it.
        patch.setattr(pebble_module, "LISTENER_IPS", ("127.0.0.1", cluster.gateway))
        ca.start()
    try:
        yield ca
    finally:
        ca.stop()


# The proxy, and the service whose ACME client takes the credentials: lego inside Traefik,
# or certbot's RFC 2136 plugin beside nginx (as for HAProxy, Apache and Caddy).
CLIENTS = {"traefik": "traefik", "nginx": "certbot"}
CERTBOT_DNS = "stackgen-test/certbot-dns:local"


def _images(proxy: str) -> dict[str, str]:
    images = {proxy: f"stackgen-test/{image_name(proxy)}:local"}
    if CLIENTS[proxy] == "certbot":
        images["certbot"] = CERTBOT_DNS  # the per-plugin official images' stand-in
    return images


def _config_data(
    proxy: str, cluster: SwarmCluster, project: str, pebble: PebbleCA
) -> dict[str, Any]:
    return {
        "proxy": proxy,
        "domain": DOMAIN,
        "email": "admin@stackgen.test",
        "project": project,
        "run_as": f"{os.getuid()}:{os.getgid()}",
        "tls": {
            "mode": "acme-dns",
            "dns_provider": "rfc2136",
            "ca_url": f"https://{cluster.gateway}:{PEBBLE_ACME_PORT}/dir",
            "ca_bundle": str(pebble.listener_ca_file),
            "dns_resolvers": [f"{cluster.gateway}:{BIND_PORT}"],
            "dns_propagation_seconds": 0,
        },
        "ports": {"http": HTTP_PORT, "https": HTTPS_PORT, "listen_address": "0.0.0.0"},
        "network": {"subnet": OVERLAY_SUBNET},
        "jellyfin": {"network_mode": "bridge", "port": 8096, "image": STANDIN},
        "images": _images(proxy),
        # No ESP in this kernel: see test_multinode.py.
        "deploy": {"target": "swarm", "encrypt_overlay": False},
    }


@pytest.fixture(scope="module", params=sorted(CLIENTS))
def dns_stack(
    request: pytest.FixtureRequest, cluster: SwarmCluster, bind9: Bind9, pebble: PebbleCA
) -> Iterator[SwarmStack]:
    proxy = request.param
    project = f"sgmndns{proxy}"
    directory = stacks_dir(cluster) / project
    config = build_config(_config_data(proxy, cluster, project, pebble), directory)
    init_stack(Stack(config, directory), force=False, dry_run=False)
    # The user fills the credentials' files, then renders (the stack file names each
    # secret by its content).
    secrets = directory / "secrets"
    for name, value in credentials(bind9).items():
        (secrets / name).write_text(value + "\n")
    render_dir(Stack.load(directory), force=False, dry_run=False)
    made = SwarmStack(proxy, directory, load_config(directory), cluster)
    failing = [
        f.message
        for f in check_stack(Stack.load(directory), use_docker=False)
        if f.status.value == "fail"
    ]
    assert failing == [], failing
    images = list(_images(proxy).values())
    cluster.load_images(images, role="edge")
    try:
        try:
            deploy(made)
            state = wait_healthy(made, READY_SECONDS, issued_endpoint(made, pebble))
            assert state == "Healthy", (
                f"no Pebble certificate served over DNS-01: {state}\n"
                f"{pebble.log_tail()}\n{bind9.log_tail()}"
            )
        except Exception:
            record_setup_failure(cluster, made.stack_file)
            raise
        yield made
    finally:
        remove(made)
        # The node keeps its images in memory (vfs on a tmpfs).
        cluster.node("edge").docker("image", "rm", *images, check=False)


def credentials(bind9: Bind9) -> dict[str, str]:
    return {
        "RFC2136_NAMESERVER": f"{bind9.gateway}:{bind9.port}",
        "RFC2136_TSIG_KEY": f"{bind9.key_name}.",
        "RFC2136_TSIG_SECRET": bind9.tsig_secret,
        "RFC2136_TSIG_ALGORITHM": f"{bind9.algorithm}.",
    }


def issued_endpoint(stack: SwarmStack, pebble: PebbleCA) -> Endpoint:
    """The edge node's HTTPS port, trusting only the root Pebble issues under."""
    return Endpoint(DOMAIN, stack.cluster.node("edge").address, HTTPS_PORT, pebble.issuer_root_file)


def _inspect(node_env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **node_env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_certificate_came_over_dns01_from_pebble(
    dns_stack: SwarmStack, pebble: PebbleCA, bind9: Bind9
) -> None:
    endpoint = issued_endpoint(dns_stack, pebble)
    info = endpoint.get("/System/Info/Public")
    assert info.status == 200, info
    with (
        endpoint.connect() as raw,
        endpoint.context().wrap_socket(raw, server_hostname=DOMAIN) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    served = x509.load_der_x509_certificate(der)
    intermediate = x509.load_pem_x509_certificate(pebble.issuer_intermediate_file.read_bytes())
    assert served.issuer == intermediate.subject
    san = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DOMAIN]
    # The record Pebble validated was published by a TSIG-signed update from a node: the
    # key reached lego only as a Swarm secret.
    log = bind9.log_tail(400)
    published = [
        line
        for line in log.splitlines()
        if f"_acme-challenge.{DOMAIN}" in line and bind9.key_name in line and "adding" in line
    ]
    assert published, log
    assert all(cluster_subnet(dns_stack) in line for line in published), published


def cluster_subnet(stack: SwarmStack) -> str:
    """The cluster bridge's first three octets: a node's address as bind9 logs it."""
    return stack.cluster.gateway.rsplit(".", 1)[0] + "."


def test_no_spec_or_container_carries_a_credential(dns_stack: SwarmStack, bind9: Bind9) -> None:
    cluster = dns_stack.cluster
    values = credentials(bind9)
    services = _inspect(
        cluster.manager.env(), "service", "ls", "--filter", f"name={dns_stack.name}_", "-q"
    ).split()
    assert len(services) == len({dns_stack.proxy, CLIENTS[dns_stack.proxy], "jellyfin"}), services
    specs = _inspect(cluster.manager.env(), "service", "inspect", *services)
    for name, value in values.items():
        assert value not in specs, f"{name}'s value in `docker service inspect`"
    client = dns_stack.service(CLIENTS[dns_stack.proxy])
    spec = json.loads(_inspect(cluster.manager.env(), "service", "inspect", client))[0]
    container = spec["Spec"]["TaskTemplate"]["ContainerSpec"]
    env = dict(item.partition("=")[::2] for item in container.get("Env", []))
    for name in values:
        assert name not in env, env
        if client.endswith("_traefik"):
            # lego reads the variable from the file its `_FILE` twin names.
            assert env[f"{name}_FILE"] == f"/run/secrets/{name}", env
    mounted = {s["File"]["Name"]: s for s in container["Secrets"]}
    for name in values:
        secret = mounted[f"/run/secrets/{name}"]
        assert secret["File"]["UID"] == str(os.getuid()), secret
        assert secret["File"]["Mode"] == 0o400, secret
    # The task's container on the edge node: its environment and command, as a user of
    # that node's engine sees them.
    edge = cluster.node("edge")
    ids = _inspect(
        edge.env(),
        "ps",
        "-q",
        "--filter",
        f"label=com.docker.swarm.service.name={client}",
    ).split()
    assert ids, f"no {client} container on the edge node"
    containers = _inspect(edge.env(), "inspect", *ids)
    for name, value in values.items():
        assert value not in containers, f"{name}'s value in `docker inspect` on the edge node"
    # Docker never gives a secret's data back: what the manager stores is not readable.
    secret_names = [s["SecretName"] for s in container["Secrets"]]
    stored = _inspect(cluster.manager.env(), "secret", "inspect", *secret_names)
    assert bind9.tsig_secret not in stored


def test_the_stack_folder_holds_the_secret_in_its_own_file_only(
    dns_stack: SwarmStack, bind9: Bind9
) -> None:
    secret = bind9.tsig_secret.encode()
    holding = sorted(
        str(p.relative_to(dns_stack.dir))
        for p in dns_stack.dir.rglob("*")
        if p.is_file() and secret in p.read_bytes()
    )
    assert holding == ["secrets/RFC2136_TSIG_SECRET"], holding
    own = (dns_stack.dir / "secrets" / "RFC2136_TSIG_SECRET").stat()
    assert own.st_mode & 0o777 == 0o600
    assert own.st_uid == os.getuid()
