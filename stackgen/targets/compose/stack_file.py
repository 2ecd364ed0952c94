"""The compose target's stack file: its templates read nothing beyond the shared context."""

from __future__ import annotations

from stackgen.targets.stack_file import StackFile


class ComposeFile(StackFile):
    def __init__(self) -> None:
        super().__init__("compose")
