"""`stackgen check`: validate a rendered stack without starting anything."""

from __future__ import annotations

import shutil
import stat
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from stackgen import exposure, inputs
from stackgen.certificates.source import OWN_CERT, OWN_KEY
from stackgen.dns_providers import RFC2136, TSIG_SECRET
from stackgen.engine import compose_config_problems, run_in_image
from stackgen.env_file import parse_env
from stackgen.errors import DockerError, FilesystemError, InvalidInputError
from stackgen.integrity import (
    broken_state_json,
    changeable_by_containers,
    missing_services,
    unusable_by_run_as,
)
from stackgen.models import CREDENTIALS_DIR, TlsMode, validate_tsig_secret
from stackgen.probe import Status
from stackgen.render import COMPOSE_FILE, ENV_FILE
from stackgen.stack import (
    Stack,
    check_bundles,
    plan_render,
    stack_path,
)
from stackgen.writer import Action


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    message: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status.value, "message": self.message}


def check_stack(stack: Stack, *, use_docker: bool = True) -> list[Finding]:
    # A stack split between machines checks on each side what runs there.
    deploy = stack.config.deploy
    steps: list[Callable[[Stack], list[Finding]]] = [_rendered_files, _well_formed]
    if deploy.runs_jellyfin:
        steps.append(_network_xml)
    steps += [_modes, _own_certificate]
    if deploy.runs_proxy:
        steps += [_dns_secrets, _credentials_in_spec, _proxy_rules]
    if use_docker:
        steps.append(_compose)
        if deploy.runs_proxy:
            steps.append(_proxy_validator)
    return [finding for step in steps for finding in step(stack)]


def _rendered_files(stack: Stack) -> list[Finding]:
    plan = plan_render(stack, force=False)
    findings = [Finding("files", Status.WARN, warning) for warning in plan.warnings]
    findings += [Finding("compose", Status.FAIL, p) for p in missing_services(plan)]
    findings += [Finding("state", Status.FAIL, p) for p in broken_state_json(plan)]
    findings += [Finding("owner", Status.FAIL, p) for p in unusable_by_run_as(stack.config, plan)]
    findings += [
        Finding("owner", Status.FAIL, p) for p in changeable_by_containers(stack.config, plan)
    ]
    findings += [Finding("exposure", Status.WARN, w) for w in exposure.warnings(stack.config)]
    for verdict in plan.verdicts:
        path = verdict.file.path
        if verdict.action is Action.CREATE:
            findings.append(
                Finding("files", Status.FAIL, f"{path} is missing: run `stackgen render`")
            )
        elif verdict.action is Action.UPDATE:
            findings.append(
                Finding("files", Status.WARN, f"{path} is out of date: run `stackgen render`")
            )
        elif verdict.action is Action.CONFLICT:
            findings.append(
                Finding("files", Status.WARN, f"{path} was edited by hand; stackgen keeps it")
            )
    if not findings:
        findings.append(
            Finding("files", Status.PASS, "every generated file is present and current")
        )
    return findings


def _well_formed(stack: Stack) -> list[Finding]:
    stack_dir = stack.folder
    findings = []
    for path in sorted(stack_dir.rglob("*")):
        if not path.is_file() or ".stackgen" in path.parts:
            continue
        relative = path.relative_to(stack_dir)
        try:
            if path.suffix == ".toml":
                with inputs.bounded_nesting(relative, "TOML"):
                    tomllib.loads(inputs.read_text(path))
            elif path.suffix == ".xml" and "config" in relative.parts[:-1]:
                ET.parse(path)  # noqa: S314 - our own file, in the user's own folder
            else:
                continue
        except (
            tomllib.TOMLDecodeError,
            ET.ParseError,
            UnicodeDecodeError,
            InvalidInputError,
        ) as error:
            findings.append(Finding("syntax", Status.FAIL, f"{relative}: {error}"))
    return findings or [Finding("syntax", Status.PASS, "TOML and XML files are well-formed")]


