"""Check results and the run report, with its three renderings (JSON, JUnit XML, table).

JSON schema `stackgen.verify/1` (what `stackgen verify --json` prints; additive changes
keep the version, anything else bumps it):

    {
      "schema": "stackgen.verify/1",
      "target": {"url": str, "resolve": {host: ip}, "ca_file": str|null, "http_port": int,
                 "media_path": str|null (api keys redacted), "known_proxies": [str]|null,
                 "proxy_addresses": [str]|null, "frames_allowed": bool,
                 "acme_http01": bool|null, "timeout": float, "plain_http": bool},
      "summary": {"ok": bool, "passed": int, "warned": int, "failed": int,
                  "skipped": int, "not_run": int, "duration_ms": int},
      "checks": [{"id": str, "title": str, "status": "pass"|"warn"|"fail",
                  "reason": str, "hint": str, "details": {str: JSON}, "duration_ms": int,
                  "protocol": "http/1.1"|"h2"|null}],
      "skipped": [{"id": str, "reason": str}],
      "not_run": [{"id": str, "reason": str}]
    }

A request-level check appears once per protocol the server offers (`protocol`), in that
order; checks that make no HTTPS request of their own have `protocol: null`.

`skipped` lists checks that do not apply to this target (e.g. `jellyfin.subpath-redirect`
without a subpath, `redirect.acme-path` without HTTP-01); `not_run` lists checks that could
not be judged because a reach.* check they depend on failed (the reason names it: that
failure is the root cause). Neither has a status because nothing was judged.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from stackgen.probe.target import Target

SCHEMA = "stackgen.verify/1"

# Query parameters that carry Jellyfin credentials; never echoed in clear (see contract).
_SECRET_PARAM = re.compile(r"(?i)\b(api_?key|x-emby-token|x-mediabrowser-token)=([^&#\s]+)")
# Characters XML 1.0 cannot carry at all; a server's garbage must not break the JUnit file.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def redact(text: str) -> str:
    """Hide credential values in a URL or path."""
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=REDACTED", text)


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    id: str
    title: str
    status: Status
    reason: str  # one line
    hint: str  # how to fix, naming the concrete setting; empty on pass
    details: Mapping[str, object] = field(default_factory=dict)  # JSON-safe values only
    duration_ms: int = 0
    protocol: str | None = None  # "http/1.1" or "h2" for request-level checks


def _json_safe(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class Report:
    target: Target
    results: Sequence[CheckResult]
    skipped: Mapping[str, str] = field(default_factory=dict)  # check id -> why not applicable
    not_run: Mapping[str, str] = field(default_factory=dict)  # check id -> the failed gate
    duration_ms: int = 0

    @property
    def passed(self) -> int:
        return sum(r.status is Status.PASS for r in self.results)

    @property
    def warned(self) -> int:
        return sum(r.status is Status.WARN for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status is Status.FAIL for r in self.results)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def get(self, check_id: str, protocol: str | None = None) -> CheckResult | None:
        """The check's result (over `protocol` when given, else the first one)."""
        return next(
            (
                r
                for r in self.results
                if r.id == check_id and (protocol is None or r.protocol == protocol)
            ),
            None,
        )

    @property
    def protocols(self) -> list[str]:
        """The HTTP versions request-level checks ran over."""
        return sorted({r.protocol for r in self.results if r.protocol}, key=_protocol_order)

    def _target_json(self) -> dict[str, object]:
        t = self.target
        return {
            "url": t.url,
            "resolve": dict(t.resolve),
            "ca_file": str(t.ca_file) if t.ca_file else None,
            "http_port": t.http_port,
            "media_path": redact(t.media_path) if t.media_path else None,
            "known_proxies": list(t.known_proxies) if t.known_proxies is not None else None,
            "proxy_addresses": list(t.proxy_addresses) if t.proxy_addresses is not None else None,
            "frames_allowed": t.frames_allowed,
            "acme_http01": t.acme_http01,
            "http2": t.http2,
            "http3": t.http3,
            "lan_url": t.lan_url,
            "from_lan": t.from_lan,
            "plain_http": t.plain_http,
            "timeout": t.timeout,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "target": self._target_json(),
            "summary": {
                "ok": self.ok,
                "passed": self.passed,
                "warned": self.warned,
                "failed": self.failed,
                "skipped": len(self.skipped),
                "not_run": len(self.not_run),
                "duration_ms": self.duration_ms,
            },
            "checks": [
                {
                    "id": r.id,
                    "title": r.title,
                    "status": str(r.status),
                    "reason": r.reason,
                    "hint": r.hint,
                    "details": _json_safe(r.details),
                    "duration_ms": r.duration_ms,
                    "protocol": r.protocol,
                }
                for r in self.results
            ],
            "skipped": [{"id": k, "reason": v} for k, v in self.skipped.items()],
            "not_run": [{"id": k, "reason": v} for k, v in self.not_run.items()],
        }

    def to_junit_xml(self) -> str:
        """One testsuite; a check is a testcase. Warnings pass but are printed in system-out,
        checks that do not apply are <skipped/>."""

        def clean(text: str) -> str:
            return _XML_INVALID.sub("\N{REPLACEMENT CHARACTER}", text)

        suite = ET.Element(
            "testsuite",
            {
                "name": "stackgen.verify",
                "tests": str(len(self.results) + len(self.skipped) + len(self.not_run)),
                "failures": str(self.failed),
                "errors": "0",
                "skipped": str(len(self.skipped) + len(self.not_run)),
                "time": f"{self.duration_ms / 1000:.3f}",
            },
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", {"name": "url", "value": clean(self.target.url)})
        ET.SubElement(props, "property", {"name": "schema", "value": SCHEMA})
        for r in self.results:
            case = ET.SubElement(
                suite,
                "testcase",
                {
                    "classname": f"stackgen.verify.{r.id.split('.', 1)[0]}",
                    "name": r.id + (f" [{r.protocol}]" if r.protocol == "h2" else ""),
                    "time": f"{r.duration_ms / 1000:.3f}",
                },
            )
            details = json.dumps(_json_safe(r.details), indent=2, sort_keys=True)
            if r.status is Status.FAIL:
                failure = ET.SubElement(
                    case, "failure", {"message": clean(r.reason), "type": "fail"}
                )
                failure.text = clean(f"{r.reason}\nfix: {r.hint}\ndetails: {details}")
            else:
                out = ET.SubElement(case, "system-out")
                out.text = clean(f"{r.status}: {r.reason}" + (f"\nfix: {r.hint}" if r.hint else ""))
        for check_id, why in [*self.skipped.items(), *self.not_run.items()]:
            case = ET.SubElement(
                suite,
                "testcase",
                {"classname": f"stackgen.verify.{check_id.split('.', 1)[0]}", "name": check_id},
            )
            ET.SubElement(case, "skipped", {"message": clean(why)})
        root = ET.Element("testsuites")
        root.append(suite)
        return ET.tostring(root, encoding="unicode", xml_declaration=True)

    def render_table(self, color: bool = False) -> str:
        """Plain-text table for humans; ANSI colour only when asked (the CLI decides)."""
        colours = {Status.PASS: "\x1b[32m", Status.WARN: "\x1b[33m", Status.FAIL: "\x1b[31m"}
        ids = [*(r.id for r in self.results), *self.skipped, *self.not_run]
        width = max([len(i) for i in ids] + [5])
        proto = 8  # "http/1.1"
        lines = [f"{'STATUS':<6}  {'CHECK':<{width}}  {'PROTO':<{proto}}  REASON"]
        for r in self.results:
            label = f"{r.status.value.upper():<6}"
            if color:
                label = f"{colours[r.status]}{label}\x1b[0m"
            lines.append(f"{label}  {r.id:<{width}}  {r.protocol or '':<{proto}}  {r.reason}")
            if r.hint and r.status is not Status.PASS:
                lines.append(f"{'':<6}  {'':<{width}}  {'':<{proto}}  fix: {r.hint}")
        for check_id, why in self.skipped.items():
            lines.append(f"{'SKIP':<6}  {check_id:<{width}}  {'':<{proto}}  {why}")
        for check_id, why in self.not_run.items():
            lines.append(f"{'NOTRUN':<6}  {check_id:<{width}}  {'':<{proto}}  {why}")
        not_run = f"{len(self.not_run)} not run, " if self.not_run else ""
        lines.append(
            f"{self.failed} failed, {self.warned} warned, {self.passed} passed, "
            f"{not_run}{len(self.skipped)} not applicable in {self.duration_ms / 1000:.1f} s"
        )
        return "\n".join(lines) + "\n"


def _protocol_order(protocol: str) -> int:
    return ("http/1.1", "h2", "h3").index(protocol) if protocol in ("http/1.1", "h2", "h3") else 9
