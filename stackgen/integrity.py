"""Faults `check` fails on (and so `up` refuses) that a hand edit, a crash or a wrong owner
can leave: a compose file without stackgen's services, a state file that is not JSON, a key
the containers' user cannot read. Each function
returns one-line problems; `stack_checks.py` turns them into findings."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from stackgen.models import StackConfig
from stackgen.parts import Access
from stackgen.render import COMPOSE_FILE
from stackgen.writer import Plan, owners


def compose_services(text: str) -> set[str]:
    """The service names of a compose file, read without a YAML library: the keys one level
    under the top-level `services:` (a truncated file simply has fewer)."""
    lines = text.splitlines()
    if "services:" not in lines:
        return set()
    names: set[str] = set()
    indent = None
    for line in lines[lines.index("services:") + 1 :]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            break  # the next top-level key
        width = len(line) - len(line.lstrip())
        indent = width if indent is None else indent
        match = re.match(r"^\s*([A-Za-z0-9._-]+):\s*(?:#.*)?$", line)
        if width == indent and match:
            names.add(match.group(1))
    return names


def missing_services(plan: Plan) -> list[str]:
    """A hand-edited compose file is kept, but one without stackgen's services would start
    half a stack."""
    rendered = {v.file.path: v for v in plan.verdicts}.get(COMPOSE_FILE)
    if rendered is None or rendered.current is None:
        return []  # missing: the files check says so
    expected = compose_services(rendered.file.content.decode())
    present = compose_services(rendered.current.decode("utf-8", "replace"))
    missing = sorted(expected - present)
    if not missing:
        return []
    return [
        f"{COMPOSE_FILE} lacks stackgen's service(s) {', '.join(missing)} "
        "(truncated or edited?): `stackgen render --force` rewrites it"
    ]


def broken_state_json(plan: Plan) -> list[str]:
    """acme.json holds Traefik's certificates: Traefik does not start when it is not JSON."""
    problems = []
    for verdict in plan.verdicts:
        if not (verdict.file.state and verdict.file.path.endswith(".json") and verdict.current):
            continue
        try:
            json.loads(verdict.current)
        except ValueError as error:
            problems.append(
                f"{verdict.file.path} is not JSON ({error}): restore it from a backup, "
                "or empty it to have the certificates requested again"
            )
    return problems


def _can(st: os.stat_result, uid: int, gid: int, need: int) -> bool:
    """Whether uid:gid gets `need` (a mask of 4/2/1) on a file by its mode bits alone: the
    containers drop every capability, so even uid 0 inside them has no override."""
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid == uid:
        bits = mode >> 6
    elif st.st_gid == gid:
        bits = mode >> 3
    else:
        bits = mode
    return bits & need == need


def unusable_by_run_as(config: StackConfig, plan: Plan) -> list[str]:
    """Files the containers read and folders they write, as they are on disk, checked against
    run_as (the user every container runs as)."""
    uid, gid = config.uid, config.gid
    expected = owners(plan)
    wanted: list[tuple[Path, int, str]] = [
        (plan.stack_dir / v.file.path, 4, "read")
        for v in plan.verdicts
        # .env is read by Compose, the CA key by stackgen alone.
        if v.current is not None and v.file.access is not Access.PRIVATE
    ]
    wanted += [(plan.stack_dir / d, 7, "write in") for d, _ in plan.directories]
    # The served chain and key: planned only when first made (internal) or the user's own.
    wanted += [(_resolve(plan.stack_dir, f), 4, "read") for f in config.tls_files or ()]
    problems = []
    for path, need, verb in dict.fromkeys(wanted):
        try:
            st = path.stat()
        except OSError:
            continue  # missing: the files check says so
        if not _can(st, uid, gid, need):
            shown = _shown(plan.stack_dir, path)
            owner, group = expected.get(path, (uid, gid))
            fix = f"`chown {owner}:{group} {shown}`"
            if (owner, group) != (uid, gid):  # a key the proxy reads through its group
                fix += f" and `chmod 640 {shown}`"
            problems.append(
                f"{shown} is {st.st_uid}:{st.st_gid} {oct(stat.S_IMODE(st.st_mode))}: the "
                f"containers run as {config.run_as} and cannot {verb} it; run {fix} (or "
                "`stackgen render` as root, which does)"
            )
    return problems


def changeable_by_containers(config: StackConfig, plan: Plan) -> list[str]:
    """Control files, keys and their folders that the containers' user could change (or, for
    the CA key and .env, read): it could then edit what root's next `up` starts. Nothing to
    say when the containers run as the user running stackgen: they are the same principal."""
    uid, gid = config.uid, config.gid
    me = os.geteuid()
    if uid == me:
        return []
    stack_dir = plan.stack_dir
    private = {stack_dir / v.file.path for v in plan.verdicts if v.file.access is Access.PRIVATE}
    private |= {stack_dir / p for p, access in plan.owned if access is Access.PRIVATE}
    paths = [stack_dir, *(path for path, owner in owners(plan).items() if owner[0] != uid)]
    if config.tls_files:
        paths.append(_resolve(stack_dir, config.tls_files[1]))  # a key outside the stack too
    problems = []
    for path in dict.fromkeys(paths):
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                # A link's own mode means nothing (Linux ignores it): judge what it names,
                # e.g. a certbot lineage's live/privkey.pem outside the stack.
                st = path.stat()
        except OSError:
            continue  # missing: the files check says so
        if st.st_uid == uid or _can(st, uid, gid, 2):
            verb = "change it"
        elif path in private and _can(st, uid, gid, 4):
            verb = "read it"
        else:
            continue
        shown = _shown(stack_dir, path)
        problems.append(
            f"{shown} is {st.st_uid}:{st.st_gid} {oct(stat.S_IMODE(st.st_mode))}: the "
            f"containers' user {config.run_as} can {verb}, and it is stackgen's or yours "
            f"(root runs what it says); run `stackgen render` as root, which gives it back, or "
            f"`chown {me} {shown}` and `chmod go-w{'r' if path in private else ''} {shown}`"
        )
    return problems


def _resolve(stack_dir: Path, path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else stack_dir / candidate


def _shown(stack_dir: Path, path: Path) -> str:
    try:
        return str(path.relative_to(stack_dir))
    except ValueError:
        return str(path)
