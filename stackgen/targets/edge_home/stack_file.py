"""The edge-home target's stack files (one per side) and the tunnel's configuration, made
once for both sides with keys generated here (stackgen.tunnel.keys)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from stackgen.models import StackConfig
from stackgen.parts import Access, StateFile
from stackgen.targets.edge_home.config import EdgeHomeDeploy
from stackgen.targets.stack_file import StackFile
from stackgen.templating import render
from stackgen.tunnel import keys

WG_CONF: Final = "wireguard/wg0.conf"


def _deploy(config: StackConfig) -> EdgeHomeDeploy:
    deploy = config.deploy
    if not isinstance(deploy, EdgeHomeDeploy):  # pragma: no cover - the registry's pairing
        raise TypeError(f"deploy.target {deploy.target!r} is not edge-home")
    return deploy


class EdgeHomeFile(StackFile):
    def __init__(self) -> None:
        super().__init__("edge-home")

    def side_state(self, sides: Mapping[str, StackConfig]) -> dict[str, list[StateFile]]:
        """Each side's wg0.conf: its own private key, the other side's public key and the
        preshared key of the pair. The writer creates it once (0600) and never re-renders it,
        so a key is generated only here and never printed."""
        edge, home = sides["edge"], sides["home"]
        pairs = {"edge": keys.generate(), "home": keys.generate()}
        preshared = keys.generate_preshared()
        addresses = {
            "edge": _deploy(edge).edge_address,
            "home": _deploy(home).home_address,
        }
        state: dict[str, list[StateFile]] = {}
        for side, config in sides.items():
            other = "home" if side == "edge" else "edge"
            content = render(
                f"{self.templates}/wg0.conf.j2",
                c=config,
                address=addresses[side],
                peer_address=addresses[other],
                private_key=pairs[side].private,
                peer_public_key=pairs[other].public,
                preshared_key=preshared,
            )
            state[side] = [StateFile(WG_CONF, content.encode(), 0o600, Access.PRIVATE)]
        return state
