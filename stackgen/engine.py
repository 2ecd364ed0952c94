"""The one boundary to the Docker engine. Every call goes through python-on-whales' typed
API (objects parsed from the engine's JSON, never text scraped from `docker ps`); nothing
else in stackgen imports python-on-whales."""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient, docker
from python_on_whales.exceptions import DockerException

from stackgen.errors import DockerError
from stackgen.parts import InImageCommand

# A proxy's own config test is short; a hung one must not hang `stackgen check`.
IN_IMAGE_TIMEOUT_S = 120.0


def compose_client(project: str, compose_file: Path, folder: Path) -> DockerClient:
    return DockerClient(
        compose_files=[compose_file],
        compose_project_name=project,
        compose_project_directory=folder,
    )


def project_client(project: str, folder: Path) -> DockerClient:
    """A compose client that knows only the project name: `ps` and `down` find the
    containers by their project label, so they work when the compose file is missing or
    broken."""
    return DockerClient(compose_project_name=project, compose_project_directory=folder)


def require_engine() -> None:
    if shutil.which("docker") is None:
        raise DockerError("docker is not installed (see README: Requirements)")
    try:
        docker.system.info()
    except DockerException:
        raise DockerError("the Docker engine does not answer (is dockerd running?)") from None
    try:
        docker.compose.version()
    except DockerException:
        raise DockerError(
            "the Docker Compose plugin is missing (`docker compose version` fails)"
        ) from None


def compose_config_problems(client: DockerClient) -> str:
    """Compose's own verdict on the file: empty when it accepts it."""
    try:
        client.compose.config(return_json=True)
    except DockerException as error:
        stderr = str(error.stderr or "")
        if "is not a docker command" in stderr:
            raise DockerError("the Docker Compose plugin is missing") from None
        return " ".join(stderr.split()) or f"docker compose config exited {error.return_code}"
    return ""


def image_present(image: str) -> bool:
    return bool(docker.image.exists(image))


def compose_images(client: DockerClient) -> list[str]:
    """The images the compose file's services run, in file order (empty when Compose
    rejects the file: `check` reports that)."""
    try:
        config = client.compose.config(return_json=True)
    except DockerException:
        return []
    services = config.get("services") if isinstance(config, dict) else None
    images = [
        str(service["image"])
        for service in (services or {}).values()
        if isinstance(service, dict) and service.get("image")
    ]
    return list(dict.fromkeys(images))


def pull_image(image: str) -> str:
    """Pull one image: empty on success, else the engine's reason in one line."""
    try:
        docker.image.pull(image, quiet=True)
    except DockerException as error:
        text = " ".join(str(error.stderr or "").split())
        return text or f"docker pull exited {error.return_code}"
    return ""


@dataclass(frozen=True)
class NetworkSubnets:
    """A Docker network's name, its Compose project (empty for other networks) and the
    subnets its IPAM holds, IPv4 and IPv6."""

    name: str
    project: str
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def network_subnets() -> list[NetworkSubnets]:
    """Every network on the engine with its subnets (empty when the engine cannot say)."""
    try:
        networks = docker.network.list()
    except DockerException:
        return []
    found = []
    for network in networks:
        try:
            # Read now, in one inspect: another user's network may vanish meanwhile.
            name, ipam, labels = network.name, network.ipam, network.labels or {}
        except DockerException:
            continue  # removed since it was listed: it holds no subnet any more
        subnets = []
        for entry in (ipam.config if ipam else None) or []:
            with contextlib.suppress(ValueError):
                subnets.append(ipaddress.ip_network(str(entry.get("Subnet", "")), strict=False))
        found.append(
            NetworkSubnets(
                name=str(name),
                project=labels.get("com.docker.compose.project", ""),
                subnets=tuple(subnets),
            )
        )
    return found


def containers_publishing(port: int) -> list[str]:
    """Names of the running containers that publish a host port."""
    return [container.name for container in docker.container.list(filters={"publish": port})]


def run_in_image(image: str, command: InImageCommand, folder: Path) -> tuple[bool, str]:
    """Run a proxy's own test in its own image, with no network: (accepted, output)."""
    if not image_present(image):
        raise DockerError(f"image {image} is not present (run `stackgen up` to pull it)")
    volumes = [
        ((Path(source) if Path(source).is_absolute() else folder / source).resolve(), target, "ro")
        for source, target in command.mounts
    ]
    try:
        container = docker.container.create(
            image,
            list(command.argv),
            networks=["none"],
            volumes=volumes,
            entrypoint=command.entrypoint,
            user=command.user,
        )
    except DockerException as error:
        raise DockerError(f"cannot create a container of {image}: {error.stderr}") from None
    try:
        docker.container.start(container)
        deadline = time.monotonic() + IN_IMAGE_TIMEOUT_S
        while (state := docker.container.inspect(container).state).running:
            if time.monotonic() > deadline:
                raise DockerError(
                    f"`{' '.join(command.argv)}` in {image} did not finish within "
                    f"{IN_IMAGE_TIMEOUT_S:.0f} s"
                )
            time.sleep(0.1)
        return state.exit_code == 0, str(docker.container.logs(container))
    except DockerException as error:
        raise DockerError(f"running a container of {image} failed: {error.stderr}") from None
    finally:
        docker.container.remove(container, force=True)


__all__ = [
    "DockerClient",
    "DockerException",
    "compose_client",
    "compose_config_problems",
    "compose_images",
    "containers_publishing",
    "image_present",
    "project_client",
    "pull_image",
    "require_engine",
    "run_in_image",
]
