"""Docker Swarm: `docker stack deploy` from a manager node (docs/swarm.md)."""

from __future__ import annotations

from stackgen.targets.spec import TargetSpec

SPEC = TargetSpec(
    name="swarm",
    config="stackgen.targets.swarm.config:SwarmDeploy",
    stack_file="stackgen.targets.swarm.stack_file:SwarmStackFile",
    operations="stackgen.targets.swarm.target:Swarm",
    rank=10,
    summary="a Docker Swarm (docker stack deploy)",
    up_where="on a swarm manager",
)
