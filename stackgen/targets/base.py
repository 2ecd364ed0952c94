"""A deploy target's operations on the engine: the `Target` contract that `lifecycle` and
`verify` drive, whatever runs the stack.

`lifecycle` keeps what every target shares (the checks, the subnets, the wait for Jellyfin
through the proxy over verified HTTPS, the certificate); a target brings the rest: its own
preflight, how it applies a rendered stack and waits until it converged, removes it, and
reports its services, their logs and the proxy's addresses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stackgen.errors import DockerError, StackInterrupted
from stackgen.integrity import compose_services
from stackgen.probe import Tunnel
from stackgen.render import COMPOSE_FILE
from stackgen.targets import registry

if TYPE_CHECKING:
    from stackgen.stack import Stack

Progress = Callable[[str], None]
LOG_LINES_ON_FAILURE = 25


@dataclass(frozen=True)
class ServiceState:
    """One service of a running stack, as `status` shows it."""

    service: str
    container: str
    state: str
    health: str
    ports: list[str]

    @property
    def well(self) -> bool:
        return self.state == "running" and self.health in ("healthy", "none")

    def problem(self) -> str:
        return f"{self.service} ({self.state}, health {self.health})"


def expected_services(folder: Path) -> set[str]:
    """The services the stack file on disk declares (empty when it is missing)."""
    try:
        return compose_services((folder / COMPOSE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return set()


class Target(ABC):
    """What runs a stack. One instance per target (`registry.load(name, "operations")`)."""

    name: str
    unit = "container"  # what `status` calls a service's runner ("no container")
    logs_source = "docker compose"  # where its logs come from, for a test's report

    # --- up ----------------------------------------------------------------------------

    @abstractmethod
    def preflight(self, stack: Stack, progress: Progress) -> None:
        """The target's own checks before `up` (run before `check` and the images): the
        engine's role, the published ports."""

    @abstractmethod
    def ensure_images(self, stack: Stack, progress: Progress) -> None:
        """Name a missing image before anything starts (or say who needs it)."""

    @abstractmethod
    def is_running(self, stack: Stack) -> bool:
        """Whether the stack runs already (an interrupted `up` then leaves it running)."""

    @abstractmethod
    def apply(self, stack: Stack, *, timeout: int, progress: Progress) -> None:
        """Bring the rendered stack up and wait until it converged: every service healthy."""

    @abstractmethod
    def explain(self, stack: Stack, progress: Progress) -> None:
        """After a failed wait through the proxy: what the services say (last log lines)."""

    def awaits_jellyfin(self, stack: Stack, progress: Progress) -> bool:
        """Whether `up` can wait for Jellyfin through the proxy now: False when Jellyfin
        runs elsewhere and is not connected yet (say why through `progress`)."""
        return True

    def settle(self, stack: Stack) -> None:  # noqa: B027 - optional: most leave nothing
        """After `up` or `reload` reached Jellyfin: tidy what the change left behind."""

    @abstractmethod
    def interrupted(self, stack: Stack, *, was_running: bool) -> StackInterrupted:
        """What an interrupted `up` leaves: the stack as it was when it already ran (the
        next `up` finishes the update), nothing when `up` started it."""

    # --- reload ------------------------------------------------------------------------

    @abstractmethod
    def require_deployed(self, stack: Stack) -> None:
        """`reload` needs a running stack: a ProblemsFoundError otherwise."""

    @abstractmethod
    def reload(self, stack: Stack, changed: set[str], progress: Progress) -> None:
        """Apply the re-rendered files (`changed`: their stack paths) with the least
        disruption."""

    def run_in_service(self, stack: Stack, service: str, argv: list[str]) -> str:
        """Run a command in one of the stack's running services and return its output (the
        ban list's feeder is asked to lift a ban this way); a DockerError when it fails."""
        raise DockerError(f"{self.__class__.__name__} cannot run a command in {service}")

    # --- down, status, logs ---------------------------------------------------------------

    @abstractmethod
    def holds(self, project: str, folder: Path) -> bool:
        """Whether a stack of this name runs on this target (down and status by name)."""

    @abstractmethod
    def remove(self, project: str, folder: Path, *, volumes: bool) -> None:
        """Remove the stack by its name alone (its files may be missing or broken)."""

    @abstractmethod
    def states(self, stack: Stack) -> list[ServiceState]:
        """The stack's services (a DockerError when the engine cannot say)."""

    @abstractmethod
    def project_states(self, project: str, folder: Path) -> list[ServiceState]:
        """The same from the stack's name alone."""

    @abstractmethod
    def logs(self, stack: Stack, service: str | None, follow: bool) -> Iterator[str]:
        """The logs of one service, or of all; with `follow`, as they come."""

    @abstractmethod
    def recent_logs(self, stack: Stack, service: str | None, lines: int) -> str:
        """The last lines of one service's log (of each with None), never an exception."""

    # --- where the proxy is -----------------------------------------------------------------

    @abstractmethod
    def proxy_addresses(self, stack: Stack) -> list[str]:
        """Where the proxy's connections to Jellyfin come from, as the engine reports it
        (empty when it does not run, or not here)."""

    def proxy_container(self, stack: Stack) -> tuple[str, list[str]] | None:
        """The running proxy container's engine id and its IPv4 addresses, when it runs on
        this machine as one container (`stackgen bench` reads its cgroup and connects to it
        as a LAN client would); None otherwise."""
        return None

    def tunnel(self, stack: Stack) -> Tunnel | None:
        """The link between the proxy and Jellyfin when the target runs one (a WireGuard
        tunnel), as this side reports it: `verify`'s `tunnel.*` checks judge it."""
        return None

    def report(self, stack: Stack) -> dict[str, object]:
        """What `status` shows beyond the services and the certificate, by name (e.g. a
        tunnel's state); never an exception."""
        return {}

    def client_route(self, stack: Stack) -> list[str]:
        """What a client's request crosses after it reaches the proxy, hop by hop, when the
        target puts more than the proxy's network between the proxy and Jellyfin (`bench`
        says it); empty otherwise, and on a side that runs no proxy."""
        return []

    def connect_address(self, stack: Stack) -> str:
        """Where this machine reaches the proxy's published ports."""
        return stack.config.connect_address


def holding(project: str, folder: Path) -> Target:
    """The target a stack of this name runs on (`down` and `status` from the name alone):
    the first other target that holds it, else the default one."""
    default = registry.default()
    for name in registry.available():
        if name == default:
            continue
        target: Target = registry.load(name, "operations")
        if target.holds(project, folder):
            return target
    fallback: Target = registry.load(default, "operations")
    return fallback