def _own_certificate(stack: Stack) -> list[Finding]:
    """The CA bundles hold certificates; with tls.mode `files`, the key loads and is the
    certificate's, both are regular files and no link leads the proxy's mount elsewhere (a
    link planted in place of the copy)."""
    tls = stack.config.tls
    try:
        check_bundles(stack.config, stack.folder)
    except InvalidInputError as error:
        return [Finding("tls", Status.FAIL, str(error))]
    if tls.mode is not TlsMode.FILES or tls.cert_file is None or tls.key_file is None:
        return []
    cert, key = stack_path(stack.folder, tls.cert_file), stack_path(stack.folder, tls.key_file)
    folder = stack.folder.resolve()
    for path in (cert, key):
        # The stack's own copy is a file: a link there would send the mount elsewhere. A
        # pair outside the folder (a certbot lineage, written by an older stackgen) is
        # links by nature, and gets the warning below.
        if path.is_symlink() and folder in path.absolute().parents:
            return [Finding("tls", Status.FAIL, f"{path} is a symbolic link: copy the file")]
    try:
        inputs.read_tls_pair(cert, key)
    except InvalidInputError as error:
        return [Finding("tls", Status.FAIL, str(error))]
    findings = [Finding("tls", Status.PASS, f"{key.name} is the key of {cert.name}")]
    outside = [p for p in (cert, key) if folder not in p.resolve().parents]
    if outside:
        findings.append(
            Finding(
                "tls",
                Status.WARN,
                f"{outside[0]} is mounted from outside the stack folder: copy the pair into "
                f"{OWN_CERT} and {OWN_KEY} (0600) and point tls.cert_file/key_file there",
            )
        )
    return findings


def _network_xml(stack: Stack) -> list[Finding]:
    config, path = stack.config, stack.network_xml
    try:
        root = ET.parse(path).getroot()  # noqa: S314
    except (OSError, ET.ParseError) as error:
        return [Finding("network.xml", Status.FAIL, f"cannot read {path}: {error}")]
    proxies = [e.text or "" for e in root.findall("./KnownProxies/string")]
    base_url = (root.findtext("BaseUrl") or "").rstrip("/")
    findings = []
    if not proxies:
        findings.append(
            Finding(
                "network.xml",
                Status.FAIL,
                "KnownProxies is empty: Jellyfin 10.11 ignores "
                "X-Forwarded-* and every client looks like the proxy",
            )
        )
    elif not set(config.known_proxies) <= set(proxies):
        findings.append(
            Finding(
                "network.xml",
                Status.FAIL,
                f"KnownProxies {proxies} does not name the proxy address {config.known_proxies}",
            )
        )
    ipv6_entries = [p for p in proxies if ":" in p]
    if ipv6_entries and (root.findtext("EnableIPv6") or "").strip().lower() != "true":
        findings.append(
            Finding(
                "network.xml",
                Status.FAIL,
                f"KnownProxies has IPv6 entries {ipv6_entries} but EnableIPv6 is not true: "
                "Jellyfin drops them and ignores X-Forwarded-* arriving over IPv6",
            )
        )
    if base_url != config.subpath:
        findings.append(
            Finding(
                "network.xml",
                Status.FAIL,
                f"BaseUrl {base_url!r} differs from subpath "
                f"{config.subpath!r}: expect redirect loops",
            )
        )
    return findings or [
        Finding("network.xml", Status.PASS, f"KnownProxies {proxies}, BaseUrl {base_url!r}")
    ]


def _modes(stack: Stack) -> list[Finding]:
    """Secrets must not be readable by others; acme.json looser than 0600 breaks Traefik."""
    findings = []
    for verdict in plan_render(stack, force=False).verdicts:
        planned = verdict.file.mode
        if planned not in (0o600, 0o640):  # a secret: 0600, or 0640 for a key the proxy reads
            continue
        path = stack.folder / verdict.file.path
        if not path.exists():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & ~planned & 0o077:
            level = Status.FAIL if path.name == "acme.json" else Status.WARN
            findings.append(
                Finding(
                    "modes",
                    level,
                    f"{verdict.file.path} is {oct(mode)}; run "
                    f"`chmod {planned:o} {verdict.file.path}`",
                )
            )
    return findings or [Finding("modes", Status.PASS, "secrets and acme.json are 0600")]


