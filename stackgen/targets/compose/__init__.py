"""Docker Compose on this machine: `docker compose up` of the stack's folder."""

from __future__ import annotations

from stackgen.targets.spec import TargetSpec

SPEC = TargetSpec(
    name="compose",
    config="stackgen.targets.compose.config:ComposeDeploy",
    stack_file="stackgen.targets.compose.stack_file:ComposeFile",
    operations="stackgen.targets.compose.target:Compose",
    rank=0,
    summary="this machine (docker compose)",
)
