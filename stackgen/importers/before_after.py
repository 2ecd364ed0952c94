"""`--verify-old`: `stackgen verify`'s engine run against the old, live stack before the move,
kept in the new stack folder so the same checks can be shown before and after."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from stackgen.errors import InvalidInputError
from stackgen.probe import Report, run_checks
from stackgen.verify import target_for_url
from stackgen.writer import PlannedFile

# Beside the writer's manifest: stackgen's own bookkeeping, never a file the stack mounts.
OLD_REPORT: Final = ".stackgen/verify-old.json"


def verify_old(
    url: str,
    *,
    resolve: Sequence[str] = (),
    ca_file: Path | None = None,
    http_port: int = 80,
    timeout: float = 10.0,
) -> Report:
    """The old stack as any client sees it. Its Jellyfin's KnownProxies and the proxy's
    address are unknown from outside: the checks that need them say so (not applicable)."""
    if not url.startswith("https://"):
        raise InvalidInputError(f"--verify-old {url!r}: expected the old stack's https:// URL")
    target = target_for_url(
        url,
        resolve=resolve,
        ca_file=ca_file,
        http_port=http_port,
        media_path=None,
        known_proxies=[],
        proxy_address=[],
        frames_allowed=False,
        timeout=timeout,
    )
    return run_checks(target)


def old_report_file(report: Report) -> PlannedFile:
    content = json.dumps(report.to_json(), indent=2) + "\n"
    return PlannedFile(OLD_REPORT, content.encode(), 0o644, state=True)


def read_old_report(stack_dir: Path) -> dict[str, Any] | None:
    path = stack_dir / OLD_REPORT
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise InvalidInputError(f"{path}: {error}") from None
    return data if isinstance(data, dict) else None


def compare_table(old: Mapping[str, Any], new: Report) -> str:
    """Each check of `stackgen verify` with the old stack's status and the new one's."""
    before = {str(c["id"]): str(c["status"]) for c in old.get("checks", [])}
    for skipped in old.get("skipped", []):
        before.setdefault(str(skipped["id"]), "n/a")
    after = {r.id: r.status.value for r in new.results}
    after.update(dict.fromkeys(new.skipped, "n/a"))
    reasons = {r.id: r.reason for r in new.results}
    ids = list(dict.fromkeys([*before, *after]))
    width = max([len(i) for i in ids] + [5])
    lines = [f"{'CHECK':<{width}}  {'BEFORE':<6}  {'AFTER':<6}  NOW"]
    for check in ids:
        lines.append(
            f"{check:<{width}}  {before.get(check, '-'):<6}  {after.get(check, '-'):<6}  "
            f"{reasons.get(check, '')}"
        )
    fixed = sum(1 for i in ids if before.get(i) == "fail" and after.get(i) == "pass")
    broken = sum(1 for i in ids if before.get(i) == "pass" and after.get(i) == "fail")
    lines.append(f"{fixed} fixed by the move, {broken} broken by it")
    return "\n".join(lines) + "\n"
