"""What a component (a proxy, a certificate source) contributes to a stack, as plain values:
files rendered from templates, files created once, commands run in an image, durations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Access(StrEnum):
    """Who may change a file of the stack, which decides its owner (when stackgen runs as
    root) and what `check` accepts. Containers run as `run_as`; the invoking user is the one
    running stackgen."""

    CONTROL = "control"  # stackgen's or the user's; containers read it at most
    SECRET = "secret"  # a key a container reads: the user's, group run_as, 0640
    PRIVATE = "private"  # never mounted into a container: the CA key, .env
    WRITTEN = "written"  # the containers write it: run_as owns it


@dataclass(frozen=True)
class TemplateFile:
    template: str  # template name (a path under compose-templates/, or a proxy's own folder)
    target: str  # path in the stack folder
    mode: int = 0o644


@dataclass(frozen=True)
class StateFile:
    """Created once (empty or with initial content) and then owned by the running stack."""

    target: str
    content: bytes = b""
    mode: int = 0o600
    access: Access = Access.WRITTEN


@dataclass(frozen=True)
class Mount:
    """A host path mounted into a service's container. Each target writes it its own way
    (Compose: a bind mount; Swarm: a config per rendered file, a secret for a key, a bind
    mount for what a container writes), so nothing is guessed from its name."""

    source: str  # stack-relative ("./nginx/conf.d") or absolute
    target: str  # in the container
    read_only: bool = True
    # One file the service reads (a certificate, a CA bundle): a Swarm config of its own.
    file: bool = False
    # A private key: on a Swarm, a secret only the service's user may read.
    secret: bool = False
    # A folder whose files change while the service runs (a command or another service
    # writes them, the service reads them again): the host's folder on every target, even
    # with rendered files in it (a Swarm config is immutable).
    live: bool = False
    comment: tuple[str, ...] = ()  # why, written above it in the stack file

    @property
    def short(self) -> str:
        """Compose's short syntax, `SOURCE:TARGET[:ro]`."""
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class Tmpfs:
    """A tmpfs in a service's container, optionally owned (`options`: mount options)."""

    target: str
    options: str = ""  # e.g. "uid=1000,gid=1000,mode=0755"
    comment: tuple[str, ...] = ()

    @property
    def short(self) -> str:
        return f"{self.target}:{self.options}" if self.options else self.target


def owned_tmpfs(target: str, uid: int, gid: int, *comment: str) -> Tmpfs:
    """A tmpfs owned by the user the service runs as."""
    return Tmpfs(target, f"uid={uid},gid={gid},mode=0755", comment)


@dataclass(frozen=True)
class InImageCommand:
    """A command run in the proxy's own image with stack files mounted (validate, test)."""

    argv: Sequence[str]
    mounts: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (stack path, container)
    entrypoint: str | None = None
    user: str | None = None  # uid:gid, for an image whose own user cannot read the stack's keys


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, order=True)
class Duration:
    """A length of time, in whole seconds; each proxy's template spells it its own way
    (`|duration("s")` gives nginx's `3600s`, `|duration("h")` HAProxy's `1h`, `|duration`
    Apache's bare `3600`)."""

    seconds: int

    def spelled(self, unit: str = "") -> str:
        factor = _UNITS[unit]
        if self.seconds % factor:
            raise ValueError(f"{self.seconds} s is not a whole number of {unit!r}")
        return f"{self.seconds // factor}{unit}"
