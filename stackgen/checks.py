"""`stackgen check`: validate a rendered stack without starting anything."""

from __future__ import annotations

import shutil
import stat
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stackgen.docker_ops import compose_config_problems, run_in_image
from stackgen.errors import DockerError
from stackgen.integrity import broken_state_json, missing_services, unusable_by_run_as
from stackgen.models import StackConfig
from stackgen.proxies import get_proxy
from stackgen.render import network_xml_path
from stackgen.stack import plan_render
from stackgen.writer import Action


class Level(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.level.value, "message": self.message}


def check_stack(config: StackConfig, stack_dir: Path, *, use_docker: bool = True) -> list[Finding]:
    findings: list[Finding] = []
    steps: list[Callable[[], list[Finding]]] = [
        lambda: _rendered_files(config, stack_dir),
        lambda: _well_formed(stack_dir),
        lambda: _network_xml(config, stack_dir),
        lambda: _modes(config, stack_dir),
        lambda: _proxy_rules(config, stack_dir),
    ]
    if use_docker:
        steps += [lambda: _compose(config, stack_dir), lambda: _proxy_validator(config, stack_dir)]
    for step in steps:
        findings += step()
    return findings


def _rendered_files(config: StackConfig, stack_dir: Path) -> list[Finding]:
    plan = plan_render(config, stack_dir, force=False)
    findings = [Finding("files", Level.WARN, warning) for warning in plan.warnings]
    findings += [Finding("compose", Level.FAIL, p) for p in missing_services(plan)]
    findings += [Finding("state", Level.FAIL, p) for p in broken_state_json(plan)]
    findings += [Finding("owner", Level.FAIL, p) for p in unusable_by_run_as(config, plan)]
    for verdict in plan.verdicts:
        path = verdict.file.path
        if verdict.action is Action.CREATE:
            findings.append(
                Finding("files", Level.FAIL, f"{path} is missing: run `stackgen render`")
            )
        elif verdict.action is Action.UPDATE:
            findings.append(
                Finding("files", Level.WARN, f"{path} is out of date: run `stackgen render`")
            )
        elif verdict.action is Action.CONFLICT:
            findings.append(
                Finding("files", Level.WARN, f"{path} was edited by hand; stackgen keeps it")
            )
    if not findings:
        findings.append(Finding("files", Level.PASS, "every generated file is present and current"))
    return findings


def _well_formed(stack_dir: Path) -> list[Finding]:
    findings = []
    for path in sorted(stack_dir.rglob("*")):
        if not path.is_file() or ".stackgen" in path.parts:
            continue
        relative = path.relative_to(stack_dir)
        try:
            if path.suffix == ".toml":
                tomllib.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".xml" and "config" in relative.parts[:-1]:
                ET.parse(path)  # noqa: S314 - our own file, in the user's own folder
            else:
                continue
        except (tomllib.TOMLDecodeError, ET.ParseError, UnicodeDecodeError) as error:
            findings.append(Finding("syntax", Level.FAIL, f"{relative}: {error}"))
    return findings or [Finding("syntax", Level.PASS, "TOML and XML files are well-formed")]


def _network_xml(config: StackConfig, stack_dir: Path) -> list[Finding]:
    path = stack_dir / network_xml_path(config)
    try:
        root = ET.parse(path).getroot()  # noqa: S314
    except (OSError, ET.ParseError) as error:
        return [Finding("network.xml", Level.FAIL, f"cannot read {path}: {error}")]
    proxies = [e.text or "" for e in root.findall("./KnownProxies/string")]
    base_url = (root.findtext("BaseUrl") or "").rstrip("/")
    findings = []
    if not proxies:
        findings.append(
            Finding(
                "network.xml",
                Level.FAIL,
                "KnownProxies is empty: Jellyfin 10.11 ignores "
                "X-Forwarded-* and every client looks like the proxy",
            )
        )
    elif not set(config.known_proxies) <= set(proxies):
        findings.append(
            Finding(
                "network.xml",
                Level.FAIL,
                f"KnownProxies {proxies} does not name the proxy address {config.known_proxies}",
            )
        )
    if base_url != config.subpath:
        findings.append(
            Finding(
                "network.xml",
                Level.FAIL,
                f"BaseUrl {base_url!r} differs from subpath "
                f"{config.subpath!r}: expect redirect loops",
            )
        )
    return findings or [
        Finding("network.xml", Level.PASS, f"KnownProxies {proxies}, BaseUrl {base_url!r}")
    ]


def _modes(config: StackConfig, stack_dir: Path) -> list[Finding]:
    """Secrets must not be readable by others; acme.json looser than 0600 breaks Traefik."""
    findings = []
    for verdict in plan_render(config, stack_dir, force=False).verdicts:
        if verdict.file.mode != 0o600:
            continue
        path = stack_dir / verdict.file.path
        if not path.exists():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            level = Level.FAIL if path.name == "acme.json" else Level.WARN
            findings.append(
                Finding(
                    "modes",
                    level,
                    f"{verdict.file.path} is {oct(mode)}; run `chmod 600 {verdict.file.path}`",
                )
            )
    return findings or [Finding("modes", Level.PASS, "secrets and acme.json are 0600")]


def _proxy_rules(config: StackConfig, stack_dir: Path) -> list[Finding]:
    proxy = get_proxy(config.proxy)
    files = {
        t.target: (stack_dir / t.target).read_bytes()
        for t in proxy.templates(config)
        if (stack_dir / t.target).is_file()
    }
    problems = proxy.static_problems(config, files)
    if not problems:
        return [Finding("proxy", Level.PASS, f"{proxy.kind.value} configuration follows its rules")]
    return [Finding("proxy", Level.FAIL, problem) for problem in problems]


def _compose(config: StackConfig, stack_dir: Path) -> list[Finding]:
    if shutil.which("docker") is None:
        return [Finding("compose", Level.WARN, "docker is not installed: compose file not checked")]
    try:
        problems = compose_config_problems(config, stack_dir)
    except DockerError as error:
        return [Finding("compose", Level.WARN, f"compose file not checked: {error}")]
    if problems:
        return [Finding("compose", Level.FAIL, problems)]
    return [Finding("compose", Level.PASS, "`docker compose config` accepts the compose file")]


def _proxy_validator(config: StackConfig, stack_dir: Path) -> list[Finding]:
    proxy = get_proxy(config.proxy)
    command = proxy.validate_command(config)
    if command is None:
        return []
    try:
        ok, output = run_in_image(proxy.image(config), command, stack_dir)
    except DockerError as error:
        return [
            Finding("proxy-test", Level.WARN, f"{proxy.kind.value}'s own test not run: {error}")
        ]
    if ok:
        return [Finding("proxy-test", Level.PASS, f"{proxy.kind.value}'s own test accepts it")]
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return [Finding("proxy-test", Level.FAIL, " | ".join(lines[-5:]) or "rejected")]


def summarize(findings: list[Finding]) -> tuple[int, int]:
    fails = sum(1 for f in findings if f.level is Level.FAIL)
    warns = sum(1 for f in findings if f.level is Level.WARN)
    return fails, warns


__all__ = ["Finding", "Level", "check_stack", "summarize"]
