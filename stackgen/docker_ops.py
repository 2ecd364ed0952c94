"""Everything stackgen asks of Docker: Compose through python-on-whales, one-off commands
through the runner."""

from __future__ import annotations

import shutil
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from stackgen.errors import DockerError
from stackgen.models import StackConfig
from stackgen.parts import InImageCommand
from stackgen.render import COMPOSE_FILE
from stackgen.runner import run


def compose_client(config: StackConfig, stack_dir: Path) -> DockerClient:
    return DockerClient(
        compose_files=[stack_dir / COMPOSE_FILE],
        compose_project_name=config.project,
        compose_project_directory=stack_dir,
    )


def require_engine() -> None:
    if shutil.which("docker") is None:
        raise DockerError("docker is not installed (see README: Requirements)")
    result = run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=20)
    if result.returncode != 0:
        raise DockerError("the Docker engine does not answer (is dockerd running?)")
    compose = run(["docker", "compose", "version", "--short"], check=False, timeout=20)
    if compose.returncode != 0:
        raise DockerError("the Docker Compose plugin is missing (`docker compose version` fails)")


def compose_config_problems(config: StackConfig, stack_dir: Path) -> str:
    """Compose's own verdict on the file: empty when it accepts it."""
    result = run(
        [
            "docker",
            "compose",
            "--project-directory",
            str(stack_dir),
            "-f",
            str(stack_dir / COMPOSE_FILE),
            "-p",
            config.project,
            "config",
            "--quiet",
        ],
        check=False,
        timeout=60,
    )
    if result.returncode == 127 or "is not a docker command" in result.stderr:
        raise DockerError("the Docker Compose plugin is missing")
    if result.returncode == 0:
        return ""
    return " ".join(result.stderr.split()) or f"docker compose config exited {result.returncode}"


def image_present(image: str) -> bool:
    return run(["docker", "image", "inspect", image], check=False, timeout=30).returncode == 0


def run_in_image(image: str, command: InImageCommand, stack_dir: Path) -> tuple[bool, str]:
    """Run a proxy's own test in its own image, with no network: (accepted, output)."""
    if not image_present(image):
        raise DockerError(f"image {image} is not present (run `stackgen up` to pull it)")
    argv = ["docker", "run", "--rm", "--network", "none"]
    for source, target in command.mounts:
        host = Path(source) if Path(source).is_absolute() else stack_dir / source
        argv += ["-v", f"{host.resolve()}:{target}:ro"]
    if command.entrypoint:
        argv += ["--entrypoint", command.entrypoint]
    if command.user:
        argv += ["--user", command.user]
    argv += [image, *command.argv]
    result = run(argv, check=False, timeout=120)
    return result.returncode == 0, result.stdout + result.stderr


__all__ = [
    "DockerException",
    "compose_client",
    "compose_config_problems",
    "image_present",
    "require_engine",
    "run_in_image",
]
