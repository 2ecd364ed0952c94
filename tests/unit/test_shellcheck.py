"""Every shell script stackgen renders passes shellcheck.

The golden files are the rendered stacks of every proxy, TLS mode, network and option
(test_golden keeps them equal to the rendering), so their scripts are every script a user
can get: certbot's service loop, its deploy hook, the proxy's certificate watcher. They run
under `sh` in images we do not build (busybox in the official certbot image), where a
bashism or an unquoted expansion fails only at renewal time, months after `up`.

shellcheck comes from Debian (tests/infra/engine.sh installs it for `make test` and CI);
without it this test fails under CI=true and is skipped elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found is None:
        message = "shellcheck is not installed (apt-get install shellcheck; engine.sh does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_shellcheck(scripts: list[Path]) -> subprocess.CompletedProcess[str]:
    # Style level: everything shellcheck reports. The dialect comes from each #! line.
    return subprocess.run(
        [shellcheck(), "--format=gcc", "--severity=style", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def distinct_scripts() -> list[Path]:
    """One golden script per distinct content (many stacks render identical ones): each
    variant of a rendered `*.sh` is a file in the folder named after the script."""
    seen: dict[str, Path] = {}
    for folder in sorted((GOLDEN / "files").rglob("*.sh")):
        for path in sorted(folder.iterdir()) if folder.is_dir() else [folder]:
            seen.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return list(seen.values())


def _script_name(path: Path) -> str:
    return path.parent.name if path.parent.suffix == ".sh" else path.name


def test_every_rendered_script_passes_shellcheck() -> None:
    scripts = distinct_scripts()
    names = {_script_name(path) for path in scripts}
    assert {"run.sh", "deploy-hook.sh", "watch-files.sh"} <= names, names
    result = run_shellcheck(scripts)
    assert result.returncode == 0, f"shellcheck:\n{result.stdout}{result.stderr}"


def test_shellcheck_catches_what_it_should(tmp_path: Path) -> None:
    """The invocation above really lints: a POSIX-sh script with a bashism and an unused
    variable fails it."""
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/bin/sh\nunused=1\nif [[ -n "$1" ]]; then echo $1; fi\n')
    result = run_shellcheck([bad])
    assert result.returncode != 0
    assert "SC2034" in result.stdout and "SC3010" in result.stdout
