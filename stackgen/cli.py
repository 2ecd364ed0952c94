"""The command line: a thin layer that builds models and calls the stack operations.

Human progress goes to stderr, machine output (`--json`) to stdout. Every StackgenError
becomes one line on stderr and its documented exit code (README "Exit codes").
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic_core import PydanticUndefined
from typer.exceptions import TyperException

from stackgen import __version__, banlist, exposure, lifecycle, redaction
from stackgen import verify as verifying
from stackgen.config_file import build_config
from stackgen.errors import (
    DegradedError,
    ExitCode,
    FilesystemError,
    InterruptedError_,
    InvalidInputError,
    ProblemsFoundError,
    StackgenError,
    StackInterrupted,
)
from stackgen.lock import stack_lock
from stackgen.models import LETSENCRYPT_STAGING, StackConfig
from stackgen.options import Option, options
from stackgen.output import PrintableStream
from stackgen.probe import Status, run_checks
from stackgen.proxies import available
from stackgen.render import secrets_files
from stackgen.stack import (
    RenderOutcome,
    Stack,
    check_bundles,
    init_stacks,
    own_certificate,
    project_name,
    render_dir,
    split_stacks,
)
from stackgen.stack_checks import check_stack, summarize
from stackgen.targets import registry as targets
from stackgen.writer import Action

app = typer.Typer(
    name="stackgen",
    help="Put Jellyfin on the internet behind a reverse proxy, correctly, every time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DirOption = Annotated[
    Path, typer.Option("--dir", "-C", help="Stack folder.", file_okay=True, resolve_path=True)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
SideOption = Annotated[
    str | None,
    typer.Option(
        "--side",
        help="One side of a stack split between machines (edge-home: `edge` or `home`): "
        "its folder under --dir.",
    ),
]
_SIDE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def on_side(directory: Path, side: str | None) -> Path:
    """The folder of one side of a split stack (`init` writes each side into `--dir/SIDE`)."""
    if side is None:
        return directory
    if not _SIDE.match(side):
        raise InvalidInputError(f"--side {side!r}: a side's name (edge, home)")
    return directory / side


# --- output helpers ---------------------------------------------------------------------


def _color() -> bool:
    return "NO_COLOR" not in os.environ and sys.stderr.isatty()


def say(message: str, *, fg: str | None = None) -> None:
    typer.secho(message, err=True, fg=fg if _color() else None)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


_ACTION_COLOURS = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.FORCE: "red",
    Action.CONFLICT: "red",
}


@contextlib.contextmanager
def changing(directory: Path, command: str, *, writes: bool = True) -> Iterator[None]:
    """Commands that write or change the running stack hold the folder's lock."""
    if not writes or (command not in ("init", "import") and not directory.is_dir()):
        yield  # nothing to change; the command says why (no such stack)
        return
    with stack_lock(directory, command, progress=say):
        yield


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (systemd, `docker stop`, a CI timeout) acts like Ctrl-C: `up` then stops what
    it started and says so, instead of dying with `docker compose up` left running."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_render(outcome: RenderOutcome, *, as_json: bool, verb: str) -> None:
    for warning in outcome.plan.warnings:
        say(f"warning: {warning}", fg="yellow")
    if as_json:
        emit_json(outcome.to_json())
        return
    for verdict in outcome.plan.verdicts:
        label = verdict.action.value
        if verdict.action is Action.IDENTICAL and verdict.mode_drift:
            label = "mode"
        say(f"  {label:<10} {verdict.file.path}", fg=_ACTION_COLOURS.get(verdict.action))
    for verdict in outcome.plan.conflicts:
        say(
            f"kept your edit of {verdict.file.path} (stackgen render --force replaces it)",
            fg="yellow",
        )
    if not outcome.written:
        say("dry run: nothing written")
    else:
        say(f"{verb} {outcome.plan.stack_dir}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stackgen {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Put Jellyfin on the internet behind a reverse proxy, correctly, every time.

    Example: stackgen init traefik --domain jellyfin.example.com --email me@example.com
    """


# --- init --------------------------------------------------------------------------------


def _parse_images(values: list[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    for value in values:
        name, sep, ref = value.partition("=")
        if not sep or not name or not ref:
            raise InvalidInputError(f"--image {value!r}: expected SERVICE=IMAGE")
        images[name] = ref
    return images


def _whole_number(option: str, value: str) -> int:
    # Click would read "80.0" as 80: a port is digits, nothing else.
    if not re.fullmatch(r"[0-9]{1,6}", value):
        raise InvalidInputError(f"{option} {value!r} is not a port number (digits only)")
    return int(value)


_MODES = {"ro": True, "rw": False}


def _parse_media(values: list[str]) -> list[dict[str, Any]]:
    """SOURCE[:TARGET][:ro|rw], split from the right so that a source may contain ':'."""
    media: list[dict[str, Any]] = []
    for value in values:
        parts = value.split(":")
        read_only = True
        if len(parts) > 1 and parts[-1] in _MODES:
            read_only = _MODES[parts.pop()]
            if len(parts) > 1 and parts[-1] in _MODES:
                raise InvalidInputError(f"--media {value!r}: more than one mode (ro or rw)")
        target = parts.pop() if len(parts) > 1 and parts[-1].startswith("/") else ""
        source = ":".join(parts)
        if not source:
            raise InvalidInputError(f"--media {value!r}: no source folder")
        entry: dict[str, Any] = {"source": source, "read_only": read_only}
        if target:
            entry["target"] = target
        media.append(entry)
    return media


def _parse_credentials(values: list[str]) -> dict[str, str]:
    credentials: dict[str, str] = {}
    for value in values:
        name, sep, secret = value.partition("=")
        if not sep or not name:
            raise InvalidInputError(f"--dns-credential {name or value!r}: expected NAME=VALUE")
        credentials[name] = secret
    return credentials


def _choice(value: str, choices: list[str]) -> str:
    """A value of a list known only at run time (a registry's): a usage error otherwise."""
    if value not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        raise typer.BadParameter(f"{value!r} is not one of {listed}")
    return value


def _init_parameter(option: Option) -> inspect.Parameter:
    """An option of `init` from a setting's declaration (options.py)."""
    setting = option.setting
    help_text = setting.help[0].upper() + setting.help[1:] + "."
    if setting.argument:
        if option.key == "proxy":
            help_text = f"One of: {', '.join(available())}."
        kind: Any = Annotated[str, typer.Argument(help=help_text)]
        return inspect.Parameter(option.param, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
    flag = f"--{option.flag}"
    default: Any = None if option.default is PydanticUndefined else option.default
    if option.key == "deploy.target":
        # The targets registered now (a plugin's too): a usage error for any other.
        kind = Annotated[
            str,
            typer.Option(
                flag,
                callback=lambda value: _choice(value, targets.available()),
                help="Where the stack runs: "
                + "; ".join(f"{s.name}: {s.summary}" for s in targets.specs())
                + ".",
            ),
        ]
        default = targets.default()
    elif option.is_bool:
        # Off by default: a flag that turns it on; otherwise --x/--no-x.
        names = (flag,) if default is False else ()
        kind = Annotated[
            bool | None if default is None else bool, typer.Option(*names, help=help_text)
        ]
    elif option.is_list:
        # A list of choices too (access.lan_only): the model refuses an unknown one.
        kind = Annotated[list[str] | None, typer.Option(flag, help=help_text)]
        default = None
    elif option.choices is not None:
        choices = option.choices
        kind = Annotated[
            choices if default is not None else choices | None, typer.Option(flag, help=help_text)
        ]
    elif setting.port:
        kind = Annotated[str, typer.Option(flag, help=help_text)]
        default = str(default)
    else:
        # Left out unless given: the model's default applies (shown, when it has one).
        shown: bool | str = False if default in (None, "") else str(default)
        if setting.init_default is not None:
            shown = setting.default or True
        text = int | None if option.is_int else str | None
        kind = Annotated[text, typer.Option(flag, help=help_text, show_default=shown)]
        default = None
    if option.required and default is None:
        return inspect.Parameter(option.param, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
    return inspect.Parameter(
        option.param, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default
    )


def _init_value(option: Option, value: Any) -> Any:
    """A value given to init as the model reads it (None: leave the setting out)."""
    if value is None or (option.is_list and not value):
        return None
    if option.setting.port:
        return _whole_number(f"--{option.flag}", value)
    if option.key == "jellyfin.media":
        return _parse_media(value)
    if option.is_list:
        return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _target_defaults(data: dict[str, Any]) -> list[str]:
    """The target's own defaults for settings the command line left out (`init_defaults`),
    put into `data`; the lines `init` says about them."""
    name = data.get("deploy", {}).get("target", targets.default())
    if name not in targets.available():
        return []  # the configuration's validation names it
    said = []
    for key, (value, line) in targets.load(name, "config").init_defaults.items():
        path = tuple(key.split("."))
        held: Any = data
        for part in path:
            held = held.get(part) if isinstance(held, dict) else None
        if held is None:
            _put(data, path, value)
            said.append(line)
    return said


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


# The settings `init` offers: every one with a flag (the rest are edited in stackgen.toml).
INIT_OPTIONS = [o for o in options(StackConfig) if o.flag]
_OWN = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
    for name, kind, default in (
        ("staging", Annotated[bool, typer.Option(help="Use Let's Encrypt's staging CA.")], False),
        (
            "dns_credential",
            Annotated[
                list[str] | None,
                typer.Option(
                    help="NAME=VALUE written to .env (0600), never stackgen.toml; repeatable."
                ),
            ],
            None,
        ),
        (
            "image",
            Annotated[
                list[str] | None,
                typer.Option(
                    help="Override an image, SERVICE=IMAGE (jellyfin, traefik, ...); repeatable."
                ),
            ],
            None,
        ),
        ("directory", DirOption, Path()),
        ("force", Annotated[bool, typer.Option(help="Replace an existing stack's files.")], False),
        ("dry_run", Annotated[bool, typer.Option(help="Show what would be written.")], False),
        ("as_json", JsonOption, False),
    )
]


def init(**given: Any) -> None:
    """Create stackgen.toml and render a complete stack in a folder.

    Example: stackgen init traefik --domain jellyfin.example.com --email me@example.com
    """
    proxy = given["proxy"]
    if proxy not in available():
        raise InvalidInputError(f"unknown proxy {proxy!r} (available: {', '.join(available())})")
    data: dict[str, Any] = {}
    for option in INIT_OPTIONS:
        value = _init_value(option, given[option.param])
        if value is None and option.setting.init_default is not None:
            value = option.setting.init_default()
        if value is not None:
            _put(data, option.path, value)
    said = _target_defaults(data)
    images = _parse_images(given["image"] or [])
    if "jellyfin" in images:
        data.setdefault("jellyfin", {})["image"] = images.pop("jellyfin")
    data["images"] = images
    if given["staging"] and given["ca_url"]:
        raise InvalidInputError("--staging and --ca-url exclude each other")
    if given["staging"]:
        data.setdefault("tls", {})["ca_url"] = LETSENCRYPT_STAGING
    directory: Path = given["directory"]
    config = build_config(data, directory)
    # Checked, like the configuration, before anything is written.
    check_bundles(config, directory)
    config, state = own_certificate(config, directory)
    if given["dns_credential"]:
        state += secrets_files(config, _parse_credentials(given["dns_credential"]))
    dry_run, as_json = given["dry_run"], given["as_json"]
    stacks = split_stacks(config, directory, state)
    with contextlib.ExitStack() as held:
        for stack, _ in stacks:
            held.enter_context(changing(stack.folder, "init", writes=not dry_run))
        outcomes = init_stacks(stacks, force=given["force"], dry_run=dry_run)
    if as_json and len(outcomes) > 1:
        emit_json({"stacks": [outcome.to_json() for outcome in outcomes]})
    else:
        for outcome in outcomes:
            report_render(outcome, as_json=as_json, verb="stack written to")
    outcome = outcomes[0]
    if not as_json and outcome.written:
        for line in said:
            say(line)
    warnings = [w for stack, _ in stacks for w in exposure.warnings(stack.config)]
    for warning in dict.fromkeys(warnings):
        say(f"warning: {warning}", fg="yellow")
    if not as_json and outcome.written:
        up_where = targets.spec(config.deploy.target).up_where
        where = f" {up_where}" if up_where else ""
        say(f"next: stackgen up --dir {directory}{where}  (then open {config.public_url})")


init.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [_init_parameter(option) for option in INIT_OPTIONS if option.setting.argument]
    + [_init_parameter(option) for option in INIT_OPTIONS if not option.setting.argument]
    + _OWN
)
app.command()(init)


# --- render ------------------------------------------------------------------------------


@app.command()
def render(
    directory: DirOption = Path(),
    side: SideOption = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would change; write nothing.")] = False,
    diff: Annotated[
        bool, typer.Option(help="Print unified diffs; exit 1 when anything would change.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Replace files edited by hand.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-render the stack from stackgen.toml; hand-edited files are kept unless --force.

    Example: stackgen render --dir ./jellyfin-stack --diff
    """
    directory = on_side(directory, side)
    with changing(directory, "render", writes=not (dry_run or diff)):
        outcome = render_dir(Stack.load(directory), force=force, dry_run=dry_run or diff)
    if diff:
        for verdict in outcome.plan.verdicts:
            sys.stdout.write(verdict.diff())
        if as_json:
            emit_json(outcome.to_json())
        if outcome.plan.changes or outcome.plan.conflicts:
            raise ProblemsFoundError("the rendered stack differs from the files on disk")
        return
    report_render(outcome, as_json=as_json, verb="rendered")


# --- check -------------------------------------------------------------------------------


@app.command()
def check(
    directory: DirOption = Path(),
    side: SideOption = None,
    no_docker: Annotated[
        bool, typer.Option("--no-docker", help="Skip the checks that need Docker.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Validate a rendered stack without starting anything (exit 1 on any failure).

    Example: stackgen check --dir ./jellyfin-stack
    """
    directory = on_side(directory, side)
    findings = check_stack(Stack.load(directory), use_docker=not no_docker)
    fails, warns = summarize(findings)
    if as_json:
        emit_json(
            {
                "ok": fails == 0,
                "failures": fails,
                "warnings": warns,
                "findings": [f.to_json() for f in findings],
            }
        )
    else:
        colours = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "red"}
        for finding in findings:
            say(
                f"  {finding.status.value:<5} {finding.check:<12} {finding.message}",
                fg=colours[finding.status],
            )
        say(f"{fails} failure(s), {warns} warning(s)")
    if fails:
        raise ProblemsFoundError(f"check found {fails} failure(s)")


# --- up / down / status / logs ----------------------------------------------------------


@app.command()
def up(
    directory: DirOption = Path(),
    side: SideOption = None,
    timeout: Annotated[int, typer.Option(help="Seconds to wait for a healthy stack.")] = 300,
    as_json: JsonOption = False,
) -> None:
    """Start the stack and wait until Jellyfin answers through the proxy over HTTPS.

    Example: stackgen up --dir ./jellyfin-stack
    """
    directory = on_side(directory, side)
    with changing(directory, "up"), sigterm_interrupts():
        stack = Stack.load(directory)
        try:
            url = lifecycle.up(stack, timeout=timeout, progress=say)
        except StackInterrupted as interrupted:
            raise InterruptedError_(str(interrupted)) from None
        if as_json:
            emit_json(lifecycle.status(stack))
    say(f"up: {url}", fg="green")
    trust = stack.config.client_trust_file
    if trust and stack.config.deploy.runs_proxy:
        say(f"clients must trust {(directory / trust).resolve()}")


@app.command()
def reload(
    directory: DirOption = Path(),
    side: SideOption = None,
    force: Annotated[bool, typer.Option(help="Replace files edited by hand.")] = False,
) -> None:
    """Re-render and make the running stack pick the change up, without dropping requests.

    Example: stackgen reload --dir ./jellyfin-stack
    """
    directory = on_side(directory, side)
    with changing(directory, "reload"):
        stack = Stack.load(directory)
        lifecycle.reload(stack, force=force, progress=say)
    say(f"reloaded: {stack.config.public_url}", fg="green")


ban_app = typer.Typer(
    help="The ban list (access.ban): client addresses the proxy refuses with 403.",
    no_args_is_help=True,
)
app.add_typer(ban_app, name="ban")
AddressArgument = Annotated[str, typer.Argument(help="A client's IP address.")]


@ban_app.command("list")
def ban_list(
    directory: DirOption = Path(), side: SideOption = None, as_json: JsonOption = False
) -> None:
    """The addresses the proxy refuses now, one a line: yours (`stackgen ban add`), then
    those the feeder (fail2ban) bans for a while, each followed by "fail2ban". With --json:
    {"user": [...], "feeder": [...]}.

    Example: stackgen ban list --dir ./jellyfin-stack
    """
    stack = Stack.load(on_side(directory, side))
    yours = [str(a) for a in banlist.banned(stack)]
    fed = [str(a) for a in banlist.fed(stack)]
    if as_json:
        emit_json({"user": yours, "feeder": fed})
    else:
        for address in yours:
            typer.echo(address)
        for address in fed:
            typer.echo(f"{address}\tfail2ban")


@ban_app.command("add")
def ban_add(
    address: AddressArgument, directory: DirOption = Path(), side: SideOption = None
) -> None:
    """Refuse a client address (403 on every route), applied by a graceful reload.

    Example: stackgen ban add 203.0.113.7 --dir ./jellyfin-stack
    """
    directory = on_side(directory, side)
    with changing(directory, "ban"):
        changed = banlist.change(Stack.load(directory), address, ban=True, progress=say)
    say(f"banned: {address}" if changed else f"already banned: {address}")


@ban_app.command("remove")
def ban_remove(
    address: AddressArgument, directory: DirOption = Path(), side: SideOption = None
) -> None:
    """Let a banned client address back in, applied by a graceful reload: from your list,
    and, when the feeder (fail2ban) banned it, through fail2ban's own unban.

    Example: stackgen ban remove 203.0.113.7 --dir ./jellyfin-stack
    """
    directory = on_side(directory, side)
    with changing(directory, "ban"):
        changed = banlist.change(Stack.load(directory), address, ban=False, progress=say)
    say(f"no longer banned: {address}" if changed else f"not banned: {address}")


ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project",
        help="Compose project to act on when neither stackgen.toml nor .stackgen/manifest.json "
        "can be read.",
    ),
]


@app.command()
def down(
    directory: DirOption = Path(),
    side: SideOption = None,
    volumes: Annotated[bool, typer.Option(help="Also remove named volumes.")] = False,
    project: ProjectOption = None,
) -> None:
    """Stop and remove the stack's containers and network (files stay).

    Works from the project name even when stackgen.toml or docker-compose.yml is missing or
    broken. Example: stackgen down --dir ./jellyfin-stack
    """
    directory = on_side(directory, side)
    with changing(directory, "down"):
        name = project_name(directory, project)
        lifecycle.down_project(name, directory, volumes=volumes)
    say(f"down: {name}")


@app.command()
def status(
    directory: DirOption = Path(),
    side: SideOption = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
) -> None:
    """Services, health, ports, URL and the served certificate (issuer, expiry).

    Exit 9 when a service is missing, not running or not healthy. Example:
    stackgen status --dir ./jellyfin-stack --json
    """
    directory = on_side(directory, side)
    try:
        stack: Stack | None = Stack.load(directory)
    except StackgenError as error:
        # A broken or missing stackgen.toml must not hide the containers that run.
        stack, why = None, str(error)
    if stack is not None:
        report = lifecycle.status(stack)
    else:
        report = lifecycle.status_project(project_name(directory, project), directory, why)
        say(f"warning: {why}; showing the containers of project {report['project']}", fg="yellow")
    if as_json:
        emit_json(report)
    else:
        _print_status(report)
    problems = report["problems"]
    if isinstance(problems, list) and problems:
        raise DegradedError(f"{report['project']} is not healthy: {', '.join(problems)}")


def _print_status(report: dict[str, object]) -> None:
    url = report["url"] or "(URL unknown: stackgen.toml unreadable)"
    say(f"{report['project']}  {url}  running={report['running']}")
    for service in report["services"]:  # type: ignore[attr-defined]
        node = f"  on {service['node']}" if service.get("node") else ""
        say(
            f"  {service['service']:<10} {service['state']:<10} {service['health']:<10} "
            f"{' '.join(service['ports'])}{node}"
        )
    certificate = report["certificate"]
    if isinstance(certificate, dict):
        say(
            f"  certificate: {certificate['subject']} by {certificate['issuer']}, "
            f"expires {certificate['not_after']} ({certificate['days_left']} days), "
            f"verified={certificate['verified']}"
        )
    if report["trust_file"]:
        say(f"  trust: {report['trust_file']}")
    extra = report.get("target_state") or {}
    for name, value in extra.items():  # type: ignore[attr-defined]
        shown = value.get("summary", value) if isinstance(value, dict) else value
        say(f"  {name}: {shown}")


@app.command()
def logs(
    service: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
    directory: DirOption = Path(),
    side: SideOption = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following.")] = False,
) -> None:
    """Show the stack's logs.

    Example: stackgen logs traefik --follow --dir ./jellyfin-stack
    """
    directory = on_side(directory, side)
    for line in lifecycle.logs(Stack.load(directory), service, follow):
        sys.stdout.write(line)
        sys.stdout.flush()


# --- verify ------------------------------------------------------------------------------


@app.command()
def verify(
    directory: DirOption = Path(),
    side: SideOption = None,
    url: Annotated[
        str | None, typer.Option(help="Verify any stack by its public URL instead of --dir.")
    ] = None,
    resolve: Annotated[
        list[str] | None, typer.Option(help="HOST:IP to connect to instead of DNS; repeatable.")
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="Extra trust anchors (PEM) for the served chain.")
    ] = None,
    http_port: Annotated[int, typer.Option(help="Plain-HTTP port (with --url).")] = 80,
    media_path: Annotated[
        str | None,
        typer.Option(help="Path under the base for Range/TTFB checks (default /web/index.html)."),
    ] = None,
    known_proxy: Annotated[
        list[str] | None, typer.Option(help="Jellyfin's KnownProxies entry (with --url).")
    ] = None,
    proxy_address: Annotated[
        list[str] | None,
        typer.Option(help="Address the proxy connects to Jellyfin from (with --url)."),
    ] = None,
    frames_allowed: Annotated[
        bool, typer.Option(help="You opted in to X-Frame-Options (with --url).")
    ] = False,
    lan_url: Annotated[
        str | None, typer.Option(help="URL Jellyfin gives LAN clients (with --url).")
    ] = None,
    from_lan: Annotated[
        bool,
        typer.Option(help="Run as a LAN client: expect the LAN URL (run it on the LAN)."),
    ] = False,
    no_acme: Annotated[
        bool,
        typer.Option(
            "--no-acme",
            help="The stack gets no certificates over ACME HTTP-01 (with --url): "
            "redirect.acme-path does not apply.",
        ),
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option(help="Run only these check ids or groups; repeatable.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per connection step.")] = 10.0,
    junit: Annotated[Path | None, typer.Option(help="Also write JUnit XML here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Prove a live stack is right: redirects, TLS, headers, Jellyfin, WebSocket, streaming.

    Exit 1 when any check fails. Example: stackgen verify --dir ./jellyfin-stack
    Any stack: stackgen verify --url https://jf.example.com --resolve jf.example.com:192.0.2.7
    """
    directory = on_side(directory, side)
    if url:
        target = verifying.target_for_url(
            url,
            resolve=resolve or [],
            ca_file=ca_file,
            http_port=http_port,
            media_path=media_path,
            known_proxies=known_proxy or [],
            proxy_address=proxy_address or [],
            frames_allowed=frames_allowed,
            timeout=timeout,
            # Unknown from outside unless declared: the check then judges the path.
            acme_http01=False if no_acme else None,
            lan_url=lan_url,
            from_lan=from_lan,
        )
    else:
        target = verifying.stack_target(
            Stack.load(directory),
            timeout=timeout,
            observed=True,
            media_path=media_path,
            ca_file=ca_file,
            from_lan=from_lan,
        )
    if junit is not None:
        _ensure_writable_file(junit, "--junit")  # before minutes of probing, not after
    try:
        report = run_checks(target, only=only or None)
    except ValueError as error:  # an unknown --only id
        raise InvalidInputError(str(error)) from None
    if as_json:
        emit_json(report.to_json())
    else:
        sys.stderr.write(report.render_table(color=_color()) + "\n")
    if junit is not None:
        try:
            junit.write_text(report.to_junit_xml(), encoding="utf-8")
        except OSError as error:
            raise FilesystemError(f"--junit {junit}: {error.strerror or error}") from None
    if not report.ok:
        raise ProblemsFoundError(f"verify: {report.failed} check(s) failed")


def _ensure_writable_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise FilesystemError(f"{option} {path}: is a folder")
    folder = path.parent
    if not folder.is_dir():
        raise FilesystemError(f"{option} {path}: no folder {folder}")
    target = path if path.exists() else folder
    if not os.access(target, os.W_OK):
        raise FilesystemError(f"{option} {path}: not writable")


# --- import ------------------------------------------------------------------------------


@app.command("import")
def import_(
    paths: Annotated[
        list[Path], typer.Argument(help="Old config files or a folder holding them (read only).")
    ],
    to: Annotated[
        str | None, typer.Option(help="Render for another proxy than the imported one.")
    ] = None,
    directory: DirOption = Path(),
    dry_run: Annotated[bool, typer.Option(help="Report and plan; write nothing.")] = False,
    jellyfin_url: Annotated[
        str | None, typer.Option(help="Jellyfin's address in the old config, http://HOST:PORT.")
    ] = None,
    email: Annotated[
        str | None, typer.Option(help="ACME account email, when the old config names none.")
    ] = None,
    root: Annotated[
        Path, typer.Option(help="Where the old server's absolute paths are (a copy of its /).")
    ] = Path("/"),
    verify_old: Annotated[
        str | None, typer.Option(help="Run verify's checks on the old, live stack first.")
    ] = None,
    resolve: Annotated[
        list[str] | None, typer.Option(help="HOST:IP for --verify-old; repeatable.")
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="Extra trust anchors (PEM) for --verify-old.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Adopt a running proxy's config (Traefik v1.7, nginx, Caddy v1, HAProxy, Apache).

    Reports each directive (translated, replaced, dropped, skipped), keeps the certificates,
    writes stackgen.toml and renders the stack. Example:
    stackgen import /etc/nginx/conf.d/jellyfin.conf --dir ./jellyfin-stack
    """
    from stackgen import importers

    if to is not None and to not in available():
        raise InvalidInputError(f"unknown proxy {to!r} (available: {', '.join(available())})")
    with changing(directory, "import", writes=not dry_run):
        outcome = importers.run_import(
            paths,
            directory,
            to=to,
            email=email,
            jellyfin_url=jellyfin_url,
            root=root,
            dry_run=dry_run,
            old_url=verify_old,
            old_resolve=resolve or [],
            old_ca_file=ca_file,
        )
    if outcome.old_report is not None:
        sys.stderr.write("the old stack, before the move:\n")
        sys.stderr.write(outcome.old_report.render_table(color=_color()))
    sys.stderr.write(importers.render_table(outcome.report) + "\n")
    if as_json:
        emit_json(outcome.to_json())
    else:
        report_render(outcome.render, as_json=False, verb="stack written to")
        if outcome.render.written:
            say(f"next: stackgen check --dir {directory}, then stackgen up --dir {directory}")


# --- bench -------------------------------------------------------------------------------


@app.command()
def bench(
    directory: DirOption = Path(),
    url: Annotated[str | None, typer.Option(help="Bench any stack by its public URL.")] = None,
    resolve: Annotated[
        list[str] | None, typer.Option(help="HOST:IP to connect to instead of DNS; repeatable.")
    ] = None,
    ca_file: Annotated[Path | None, typer.Option(help="Extra trust anchors (PEM).")] = None,
    direct: Annotated[
        str | None, typer.Option(help="Jellyfin's own URL (http://HOST:8096) to compare with.")
    ] = None,
    http2: Annotated[bool, typer.Option("--http2", help="Stream and seek over h2.")] = False,
    direct_http2: Annotated[
        bool, typer.Option("--direct-http2", help="h2 to an https --direct too.")
    ] = False,
    duration: Annotated[float, typer.Option(help="Seconds per API run and paced streams.")] = 5.0,
    pairs: Annotated[
        int, typer.Option(help="Interleaved proxied/direct pairs (A-B-B-A); 8+ for a verdict.")
    ] = 3,
    rate: Annotated[float, typer.Option(help="API requests per second (open loop).")] = 200.0,
    streams: Annotated[int, typer.Option(help="Concurrent paced streams (0: none).")] = 4,
    bitrate: Annotated[float, typer.Option(help="Mbit/s of each paced stream.")] = 20.0,
    media_path: Annotated[
        str, typer.Option(help="Direct-play stream path under the base URL.")
    ] = "/Videos/stackgen-bench/stream?static=true",
    token: Annotated[
        str,
        typer.Option(help="A Jellyfin API key for the WebSocket (Jellyfin refuses others, 403)."),
    ] = "stackgen-bench",  # noqa: S107
    only: Annotated[
        list[str] | None, typer.Option(help="Phases: stream seek api ws streams; repeatable.")
    ] = None,
    check_bytes: Annotated[
        bool, typer.Option(help="Check paced streams against the stand-in's byte pattern.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per connection step.")] = 10.0,
    ramp: Annotated[
        list[float] | None,
        typer.Option(
            help="Ramp buffered players at this Mbit/s until one stalls (e.g. 8 20 40 100); "
            "repeatable."
        ),
    ] = None,
    ramp_seconds: Annotated[float, typer.Option(help="Seconds per ramp trial.")] = 20.0,
    ramp_max: Annotated[int, typer.Option(help="Most players a ramp tries.")] = 64,
    via: Annotated[
        str,
        typer.Option(
            help="Stack folder: connect to the proxy 'container' (a LAN client's path), "
            "its 'published' port (through docker-proxy on 127.0.0.1), or 'both' (the "
            "container, and full GETs at the published port to price docker-proxy)."
        ),
    ] = "container",
    with_ceiling: Annotated[
        bool,
        typer.Option(
            "--ceiling",
            help="Also stream from a throwaway bare TLS server with the stack's own "
            "certificate and bytes, on the same path: the gap split into TLS / relay.",
        ),
    ] = False,
    ceiling_image: Annotated[
        str | None, typer.Option(help="The nginx image of the --ceiling server.")
    ] = None,
    proxies: Annotated[
        str | None,
        typer.Option(
            help="'all': your stackgen.toml with each proxy in turn, in scratch stacks "
            "beside yours (never touching it), measured here; recommends one."
        ),
    ] = None,
    expect: Annotated[
        list[str] | None,
        typer.Option(
            help="A threshold: streams=N@MBIT, api_p50_ms=MS, api_p99_ms=MS, seek_ttfb_ms=MS; "
            "repeatable. Exit 1 when one is not met."
        ),
    ] = None,
    cpu_container: Annotated[
        list[str] | None,
        typer.Option(help="SIDE=CONTAINER_ID: charge that side's CPU per GB to this container."),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write an SVG plot here.")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
    as_json: JsonOption = False,
    side: SideOption = None,
) -> None:
    """Measure a live stack: streaming, seek TTFB, API latency (open loop), WebSocket
    connect, paced streams — proxied against Jellyfin direct, interleaved.

    Example: stackgen bench --dir ./jellyfin-stack --plot bench.svg
    """
    from stackgen.bench import command
    from stackgen.bench.measure import PHASES

    directory = on_side(directory, side)

    settings = command.settings_from_options(
        pairs=pairs,
        duration=duration,
        rate=rate,
        streams=streams,
        bitrate_mbps=bitrate,
        media_path=media_path,
        token=token,
        check_bytes=check_bytes,
        only=frozenset(only or PHASES),
        timeout=timeout,
        ramp_bitrates=tuple(ramp or ()),
        ramp_seconds=ramp_seconds,
        ramp_max=ramp_max,
    )
    if via not in ("container", "published", "both"):
        raise InvalidInputError(f"--via {via!r}: expected container, published or both")
    expectations = command.expectations(expect or [])
    if proxies is not None:
        if proxies != "all":
            raise InvalidInputError(f"--proxies {proxies!r}: expected all")
        if url or direct or with_ceiling or via != "container":
            raise InvalidInputError(
                "--proxies all measures scratch stacks: no --url, --direct, --ceiling or --via"
            )
        with sigterm_interrupts():
            command.run_every_proxy(
                directory, settings, http2=http2, timeout=timeout, as_json=as_json, output=output
            )
        return
    chosen = command.targets(
        directory=directory,
        url=url,
        resolve=resolve or [],
        ca_file=ca_file,
        direct=direct,
        http2=http2,
        direct_http2=direct_http2,
        timeout=timeout,
        via=via,
    )
    chosen.cpu.update(command.cpu_containers(cpu_container or []))
    with sigterm_interrupts():  # the --ceiling server is removed on SIGTERM too
        command.run(
            chosen, settings, as_json=as_json, plot=plot, output=output, expect=expectations,
            with_ceiling=with_ceiling, ceiling_image=ceiling_image,
        )  # fmt: skip


# --- entry point -------------------------------------------------------------------------


Failure = StackgenError | TyperException | typer.Abort | KeyboardInterrupt


def failure(error: Failure) -> tuple[str, int]:
    """The one line and the exit code for an error that reached the top: no traceback."""
    if isinstance(error, StackgenError):
        return str(error), int(error.exit_code)
    if isinstance(error, TyperException):  # usage errors: Typer's own exit code (2)
        message = error.format_message().strip().splitlines()
        return (message[0] if message else "invalid usage"), error.exit_code
    return "interrupted", int(ExitCode.INTERRUPTED)


def _fail(message: str, code: int) -> NoReturn:
    typer.secho(f"stackgen: error: {message}", err=True, fg="red" if _color() else None)
    sys.exit(code)


def main() -> None:
    # The one output boundary: nothing printed carries control characters (docs/security.md).
    colour = _color()
    sys.stdout = PrintableStream(sys.stdout, colour=colour)
    sys.stderr = PrintableStream(sys.stderr, colour=colour)
    if len(sys.argv) == 1:
        sys.argv.append("--help")  # a bare `stackgen` shows the help, not an error
    try:
        result = app(standalone_mode=False)
    except (StackgenError, TyperException, typer.Abort, KeyboardInterrupt) as error:
        _fail(*failure(error))
    except Exception as error:  # a bug (in bench or anywhere): its traceback, without tokens
        redaction.print_traceback(error)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