def _dns_secrets(stack: Stack) -> list[Finding]:
    """Every credential the DNS provider's plugin reads is given: found here, not after the
    ACME client has failed in a container (`up` runs this before starting anything)."""
    config = stack.config
    names = config.dns_secret_names
    if not names:
        return []
    if config.dns_credential_files:
        values, where, findings = _credential_files(stack)
        given = f"{CREDENTIALS_DIR}/ gives"
        if (stack.folder / ENV_FILE).exists():
            # Left by an older stackgen, which gave it to the swarm as an env_file.
            findings.append(
                Finding(
                    "dns",
                    Status.WARN,
                    f"{stack.folder / ENV_FILE} is not read on this target: move each "
                    f"credential to {stack.folder / CREDENTIALS_DIR}/NAME, run `stackgen "
                    "render`, and delete it",
                )
            )
    else:
        read = _env_values(stack)
        if isinstance(read, Finding):
            return [read]
        values, findings = read
        where = dict.fromkeys(names, stack.folder / ENV_FILE)
        given = f"{ENV_FILE} gives"
    provider = config.tls.dns_provider
    findings += [
        Finding(
            "dns", Status.FAIL, f"{name} is empty: fill it in {where[name]} ({provider} reads it)"
        )
        for name in names
        if name in values and not values[name]
    ]
    secret = values.get(TSIG_SECRET)
    if config.dns_provider is RFC2136 and secret:
        try:
            validate_tsig_secret(secret)
        except ValueError as error:
            findings.append(
                Finding("dns", Status.FAIL, f"{TSIG_SECRET} in {where[TSIG_SECRET]}: {error}")
            )
    return findings or [Finding("dns", Status.PASS, f"{given} {', '.join(names)} ({provider})")]


def _env_values(stack: Stack) -> tuple[dict[str, str], list[Finding]] | Finding:
    """The credentials in `.env`, read as Compose reads it, and what Compose would change."""
    names = stack.config.dns_secret_names
    path = stack.folder / ENV_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Finding(
            "dns",
            Status.FAIL,
            f"{ENV_FILE} is missing: run `stackgen render`, then fill {names[0]} in {path}",
        )
    except (OSError, UnicodeDecodeError) as error:
        return Finding("dns", Status.FAIL, f"cannot read {path}: {error}")
    parsed = parse_env(text)
    findings = []
    for name in names:
        entry = parsed.get(name)
        if entry is not None and entry.expands:
            findings.append(
                Finding(
                    "dns",
                    Status.FAIL,
                    f"{name} in {path}: Compose replaces {', '.join(entry.expands)} in it; "
                    f"write the value in single quotes ({name}='...')",
                )
            )
        if entry is not None and entry.cut:
            findings.append(
                Finding(
                    "dns",
                    Status.FAIL,
                    f"{name} in {path}: Compose cuts it at ' #' (a comment); write the value "
                    f"in single quotes ({name}='...')",
                )
            )
    values = {name: parsed[name].value if name in parsed else "" for name in names}
    return values, findings


def _credential_files(stack: Stack) -> tuple[dict[str, str], dict[str, Path], list[Finding]]:
    """The credentials in their own files (a target that hands them over as secrets): the
    client reads each whole, less one final line break (lego; certbot's `$(cat)` takes
    them all)."""
    values: dict[str, str] = {}
    where: dict[str, Path] = {}
    findings = []
    for name, relative in stack.config.dns_credential_files.items():
        path = where[name] = stack.folder / relative
        if not path.exists():
            findings.append(
                Finding(
                    "dns",
                    Status.FAIL,
                    f"{path} is missing: run `stackgen render`, then fill {name} in it",
                )
            )
            continue
        try:
            raw = inputs.read_bytes(path).decode("utf-8")
        except (InvalidInputError, FilesystemError, UnicodeDecodeError) as error:
            findings.append(Finding("dns", Status.FAIL, f"cannot read {path}: {error}"))
            continue
        value = raw.removesuffix("\n")
        if "\n" in value or "\r" in value:
            findings.append(Finding("dns", Status.FAIL, f"{name} in {path}: more than one line"))
        values[name] = value
    return values, where, findings


def credential_values(stack: Stack) -> list[str]:
    """The DNS-01 credentials' non-empty values, wherever the stack keeps them (never
    printed: for finding them where they must not be)."""
    config = stack.config
    if not config.dns_secret_names:
        return []
    if config.dns_credential_files:
        values = _credential_files(stack)[0]
    else:
        read = _env_values(stack)
        values = {} if isinstance(read, Finding) else read[0]
    return [value for value in values.values() if value]


