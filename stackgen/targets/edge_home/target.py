"""The edge-home target's operations: each side is a Compose project of its own, run by the
Compose target's operations in that side's folder."""

from __future__ import annotations

from stackgen.targets.compose.target import Compose


class EdgeHome(Compose):
    name = "edge-home"
