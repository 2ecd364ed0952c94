"""The one interface every proxy module implements.

Adding a proxy means one module here plus one template folder under
`compose-templates/proxies/<kind>/`; nothing else in stackgen knows proxy specifics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from stackgen.models import ProxyKind, StackConfig, TlsMode


@dataclass(frozen=True)
class TemplateFile:
    template: str  # path under compose-templates/
    target: str  # path in the stack folder
    mode: int = 0o644


@dataclass(frozen=True)
class StateFile:
    """Created once (empty or with initial content) and then owned by the running stack."""

    target: str
    content: bytes = b""
    mode: int = 0o600


@dataclass(frozen=True)
class InImageCommand:
    """A command run in the proxy's own image with stack files mounted (validate, test)."""

    argv: Sequence[str]
    mounts: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (stack path, container)
    entrypoint: str | None = None
    user: str | None = None  # uid:gid, for an image whose own user cannot read the stack's keys


class Proxy(ABC):
    kind: ClassVar[ProxyKind]
    # TLS modes this proxy implements; the CLI refuses the others with one line.
    tls_modes: ClassVar[frozenset[TlsMode]] = frozenset(TlsMode)

    @property
    def service(self) -> str:
        """Compose service name of the proxy (what `stackgen logs` takes)."""
        return self.kind.value

    def image(self, config: StackConfig) -> str:
        return str(getattr(config.images, self.kind.value))

    @abstractmethod
    def templates(self, config: StackConfig) -> list[TemplateFile]:
        """Config files rendered from templates (besides docker-compose.yml and network.xml)."""

    def state_files(self, config: StackConfig) -> list[StateFile]:
        return []

    def directories(self, config: StackConfig) -> list[tuple[str, int]]:
        """Folders (stack path, mode) the proxy's container writes to, created before it starts:
        Docker would create a missing bind source itself, owned by root."""
        return []

    def validate_command(self, config: StackConfig) -> InImageCommand | None:
        """The proxy's own config test, run inside its image (`nginx -t`, ...)."""
        return None

    def reload_command(self, config: StackConfig) -> Sequence[str] | None:
        """Run with `docker compose exec` in the proxy container; None: it watches its files."""
        return None

    def needs_restart(self, config: StackConfig, changed: set[str]) -> bool:
        """Whether changed config files only take effect by restarting the proxy (which
        drops connections); otherwise `reload_command` or the proxy's own watch applies them."""
        return False

    def static_problems(self, config: StackConfig, files: dict[str, bytes]) -> list[str]:
        """Rule checks stackgen can do without Docker on the files as they are on disk."""
        return []
