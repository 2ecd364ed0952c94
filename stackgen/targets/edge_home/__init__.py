"""Jellyfin at home behind NAT, its proxy on a public edge server, joined by a WireGuard
tunnel that home dials: two Compose stacks (`edge/`, `home/`) from one configuration."""

from __future__ import annotations

from stackgen.targets.spec import TargetSpec

SPEC = TargetSpec(
    name="edge-home",
    config="stackgen.targets.edge_home.config:EdgeHomeDeploy",
    stack_file="stackgen.targets.edge_home.stack_file:EdgeHomeFile",
    operations="stackgen.targets.edge_home.target:EdgeHome",
    rank=20,
    summary="the proxy on a public edge server, Jellyfin at home behind NAT, joined by "
    "WireGuard (two stacks: edge/ and home/)",
    up_where="--side edge (on the edge server), then --side home (at home)",
)