def _credentials_in_spec(stack: Stack) -> list[Finding]:
    """On a target that hands credentials over as secrets, the stack file itself must carry
    none: whatever a service's definition holds (an `env_file`, resolved by the CLI, an
    environment, a label, a command) is stored in the service spec, which anyone with API
    access to a manager reads with `docker service inspect`."""
    config = stack.config
    if not config.deploy.credentials_as_secrets:
        return []
    path = stack.folder / COMPOSE_FILE
    try:
        document = inputs.yaml_tree(inputs.read_text(path))[1]
    except (InvalidInputError, FilesystemError):
        return []  # missing or unreadable: the files check says so
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict):
        return []
    names = set(config.dns_secret_names)
    values = credential_values(stack)
    inspect = (
        "stored in the service spec: `docker service inspect` shows it to anyone with API access"
    )
    findings = []
    for service, definition in services.items():
        if not isinstance(definition, dict):
            continue
        if "env_file" in definition:
            findings.append(
                Finding(
                    "secrets",
                    Status.FAIL,
                    f"{COMPOSE_FILE}: service {service} has an env_file: a swarm resolves it "
                    f"into the service, each credential in clear, {inspect}; run `stackgen "
                    "render` (credentials are secrets read from files)",
                )
            )
        environment = definition.get("environment")
        if isinstance(environment, list):
            environment = dict(str(item).partition("=")[::2] for item in environment)
        for name in sorted(names & set(environment or {})):
            findings.append(
                Finding(
                    "secrets",
                    Status.FAIL,
                    f"{COMPOSE_FILE}: service {service} sets the credential {name} in its "
                    f"environment, {inspect}; leave it to {name}_FILE and its secret",
                )
            )
        for key, text in _scalars(definition):
            if any(_holds(text, value) for value in values):
                findings.append(
                    Finding(
                        "secrets",
                        Status.FAIL,
                        f"{COMPOSE_FILE}: service {service} carries a DNS credential's value "
                        f"in clear at {key}, {inspect}; remove it (the secret file holds it)",
                    )
                )
    return findings or [
        Finding("secrets", Status.PASS, f"{COMPOSE_FILE} carries no credential in clear")
    ]


# Below this a value is a setting (lego's `RFC2136_POLLING_INTERVAL=1`), not a secret, and
# it is in any stack file by chance (`replicas: 1`): looked for by its variable's name only.
_SHORTEST_SECRET: Final = 8


def _holds(text: str, value: str) -> bool:
    return len(value) >= _SHORTEST_SECRET and value in text


def _scalars(node: object, where: str = "") -> list[tuple[str, str]]:
    """Every key and scalar of a YAML node with its dotted place (keys count: an
    environment's `NAME=value` list item, or a value pasted as a key)."""
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            place = f"{where}.{key}" if where else str(key)
            found.append((place, str(key)))
            found += _scalars(value, place)
        return found
    if isinstance(node, list):
        return [pair for i, item in enumerate(node) for pair in _scalars(item, f"{where}[{i}]")]
    return [(where, str(node))]


def _proxy_rules(stack: Stack) -> list[Finding]:
    proxy, folder = stack.proxy, stack.folder
    files = {
        t.target: (folder / t.target).read_bytes()
        for t in proxy.templates(stack.config)
        if (folder / t.target).is_file()
    }
    problems = proxy.static_problems(stack.config, files)
    if not problems:
        return [Finding("proxy", Status.PASS, f"{proxy.kind} configuration follows its rules")]
    return [Finding("proxy", Status.FAIL, problem) for problem in problems]


def _compose(stack: Stack) -> list[Finding]:
    if shutil.which("docker") is None:
        return [
            Finding("compose", Status.WARN, "docker is not installed: compose file not checked")
        ]
    try:
        problems = compose_config_problems(stack.compose)
    except DockerError as error:
        return [Finding("compose", Status.WARN, f"compose file not checked: {error}")]
    if problems:
        return [Finding("compose", Status.FAIL, problems)]
    return [Finding("compose", Status.PASS, "`docker compose config` accepts the compose file")]


def _proxy_validator(stack: Stack) -> list[Finding]:
    proxy = stack.proxy
    command = proxy.validate_command(stack.config)
    if command is None:
        return []
    try:
        ok, output = run_in_image(proxy.image(stack.config), command, stack.folder)
    except DockerError as error:
        return [Finding("proxy-test", Status.WARN, f"{proxy.kind}'s own test not run: {error}")]
    if ok:
        return [Finding("proxy-test", Status.PASS, f"{proxy.kind}'s own test accepts it")]
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return [Finding("proxy-test", Status.FAIL, " | ".join(lines[-5:]) or "rejected")]


def summarize(findings: list[Finding]) -> tuple[int, int]:
    fails = sum(1 for f in findings if f.status is Status.FAIL)
    warns = sum(1 for f in findings if f.status is Status.WARN)
    return fails, warns


__all__ = ["Finding", "check_stack", "summarize"]
