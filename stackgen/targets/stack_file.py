"""A deploy target's stack file, as rendering sees it (pure: no engine).

Every target has a template folder, `compose-templates/targets/<name>/` (or the folder its
spec names): `stack.yml.j2`, the top-level file written as `docker-compose.yml`, and its
variants of the shared services (`proxy-service.yml.j2`, `jellyfin-service.yml.j2`,
`certbot-service.yml.j2`), each extending the shared skeleton and filling the blocks where
the targets differ (restart, ports, mounts, networks, placement). `network-xml-comment.xml.j2`
says in network.xml what its KnownProxies name on this target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stackgen.models import StackConfig
from stackgen.parts import StateFile


@dataclass(frozen=True)
class Rendered:
    """What the stack file may refer to: every other file of the stack, already rendered."""

    templates: frozenset[str]  # the rendered files the containers only read
    contents: Mapping[str, bytes]  # every planned file (state files included)
    network_xml: bytes
    stack_dir: Path


class StackFile:
    """A target's stack file: its template folder, and what its templates read beyond the
    context every template gets (`context`, computed once every other file is rendered)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def templates(self) -> str:
        """The template name prefix of its templates (the loader maps it to its folder)."""
        return f"targets/{self.name}"

    @property
    def template(self) -> str:
        return f"{self.templates}/stack.yml.j2"

    def context(self, config: StackConfig, rendered: Rendered) -> dict[str, object]:
        return {}

    def side_state(self, sides: Mapping[str, StackConfig]) -> dict[str, list[StateFile]]:
        """Files created once for each side of a configuration that `init` splits into
        several stacks (`DeployConfig.sides`), made together because each side holds what
        the others need (the tunnel's keys); by side, empty for a target of one stack."""
        return {}
