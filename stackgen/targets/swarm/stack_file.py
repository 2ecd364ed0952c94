"""What the swarm target's stack file mounts, computed from the rendered files (pure).

On a swarm a service must not depend on files of one machine's folder that it only reads:
every rendered configuration file a container reads becomes a Swarm config and every
private key a Swarm secret. Both are immutable, so each carries a hash of its content in its
name: a changed file is a new name, and `docker stack deploy` rolls exactly the services
that mount it. What a container writes (ACME state, certbot's folders, Jellyfin's
folders) stays a bind mount of the node the service is placed on.

The proxies and certificate sources declare their mounts once, as typed values
(`parts.Mount`: a private key says it is one, a single file says it is one);
`SwarmFiles.mounts` turns them into the three lists of a swarm service: a read-only folder of
rendered files becomes a config per file, a key a secret, what a container writes a bind
mount. No proxy template has a swarm variant.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final

from stackgen.errors import InvalidInputError
from stackgen.models import StackConfig
from stackgen.parts import Mount, Tmpfs
from stackgen.targets.stack_file import Rendered, StackFile
from stackgen.targets.swarm.config import EDGE_LABEL, MEDIA_LABEL

# Docker refuses config and secret names longer than 64 characters.
NAME_LIMIT: Final = 64
HASH_CHARS: Final = 12


@dataclass(frozen=True)
class SwarmObject:
    """One Swarm config or secret: its key in the stack file, its immutable name, its file."""

    key: str
    name: str
    file: str  # stack-relative, or absolute for a file of the user's


@dataclass(frozen=True)
class TmpfsVolume:
    """A named volume of the local driver on a tmpfs: the one way a swarm service gets a
    tmpfs with an owner (a plain tmpfs mount takes the image folder's owner and mode)."""

    key: str
    options: str  # mount options, e.g. "uid=1000,gid=1000,mode=0755"


@dataclass(frozen=True)
class _Mount:
    kind: str  # "config", "secret", "bind", "volume" or "tmpfs"
    source: str  # the object's key, or the bind source
    target: str
    read_only: bool = True


def _normal(path: str) -> str:
    """A stack-relative path as the plan spells it (`./traefik/` -> `traefik`)."""
    return str(PurePosixPath(path.removeprefix("./")))


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", path.strip("/")).strip("-.") or "file"


@dataclass
class SwarmFiles:
    """The rendered files (stack path -> bytes) a stack file may mount as configs/secrets."""

    project: str
    templates: frozenset[str]  # the rendered files the containers only read
    contents: Mapping[str, bytes]  # every planned file (state files included)
    stack_dir: Path
    owner: tuple[int, int]  # uid, gid the services run as: they alone may read a secret
    configs: dict[str, SwarmObject] = field(default_factory=dict)
    secrets: dict[str, SwarmObject] = field(default_factory=dict)
    volumes: dict[str, TmpfsVolume] = field(default_factory=dict)

    def _object(self, path: str, content: bytes, *, secret: bool) -> SwarmObject:
        table = self.secrets if secret else self.configs
        key = _slug(path)
        digest = hashlib.sha256(content).hexdigest()[:HASH_CHARS]
        room = NAME_LIMIT - len(digest) - 2
        stem = f"{self.project}-{key}"
        if len(stem) > room:
            stem = stem[: room // 2] + stem[-(room - room // 2) :]
        obj = SwarmObject(key, f"{stem}-{digest}", path if path.startswith("/") else f"./{path}")
        table[key] = obj
        return obj

    def _content(self, path: str) -> bytes:
        if path in self.contents:
            return self.contents[path]
        on_disk = Path(path) if path.startswith("/") else self.stack_dir / path
        try:
            return on_disk.read_bytes()
        except OSError as error:
            raise InvalidInputError(
                f"{path}: cannot read it to make a swarm config or secret ({error.strerror})"
            ) from None

    def _classify(self, mount: Mount, unread: Set[str]) -> list[_Mount]:
        source = mount.source
        path = source if source.startswith("/") else _normal(source)
        if mount.read_only and not mount.live:
            inside = sorted(
                f for f in self.templates if f.startswith(f"{path}/") and f not in unread
            )
            if inside:
                # A folder of rendered files: each file on its own (a config is one file).
                base = mount.target.rstrip("/")
                return [self._file_mount(f, f"{base}/{f[len(path) + 1 :]}") for f in inside]
            if path in self.templates or mount.file or mount.secret:
                return [self._file_mount(path, mount.target, secret=mount.secret)]
        # Written by a container or while it runs, or a folder it shares with another: the
        # node's own.
        return [_Mount("bind", source, mount.target, mount.read_only)]

    def _file_mount(self, path: str, target: str, *, secret: bool = False) -> _Mount:
        obj = self._object(path, self._content(path), secret=secret)
        return _Mount("secret" if secret else "config", obj.key, target)

    def mounts(
        self,
        service: str,
        mounts: Sequence[Mount],
        tmpfs: Sequence[Tmpfs] = (),
        unread: Collection[str] = (),
    ) -> str:
        """A service's `configs`, `secrets` and `volumes` (indented for a service), from its
        mounts and tmpfs. `unread`: rendered files of a mounted folder the service never
        reads (left out, so that a change to them does not replace its task)."""
        found: list[_Mount] = []
        for mount in mounts:
            found += self._classify(mount, set(unread))
        for fs in tmpfs:
            if not fs.options:
                found.append(_Mount("tmpfs", "", fs.target, read_only=False))
                continue
            key = f"{service}-tmpfs-{_slug(fs.target)}"
            self.volumes[key] = TmpfsVolume(key, fs.options)
            found.append(_Mount("volume", key, fs.target, read_only=False))
        return _service_yaml(found, self.owner)

    def configs_yaml(self) -> str:
        return objects_yaml("configs", self.configs)

    def secrets_yaml(self) -> str:
        return objects_yaml("secrets", self.secrets)

    def volumes_yaml(self) -> str:
        """The top-level `volumes:`: each tmpfs with an owner, on the node of its task."""
        if not self.volumes:
            return ""
        lines = ["volumes:"]
        for volume in self.volumes.values():
            lines += [
                f"  {volume.key}:",
                "    driver_opts:",
                "      type: tmpfs",
                "      device: tmpfs",
                f"      o: {_q(volume.options)}",
            ]
        return "\n".join(lines) + "\n"


def _service_yaml(mounts: Sequence[_Mount], owner: tuple[int, int]) -> str:
    lines: list[str] = []
    configs = [m for m in mounts if m.kind == "config"]
    secrets = [m for m in mounts if m.kind == "secret"]
    volumes = [m for m in mounts if m.kind in ("bind", "volume", "tmpfs")]
    if configs:
        lines.append("    configs:")
        for m in configs:
            lines += [f"      - source: {m.source}", f"        target: {_q(m.target)}"]
            lines.append("        mode: 0444")
    if secrets:
        lines.append("    secrets:")
        lines.append("      # Readable by the service's user only.")
        for m in secrets:
            lines += [f"      - source: {m.source}", f"        target: {_q(m.target)}"]
            lines += [f'        uid: "{owner[0]}"', f'        gid: "{owner[1]}"']
            lines.append("        mode: 0400")
    if volumes:
        lines.append("    volumes:")
        if any(m.kind == "tmpfs" for m in volumes):
            lines.append("      # tmpfs in the long syntax: a swarm ignores `tmpfs:`.")
        for m in volumes:
            if m.kind == "tmpfs":
                lines += ["      - type: tmpfs", f"        target: {_q(m.target)}"]
                continue
            if m.kind == "volume":
                lines += [
                    "      # A tmpfs with an owner: a named tmpfs volume (see `volumes:`).",
                    "      - type: volume",
                    f"        source: {m.source}",
                    f"        target: {_q(m.target)}",
                ]
                continue
            lines += [
                "      - type: bind",
                f"        source: {_q(m.source)}",
                f"        target: {_q(m.target)}",
            ]
            if m.read_only:
                lines.append("        read_only: true")
    return "\n".join(lines) + ("\n" if lines else "")


def _q(value: str) -> str:
    return json.dumps(value)


def objects_yaml(kind: str, objects: Mapping[str, SwarmObject]) -> str:
    """The top-level `configs:` or `secrets:` of the stack file."""
    if not objects:
        return ""
    lines = [f"{kind}:"]
    for obj in objects.values():
        lines += [f"  {obj.key}:", f"    name: {_q(obj.name)}", f"    file: {_q(obj.file)}"]
    return "\n".join(lines) + "\n"


def content_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:HASH_CHARS]


class SwarmStackFile(StackFile):
    """Rendered last: the stack file names every file it mounts by a hash of its content."""

    def __init__(self) -> None:
        super().__init__("swarm")

    def context(self, config: StackConfig, rendered: Rendered) -> dict[str, object]:
        return {
            "swarm": SwarmFiles(
                config.project,
                rendered.templates,
                rendered.contents,
                rendered.stack_dir,
                (config.uid, config.gid),
            ),
            "network_xml_hash": content_hash(rendered.network_xml),
            "labels": {"edge": EDGE_LABEL, "media": MEDIA_LABEL},
        }
