"""What stackgen knows about a deploy target before loading it: its name and where its
three parts are, each imported on first use.

A target is split by layer, like a proxy: its `deploy` table (the model), its stack file
(rendering, pure) and its operations on the engine. Kept free of any other stackgen import:
the configuration model reads the registry of specs to validate `deploy.target`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TargetSpec:
    name: str  # stackgen.toml's `deploy.target`
    config: str  # "module:Class": its `deploy` table, a `models.DeployConfig`
    stack_file: str  # "module:Class": its stack file, a `targets.stack_file.StackFile`
    operations: str  # "module:Class": its `targets.base.Target`
    # Folder of its templates; None: `compose-templates/targets/<name>/`.
    template_dir: Path | None = None
    # Place in listings (help text, error messages); ties go by name. The first is the
    # default target.
    rank: int = 100
    # One line for `stackgen init --help`.
    summary: str = ""
    # Where `stackgen up` runs, when not on any machine (init's "next:" line).
    up_where: str = ""
