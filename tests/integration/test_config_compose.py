"""Values at the edges, judged by Docker Compose itself: any stackgen.toml value
is refused in one line or renders a compose file `docker compose config` accepts; a compose
file lacking stackgen's services makes `up` refuse to start."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from stackgen import writer
from stackgen.engine import compose_config_problems
from stackgen.errors import ExitCode
from stackgen.models import StackConfig
from stackgen.render import render_stack
from stackgen.stack import Stack
from tests.integration.conftest import HTTP_PORT, HTTPS_PORT, SLOT, SUBNET
from tests.unit.test_cli import stackgen
from tests.unit.test_config_properties import (
    BASE,
    PLAUSIBLE_CHANGES,
    _with,
    refused_or_rendered,
)


def _compose_accepts(config: StackConfig, stack: Path) -> None:
    files, directories = render_stack(config, stack)
    writer.apply(writer.plan(stack, files, directories=directories))
    assert compose_config_problems(Stack(config, stack).compose) == ""


def test_a_media_source_with_a_colon_is_accepted_by_compose(engine: None, tmp_path: Path) -> None:
    """Before: the short syntax split `/srv/a:b` and Compose rejected the file."""
    source = tmp_path / "films:2024"
    source.mkdir()
    stack = tmp_path / "stack"
    result = stackgen(
        *("init", "traefik", "--domain", "jf.example.com", "--email", "a@example.com"),
        *("--media", f"{source}:/media/films:rw", "--media", str(source)),
        *("--dir", str(stack)),
    )
    assert result.returncode == 0, result.stderr
    check = stackgen("check", "--dir", str(stack))
    assert "`docker compose config` accepts the compose file" in check.stderr, check.stderr


@settings(
    max_examples=80,  # each renders a stack and runs `docker compose config` (~0.1 s)
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(PLAUSIBLE_CHANGES)
def test_any_value_is_refused_or_accepted_by_compose(
    engine: None, changes: list[tuple[tuple[str, ...], Any]]
) -> None:
    data = BASE
    for path, value in changes:
        data = _with(data, path, value)
    with tempfile.TemporaryDirectory(prefix="stackgen-prop-") as folder:
        config = refused_or_rendered(data, Path(folder))
        if config is not None:
            _compose_accepts(config, Path(folder) / "stack")


def test_up_refuses_a_compose_file_without_stackgens_services(engine: None, tmp_path: Path) -> None:
    """Before: a truncated compose file only drew a warning, and `up` started half a stack."""
    project = f"sgtest{SLOT}-truncated"
    result = stackgen(
        *("init", "traefik", "--domain", "jf.example.com", "--email", "a@example.com"),
        *("--http-port", str(HTTP_PORT), "--https-port", str(HTTPS_PORT)),
        *("--jellyfin-network", "bridge", "--subnet", SUBNET, "--project", project),
        *("--dir", str(tmp_path)),
    )
    assert result.returncode == 0, result.stderr
    compose = tmp_path / "docker-compose.yml"
    text = compose.read_text()
    compose.write_text(text[: text.index("  jellyfin:")])
    up = stackgen("up", "--dir", str(tmp_path), "--timeout", "30")
    assert up.returncode == ExitCode.PROBLEMS_FOUND, up.stderr
    assert "refusing to start" in up.stderr, up.stderr
    # Every service after the cut is named (Jellyfin, and the feeder before it).
    assert re.search(r"lacks stackgen's service\(s\) [^(]*\bjellyfin\b", up.stderr), up.stderr
    listing = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing.stdout.strip() == ""  # nothing started


def test_a_credential_reaches_the_containers_as_written(engine: None, tmp_path: Path) -> None:
    """Before: .env was unquoted, and Compose expanded `$` and cut ` #...` out of a token."""
    token = "ab$cd${HOME} #ef\\g"
    stack = tmp_path / "stack"
    result = stackgen(
        *("init", "traefik", "--domain", "jf.example.com", "--email", "a@example.com"),
        *("--tls", "acme-dns", "--dns-provider", "cloudflare"),
        *("--dns-credential", f"CF_DNS_API_TOKEN={token}", "--dir", str(stack)),
    )
    assert result.returncode == 0, result.stderr
    config = subprocess.run(
        ["docker", "compose", "--project-directory", str(stack), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    environment = json.loads(config.stdout)["services"]["traefik"]["environment"]
    # Compose's own output doubles a literal `$` (its escape for "no variable here").
    assert environment["CF_DNS_API_TOKEN"].replace("$$", "$") == token
